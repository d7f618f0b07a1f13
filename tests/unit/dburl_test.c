#include "common/store/dburl.h"
#include "common/store/store_internal.h"
#include "tests/unit/test.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Parse `url`, expecting failure with `needle` in the message. */
static void expect_refused(const char *url, const char *needle)
{
	char err[512] = "", *path = (char *)1, *curl = (char *)1;

	CHECK(dburl_parse(url, &path, &curl, err, sizeof err) == -1);
	CHECK(path == NULL && curl == NULL);
	if (strstr(err, needle) == NULL)
		fprintf(stderr, "url %s: message \"%s\" lacks \"%s\"\n", url, err, needle);
	CHECK(strstr(err, needle) != NULL);
	CHECK(strstr(err, "sqlite:///") != NULL);
}

TEST(dburl_relative_resolves_against_cwd)
{
	char cwd[PATH_MAX], err[512], *path, *url, *want;

	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	CHECK(dburl_parse("sqlite:///x.db", &path, &url, err, sizeof err) == 0);
	want = realpath(".", NULL);
	CHECK(strncmp(path, want, strlen(want)) == 0);
	CHECK_EQ_STR(path + strlen(want), "/x.db");
	CHECK(strncmp(url, "sqlite:////", 11) == 0);
	CHECK_EQ_STR(url + 10, path);
	CHECK(access("x.db", F_OK) != 0);
	free(want);
	free(path);
	free(url);
}

/* A program reads its database URL before it opens the database; the URL's check asks
 * SQLite for its path limit, which initialises SQLite. The store's configuration of SQLite
 * must still take: no allocation statistics (each allocation under a global mutex) and
 * small blocks from common/store/sqlite/sqlite_mem.c's classes, not malloc's sizes. */
TEST(dburl_parse_leaves_sqlite_configured_for_the_store)
{
	char err[512], *path, *url;
	struct store_err serr;
	struct store st;

	CHECK(dburl_parse("sqlite:///x.db", &path, &url, err, sizeof err) == 0);
	CHECK_EQ_INT(store_init(path, NULL, &serr), 0);
	CHECK_EQ_INT(store_open(&st, path, url, STORE_WRITE, &serr), 0);
	CHECK_EQ_INT(sqlite3_memory_used(), 0);
#if !defined(__SANITIZE_ADDRESS__)
	{
		void *p = sqlite3_malloc(10);

		CHECK_EQ_INT(sqlite3_msize(p), 32);
		sqlite3_free(p);
	}
#endif
	store_close(&st);
	free(path);
	free(url);
}

TEST(dburl_relative_from_two_directories_names_one_file)
{
	char err[512], *p1, *u1, *p2, *u2;

	CHECK(mkdir("sub", 0755) == 0);
	CHECK(dburl_parse("sqlite:///sub/../data.db", &p1, &u1, err, sizeof err) == 0);
	CHECK(chdir("sub") == 0);
	CHECK(dburl_parse("sqlite:///../data.db", &p2, &u2, err, sizeof err) == 0);
	CHECK_EQ_STR(p1, p2);
	CHECK_EQ_STR(u1, u2);
	free(p1);
	free(u1);
	free(p2);
	free(u2);
}

TEST(dburl_absolute_keeps_four_slashes)
{
	char err[512], *path, *url, *dir = realpath(".", NULL), *abs;

	abs = malloc(strlen(dir) + 40);
	sprintf(abs, "sqlite:///%s/./a.db", dir);
	CHECK(dburl_parse(abs, &path, &url, err, sizeof err) == 0);
	sprintf(abs, "%s/a.db", dir);
	CHECK_EQ_STR(path, abs);
	sprintf(abs, "sqlite:///%s/a.db", dir);
	CHECK_EQ_STR(url, abs);
	free(abs);
	free(dir);
	free(path);
	free(url);
}

TEST(dburl_symlinked_file_resolves_to_its_target)
{
	char err[512], *p1, *u1, *p2, *u2;
	FILE *f = fopen("real.db", "w");

	CHECK(f != NULL);
	fclose(f);
	CHECK(symlink("real.db", "link.db") == 0);
	CHECK(dburl_parse("sqlite:///real.db", &p1, &u1, err, sizeof err) == 0);
	CHECK(dburl_parse("sqlite:///link.db", &p2, &u2, err, sizeof err) == 0);
	CHECK_EQ_STR(p1, p2);
	free(p1);
	free(u1);
	free(p2);
	free(u2);
}

TEST(dburl_refuses_other_forms_with_an_example)
{
	expect_refused("", "empty");
	expect_refused("sqlite://", "names no file");
	expect_refused("sqlite:///", "names no file");
	expect_refused("sqlite://host/x.db", "no host part");
	expect_refused(":memory:", ":memory:");
	expect_refused("sqlite:///:memory:", "in-memory");
	expect_refused("sqlite:///x.db?mode=ro", "query strings");
	expect_refused("mysql://h/db", "unsupported URL scheme 'mysql'");
	expect_refused("file:x.db", "unsupported URL scheme 'file'");
	expect_refused("autopack.db", "write sqlite:///autopack.db");
	expect_refused("/var/x.db", "write sqlite:////var/x.db");
	expect_refused("sqlite:///nodir/x.db", "does not exist");
	expect_refused("sqlite:///dir/", "directory");
	expect_refused("sqlite:///a.db#x", "fragments");
	expect_refused("sqlite:///a%20b.db", "percent-escapes");
	expect_refused("sqlite:///a%2Fb.db", "percent-escapes");
}

