#include "tests/unit/testutil.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_internal.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

char *test_path(const char *name)
{
	char cwd[PATH_MAX];

	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	return xasprintf("%s/%s", cwd, name);
}

char *test_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = xmalloc(1 << 20);

	CHECK(f != NULL);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

void test_sql(const char *path, const char *sql)
{
	struct db *db;

	char msg[256];

	CHECK(db_sqlite_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0, &db, msg,
	          sizeof msg) == DB_OK);
	CHECK(db_exec(db, sql) == DB_OK);
	db_close(db);
}

int64_t test_count(const char *path, const char *sql)
{
	struct db *db;
	int64_t n = -1;
	char msg[256];

	CHECK(db_sqlite_open(path, SQLITE_OPEN_READONLY, 0, &db, msg, sizeof msg) == DB_OK);
	CHECK(store_query_int(db, sql, &n, NULL) == 0);
	db_close(db);
	return n;
}

int64_t test_query(struct store *st, const char *sql)
{
	struct store_err err;
	int64_t n = -1;

	CHECK(store_query_int(st->db, sql, &n, &err) == 0);
	return n;
}

void test_store_new(struct store *st, const char *name)
{
	struct store_err err;
	char *path = test_path(name), *url = xasprintf("sqlite:///%s", name);

	CHECK_EQ_INT(store_init(path, NULL, &err), 0);
	CHECK_EQ_INT(store_open(st, path, url, STORE_WRITE, &err), 0);
	free(path);
	free(url);
}
