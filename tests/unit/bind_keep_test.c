/* bind_keep: a parameter is bound again only when its value changes, and every row
 * written gets the values it was given. */
#include "common/store/bind_keep.h"
#include "common/store/db.h"
#include "common/store/sqlite/db_sqlite.h"
#include "tests/unit/test.h"

#include <sqlite3.h>

/* Insert (a, b, c) through `k` and check the row written. */
static void put(struct db *db, struct db_stmt *s, struct bind_keep *k, int64_t a, const char *b,
    const char *c, const char *want)
{
	struct db_stmt *q = NULL;

	bind_keep_int64(s, k, 1, a);
	bind_keep_text(s, k, 2, b);
	bind_keep_text(s, k, 3, c);
	CHECK_EQ_INT(db_step(s), DB_DONE);
	db_reset(s);
	CHECK_EQ_INT(db_prepare(db,
	                 "SELECT a || '|' || coalesce(b, '-') || '|' || coalesce(c, '-')"
	                 " FROM t ORDER BY rowid DESC LIMIT 1",
	                 &q),
	    DB_OK);
	CHECK_EQ_INT(db_step(q), DB_ROW);
	CHECK_EQ_STR(db_column_text(q, 0), want);
	db_finalize(q);
}

TEST(bind_keep_writes_each_row_with_its_own_values)
{
	struct db *db = NULL;
	struct db_stmt *s = NULL;
	struct bind_keep k = { 0 };
	char msg[256], x1[] = "same", x2[] = "same", y[] = "other";

	CHECK(db_sqlite_open(":memory:", SQLITE_OPEN_READWRITE, 0, &db, msg, sizeof msg) == DB_OK);
	CHECK_EQ_INT(db_exec(db, "CREATE TABLE t (a, b, c)"), DB_OK);
	CHECK_EQ_INT(db_prepare(db, "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)", &s), DB_OK);
	put(db, s, &k, 1, x1, NULL, "1|same|-");
	put(db, s, &k, 1, x2, NULL, "1|same|-"); /* equal text elsewhere: left bound */
	put(db, s, &k, 2, x2, y, "2|same|other");
	put(db, s, &k, 2, NULL, y, "2|-|other");
	put(db, s, &k, 2, x1, NULL, "2|same|-");
	/* Bound by other means: what the keep noted no longer holds. */
	db_clear_bindings(s);
	bind_keep_forget(&k);
	put(db, s, &k, 2, x1, NULL, "2|same|-");
	db_finalize(s);
	db_close(db);
}