TEST(dburl_resolve_without_any_source_refuses)
{
	char err[512], *path, *url;

	unsetenv(DBURL_ENV_PRIMARY);
	setenv(DBURL_ENV_LEGACY, "", 1);
	CHECK(dburl_resolve(NULL, &path, &url, NULL, err, sizeof err) == -1);
	CHECK(strstr(err, "no database named") != NULL);
	CHECK(strstr(err, "sqlite:///autopack.db") != NULL);
}

TEST(dburl_resolve_empty_primary_is_refused_by_name)
{
	char err[512], *path, *url;

	setenv(DBURL_ENV_PRIMARY, "", 1);
	setenv(DBURL_ENV_LEGACY, "sqlite:///legacy.db", 1);
	CHECK(dburl_resolve(NULL, &path, &url, NULL, err, sizeof err) == -1);
	CHECK(strstr(err, "AUTOPACK_DB_URL is set but empty") != NULL);
	CHECK(path == NULL && url == NULL);
	/* --db outranks it: the environment is not read. */
	CHECK(dburl_resolve("sqlite:///flag.db", &path, &url, NULL, err, sizeof err) == 0);
	free(path);
	free(url);
	unsetenv(DBURL_ENV_PRIMARY);
	unsetenv(DBURL_ENV_LEGACY);
}

TEST(dburl_resolve_flag_outranks_both_environment_variables_unread)
{
	char err[512], *path, *url;
	const char *source;

	setenv(DBURL_ENV_PRIMARY, "sqlite:///b.db", 1);
	setenv(DBURL_ENV_LEGACY, "mysql://app:secret@db/app", 1);
	CHECK(dburl_resolve("sqlite:///a.db", &path, &url, &source, err, sizeof err) == 0);
	CHECK_EQ_STR(source, "--db");
	CHECK(strstr(path, "/a.db") != NULL);
	free(path);
	free(url);
	unsetenv(DBURL_ENV_LEGACY);
	CHECK(dburl_resolve(NULL, &path, &url, &source, err, sizeof err) == 0);
	CHECK_EQ_STR(source, DBURL_ENV_PRIMARY);
	CHECK(strstr(path, "/b.db") != NULL);
	free(path);
	free(url);
	unsetenv(DBURL_ENV_PRIMARY);
}

TEST(dburl_resolve_two_environment_variables_disagreeing_refuse)
{
	char err[512], *path, *url;

	setenv(DBURL_ENV_PRIMARY, "sqlite:///a.db", 1);
	setenv(DBURL_ENV_LEGACY, "sqlite:///b.db", 1);
	CHECK(dburl_resolve(NULL, &path, &url, NULL, err, sizeof err) == -1);
	CHECK(strstr(err, DBURL_ENV_PRIMARY " names") != NULL);
	CHECK(strstr(err, "/a.db but " DBURL_ENV_LEGACY " names") != NULL);
	CHECK(strstr(err, "/b.db") != NULL);
	CHECK(path == NULL && url == NULL);
	/* A PostgreSQL database is shown by its canonical URL, which holds no password; a
	 * URL that does not parse, by its scheme alone. */
	setenv(DBURL_ENV_LEGACY, "postgresql://app:secret@db/app", 1);
	CHECK(dburl_resolve(NULL, &path, &url, NULL, err, sizeof err) == -1);
	CHECK(strstr(err, DBURL_ENV_LEGACY " names postgresql://") != NULL);
	CHECK(strstr(err, "secret") == NULL);
	CHECK(path == NULL && url == NULL);
	setenv(DBURL_ENV_LEGACY, "mysql://app:secret@db/app", 1);
	CHECK(dburl_resolve(NULL, &path, &url, NULL, err, sizeof err) == -1);
	CHECK(strstr(err, "'mysql' URL") != NULL);
	CHECK(strstr(err, "secret") == NULL);
	CHECK(path == NULL && url == NULL);
	unsetenv(DBURL_ENV_PRIMARY);
	unsetenv(DBURL_ENV_LEGACY);
}

TEST(dburl_resolve_sources_naming_one_file_agree)
{
	char err[512], *path, *url, *dir = realpath(".", NULL), *abs;
	const char *source;

	abs = malloc(strlen(dir) + 40);
	sprintf(abs, "sqlite:///%s/same.db", dir);
	setenv(DBURL_ENV_PRIMARY, abs, 1);
	setenv(DBURL_ENV_LEGACY, "sqlite:///./same.db", 1);
	CHECK(dburl_resolve("sqlite:///same.db", &path, &url, &source, err, sizeof err) == 0);
	CHECK_EQ_STR(source, "--db");
	CHECK_EQ_STR(url, abs);
	free(path);
	free(url);
	unsetenv(DBURL_ENV_PRIMARY);
	CHECK(dburl_resolve(NULL, &path, &url, &source, err, sizeof err) == 0);
	CHECK_EQ_STR(source, DBURL_ENV_LEGACY);
	free(path);
	free(url);
	free(abs);
	free(dir);
}

TEST(dburl_resolve_names_the_source_of_a_bad_url)
{
	char err[512], *path, *url;

	unsetenv(DBURL_ENV_PRIMARY);
	setenv(DBURL_ENV_LEGACY, "postgresql://x/y#z", 1);
	CHECK(dburl_resolve(NULL, &path, &url, NULL, err, sizeof err) == -1);
	CHECK(strncmp(err, DBURL_ENV_LEGACY ": ", strlen(DBURL_ENV_LEGACY) + 2) == 0);
}
