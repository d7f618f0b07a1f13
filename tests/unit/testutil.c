#include "tests/unit/testutil.h"
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
	sqlite3 *db;

	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ==
	    SQLITE_OK);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	CHECK(sqlite3_close(db) == SQLITE_OK);
}

int64_t test_count(const char *path, const char *sql)
{
	sqlite3 *db;
	int64_t n = -1;

	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CHECK(store_query_int(db, sql, &n, NULL) == 0);
	sqlite3_close(db);
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
