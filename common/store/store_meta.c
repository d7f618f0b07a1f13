#include "common/store/store_meta.h"
#include "common/util.h"

#include <stdio.h>

/* Read the supervisor record of meta; STORE_EIO on failure. */
int store_meta_supervisor(struct store *st, int64_t *pid, char **socket, struct store_err *err)
{
	struct db_stmt *s;
	int rc;

	*pid = 0;
	*socket = NULL;
	if (db_prepare(st->db,
	        "SELECT supervisor_pid, control_socket FROM meta"
	        " WHERE id = 1",
	        &s) != DB_OK)
		goto fail;
	rc = db_step(s);
	if (rc == DB_ROW) {
		const char *t = db_column_text(s, 1);

		*pid = db_column_int64(s, 0);
		if (t != NULL)
			*socket = xstrdup((const char *)t);
	}
	db_finalize(s);
	if (rc == DB_ROW || rc == DB_DONE)
		return 0;
fail:
	snprintf(err->text, sizeof err->text, "%s: reading meta: %s", st->path, db_errmsg(st->db));
	return STORE_EIO;
}
