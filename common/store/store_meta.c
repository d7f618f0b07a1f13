#include "common/store/store_meta.h"
#include "common/util.h"

#include <stdio.h>

/* Read the supervisor record of meta; STORE_EIO on failure. */
int store_meta_supervisor(struct store *st, int64_t *pid, char **socket, struct store_err *err)
{
	sqlite3_stmt *s;
	int rc;

	*pid = 0;
	*socket = NULL;
	if (sqlite3_prepare_v2(st->db,
	        "SELECT supervisor_pid, control_socket FROM meta"
	        " WHERE id = 1",
	        -1, &s, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 1);

		*pid = sqlite3_column_int64(s, 0);
		if (t != NULL)
			*socket = xstrdup((const char *)t);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
fail:
	snprintf(
	    err->text, sizeof err->text, "%s: reading meta: %s", st->path, sqlite3_errmsg(st->db));
	return STORE_EIO;
}
