#include "common/store/dburl.h"
#include "common/store/dburl_pg.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>

/* Parse `url` (with PGUSER, PGHOST and PGPORT unset), expecting the canonical `want`. */
static void expect_canonical(const char *url, const char *want)
{
	char err[512] = "", *path = NULL, *curl = NULL;

	unsetenv("PGHOST");
	unsetenv("PGPORT");
	setenv("PGUSER", "envuser", 1);
	if (dburl_parse(url, &path, &curl, err, sizeof err) != 0)
		fprintf(stderr, "url %s: %s\n", url, err);
	CHECK(curl != NULL);
	if (strcmp(curl, want) != 0)
		fprintf(stderr, "url %s: canonical %s, want %s\n", url, curl, want);
	CHECK_EQ_STR(curl, want);
	CHECK_EQ_STR(path, curl);
	free(path);
	free(curl);
}

/* Parse `url`, expecting failure with `needle` and without "secret" in the message. */
static void expect_refused(const char *url, const char *needle)
{
	char err[512] = "", *path = (char *)1, *curl = (char *)1;

	CHECK(dburl_parse(url, &path, &curl, err, sizeof err) == -1);
	CHECK(path == NULL && curl == NULL);
	if (strstr(err, needle) == NULL)
		fprintf(stderr, "url %s: message \"%s\" lacks \"%s\"\n", url, err, needle);
	CHECK(strstr(err, needle) != NULL);
	CHECK(strstr(err, "postgresql://") != NULL);
	CHECK(strstr(err, "secret") == NULL);
}

TEST(dburl_pg_canonical_forms)
{
	expect_canonical(
	    "postgresql://u@Db.Example:5433/autopack", "postgresql://u@db.example:5433/autopack");
	expect_canonical("postgres://u@h/autopack", "postgresql://u@h:5432/autopack");
	expect_canonical("postgresql+psycopg2://u@h/autopack", "postgresql://u@h:5432/autopack");
	expect_canonical("postgresql://h/autopack", "postgresql://envuser@h:5432/autopack");
	expect_canonical("postgresql:///autopack?host=/run/postgresql",
	    "postgresql://envuser@/autopack?host=/run/postgresql&port=5432");
	expect_canonical("postgresql://u@%2Ftmp%2Fsock:6000/d%20b",
	    "postgresql://u@/d%20b?host=/tmp/sock&port=6000");
	expect_canonical("postgresql://u@[::1]:5432/a?sslmode=require",
	    "postgresql://u@[::1]:5432/a?sslmode=require");
}

TEST(dburl_pg_password_is_kept_out_of_the_canonical_url)
{
	char err[512], *path, *url;

	CHECK(dburl_parse("postgresql://u:secret@h/db", &path, &url, err, sizeof err) == 0);
	CHECK_EQ_STR(url, "postgresql://u@h:5432/db");
	CHECK(strstr(url, "secret") == NULL);
	CHECK_EQ_STR(dburl_pg_password(url), "secret");
	CHECK(dburl_pg_password("postgresql://u@h:5432/other") == NULL);
	free(path);
	free(url);
	CHECK(
	    dburl_parse("postgresql://u@h/db2?password=secret", &path, &url, err, sizeof err) == 0);
	CHECK_EQ_STR(url, "postgresql://u@h:5432/db2");
	CHECK_EQ_STR(dburl_pg_password(url), "secret");
	free(path);
	free(url);
}

TEST(dburl_pg_refuses_what_names_no_one_database)
{
	expect_refused("postgresql://u:secret@h/", "names no database");
	expect_refused("postgresql://u:secret@h1,h2/db", "several servers");
	expect_refused("postgresql://u:secret@h:99999/db", "not a port number");
	expect_refused("postgresql://u:secret@h/db#x", "fragments");
	expect_refused("postgresql://u:secret@h/db?service=x", "'service' is not supported");
	expect_refused("postgresql://u:secret@h/db?foo=1", "invalid URI query parameter");
}

TEST(dburl_pg_refuses_a_parameter_named_twice)
{
	expect_refused("postgresql://u:secret@h/autopack?dbname=other",
	    "names 'dbname' twice (in its path and as ?dbname=)");
	expect_refused("postgresql://u:secret@h/db?host=other", "names 'host' twice");
	expect_refused("postgresql://u:secret@h:5433/db?port=5432", "names 'port' twice");
	expect_refused("postgresql://u:secret@h/db?user=v", "names 'user' twice");
	expect_refused("postgresql://u:secret@h/db?password=x", "names 'password' twice");
	expect_refused("postgresql://u:secret@h/db?sslmode=require&sslmode=disable",
	    "names 'sslmode' twice (earlier in its query");
	expect_refused("postgresql://u:secret@h/db?db%6Eame=x", "names 'dbname' twice");
	expect_refused("postgresql://u:secret@[::1]:5432/db?port=1", "names 'port' twice");
	/* Once each is fine, whichever part names it. */
	expect_canonical("postgresql://u@/db?host=/run/postgresql&port=5433",
	    "postgresql://u@/db?host=/run/postgresql&port=5433");
	expect_canonical("postgresql://h/?dbname=db&user=u", "postgresql://u@h:5432/db");
	expect_canonical("postgresql://u@[::1]/db?port=5433", "postgresql://u@[::1]:5433/db");
}

/* Hide the password of a copy of `url` in place; it must read `want`. */
static void expect_hidden(const char *url, const char *want)
{
	char *s = xstrdup(url);

	dburl_pg_hide_password(s);
	CHECK_EQ_STR(s, want);
	free(s);
}

TEST(dburl_pg_password_is_hidden_in_place_for_the_command_line)
{
	expect_hidden("postgresql://u:secret@h/db", "postgresql://u:******@h/db");
	expect_hidden("postgres://u:s@cret@h:5432/db", "postgres://u:******@h:5432/db");
	expect_hidden("postgresql+psycopg2://u:pw@h/db", "postgresql+psycopg2://u:**@h/db");
	expect_hidden("postgresql://u@h/db?sslmode=require&password=secret&port=5",
	    "postgresql://u@h/db?sslmode=require&password=******&port=5");
	expect_hidden("postgresql://u@h/db?password=secret", "postgresql://u@h/db?password=******");
	expect_hidden(
	    "postgresql://u@h/db?xpassword=secret", "postgresql://u@h/db?xpassword=secret");
	expect_hidden("postgresql://u@h/db", "postgresql://u@h/db");
	/* As libpq reads them: a '?' or '#' in the user part, a '/' in it, a name %XX encoded. */
	expect_hidden("postgresql://u:s?c#t@h/db", "postgresql://u:*****@h/db");
	expect_hidden("postgresql://u:s/c@h:5432/db?x=1", "postgresql://u:***@h:5432/db?x=1");
	expect_hidden("postgresql://u@h/db?passwor%64=secret&x=1",
	    "postgresql://u@h/db?passwor%64=******&x=1");
	expect_hidden("postgresql://h:5432/db", "postgresql://h:5432/db");
	expect_hidden("sqlite:////srv/u:pw@h/a.db", "sqlite:////srv/u:pw@h/a.db");
	dburl_pg_hide_password(NULL);
}
