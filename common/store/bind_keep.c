/* Parameters left bound between runs of one statement (bind_keep.h). */
#include "common/store/bind_keep.h"
#include "common/store/db.h"

#include <assert.h>
#include <string.h>

void bind_keep_forget(struct bind_keep *k)
{
	k->known = 0;
}

void bind_keep_int64(struct db_stmt *s, struct bind_keep *k, int i, int64_t v)
{
	uint32_t bit = 1u << i;

	assert(i >= 1 && i < BIND_KEEP_MAX);
	if ((k->known & bit) != 0 && !k->is_text[i] && k->num[i] == v)
		return;
	db_bind_int64(s, i, v);
	k->known |= bit;
	k->is_text[i] = false;
	k->num[i] = v;
}

void bind_keep_text(struct db_stmt *s, struct bind_keep *k, int i, const char *v)
{
	uint32_t bit = 1u << i;
	const char *had = k->text[i];

	assert(i >= 1 && i < BIND_KEEP_MAX);
	if ((k->known & bit) != 0 && k->is_text[i] &&
	    (had == v || (had != NULL && v != NULL && strcmp(had, v) == 0)))
		return;
	db_bind_text_kept(s, i, v);
	k->known |= bit;
	k->is_text[i] = true;
	k->text[i] = v;
}
