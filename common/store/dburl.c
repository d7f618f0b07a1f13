#include "common/store/dburl.h"
#include "common/store/dburl_pg.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/util.h"
#include "common/utf8.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DBURL_EXAMPLE                                                                              \
	"sqlite:///autopack.db (relative to the current directory) or "                            \
	"sqlite:////var/lib/autopack/autopack.db (absolute)"

/* Refuse a URL that does not use the sqlite scheme, naming the scheme it used. */
static int dburl_refuse_scheme(const char *url, char *err, size_t errlen)
{
	const char *sep = strstr(url, "://");
	const char *colon = strchr(url, ':');
	const char *slash = strchr(url, '/');
	char *shown;
	size_t n;

	if (sep == NULL && (colon == NULL || (slash != NULL && slash < colon)))
		return errbuf_fail(err, errlen,
		    "'%s' is a bare path, not a database URL; write sqlite:///%s", url, url);
	n = sep != NULL ? (size_t)(sep - url) : (size_t)(colon - url);
	/* Shown with its password hidden: a mistyped PostgreSQL scheme may carry one. */
	shown = dburl_pg_redact(url);
	if (n == 6 && strncmp(url, "sqlite", n) == 0)
		errbuf_fail(err, errlen,
		    "'%s' is not an sqlite URL: sqlite: is followed by three slashes, then the"
		    " path; use %s",
		    shown, DBURL_EXAMPLE);
	else if ((n == 6 && strncasecmp(url, "sqlite", n) == 0) ||
	    (n == 10 && strncasecmp(url, "postgresql", n) == 0) ||
	    (n == 8 && strncasecmp(url, "postgres", n) == 0))
		errbuf_fail(err, errlen,
		    "URL scheme '%.*s' in '%s' must be written in lowercase: %s; use %s", (int)n,
		    url, shown,
		    n == 6     ? "sqlite" :
		        n == 8 ? "postgres" :
		                 "postgresql",
		    DBURL_EXAMPLE);
	else
		errbuf_fail(err, errlen,
		    "unsupported URL scheme '%.*s' in '%s': autopack keeps its database in SQLite "
		    "or PostgreSQL; use %s, or postgresql://user@host:port/dbname",
		    (int)n, url, shown, DBURL_EXAMPLE);
	free(shown);
	return -1;
}

/* Check the path part of a sqlite:/// URL for forms that name no file. */
static int dburl_check_path(const char *url, const char *path, char *err, size_t errlen)
{
	if (path[0] == '\0')
		return errbuf_fail(err, errlen, "'%s' names no file; use %s", url, DBURL_EXAMPLE);
	if (strchr(path, '?') != NULL)
		return errbuf_fail(err, errlen, "'%s': query strings are not supported; use %s",
		    url, DBURL_EXAMPLE);
	if (strchr(path, '#') != NULL)
		return errbuf_fail(err, errlen,
		    "'%s': fragments ('#...') are not supported, and a file name with '#' cannot "
		    "be named by a URL; use %s",
		    url, DBURL_EXAMPLE);
	if (strchr(path, '%') != NULL)
		return errbuf_fail(err, errlen,
		    "'%s': percent-escapes ('%%20' ...) are not decoded and a file name with '%%' "
		    "cannot be named by a URL; write the path as it is (sqlite:///a b.db names "
		    "the file 'a b.db'); use %s",
		    url, DBURL_EXAMPLE);
	if (strcmp(path, ":memory:") == 0)
		return errbuf_fail(err, errlen,
		    "'%s': in-memory databases are not supported (every process must reach "
		    "the same file); use %s",
		    url, DBURL_EXAMPLE);
	if (path[strlen(path) - 1] == '/')
		return errbuf_fail(err, errlen,
		    "'%s' names a directory, not a database file; use %s", url, DBURL_EXAMPLE);
	return 0;
}

/* Resolve `path` (absolute, or relative to the cwd) to its canonical absolute form. */
static char *dburl_canonical(const char *url, const char *path, char *err, size_t errlen)
{
	char cwd[PATH_MAX], real[PATH_MAX];
	char *abs, *slash, *dir, *base, *full;
	struct stat sb;

	if (path[0] == '/') {
		abs = xstrdup(path);
	} else {
		if (getcwd(cwd, sizeof cwd) == NULL) {
			errbuf_fail(err, errlen, "'%s': cannot read the current directory: %s", url,
			    strerror(errno));
			return NULL;
		}
		abs = xasprintf("%s/%s", cwd, path);
	}
	slash = strrchr(abs, '/');
	base = slash + 1;
	dir = slash == abs ? xstrdup("/") : xstrndup(abs, (size_t)(slash - abs));
	full = NULL;
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		errbuf_fail(err, errlen, "'%s' names a directory, not a database file; use %s", url,
		    DBURL_EXAMPLE);
	} else if (realpath(dir, real) == NULL) {
		errbuf_fail(err, errlen, "'%s': directory %s: %s", url, dir,
		    errno == ENOENT ? "does not exist" : strerror(errno));
	} else if (stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		errbuf_fail(err, errlen, "'%s': %s is not a directory", url, dir);
	} else {
		full = strcmp(real, "/") == 0 ? xasprintf("/%s", base) :
		                                xasprintf("%s/%s", real, base);
		if (realpath(full, real) != NULL) {
			free(full);
			full = xstrdup(real);
		}
	}
	free(dir);
	free(abs);
	return full;
}

/* Refuse a URL holding a control character or starting or ending with whitespace
 * (pasted from a file, a line end left over): such a name makes an odd file or none. The
 * URL itself is not shown (it may hold a password), only the byte and its place. */
static int dburl_check_chars(const char *url, char *err, size_t errlen)
{
	size_t i, len = strlen(url);

	for (i = 0; i < len; i++)
		if ((unsigned char)url[i] < 0x20 || url[i] == 0x7f)
			return errbuf_fail(err, errlen,
			    "the database URL holds a control character (byte 0x%02x at position "
			    "%zu of %zu); remove it",
			    (unsigned char)url[i], i + 1, len);
	if (url[0] == ' ' || url[len - 1] == ' ')
		return errbuf_fail(err, errlen,
		    "the database URL %s with a space (position %zu of %zu); remove it",
		    url[0] == ' ' ? "starts" : "ends", url[0] == ' ' ? (size_t)1 : len, len);
	return 0;
}

/* Refuse a canonical URL that is not UTF-8 (a directory named in another encoding, the
 * current directory's included): the URL travels in every job and control frame, which
 * carry only UTF-8, so no phase could be sent. A PostgreSQL URL is not shown (it may
 * hold a password). Frees both outputs on refusal. */
static int dburl_check_utf8(char **canonical_path, char **canonical_url, char *err, size_t errlen)
{
	size_t len = strlen(*canonical_url), bad = utf8_check(*canonical_url, len);
	bool pg = strcmp(*canonical_path, *canonical_url) == 0;

	if (bad == len)
		return 0;
	if (pg)
		errbuf_fail(err, errlen,
		    "the database URL is not valid UTF-8 (byte %zu of %zu); autopack sends it to "
		    "its workers and clients as text, which must be UTF-8",
		    bad + 1, len);
	else
		errbuf_fail(err, errlen,
		    "the database's path %s is not valid UTF-8 (byte %zu); autopack sends it to "
		    "its workers and clients as text, which must be UTF-8: rename the file or "
		    "the directory holding it",
		    *canonical_path, bad + 1 - (len - strlen(*canonical_path)));
	free(*canonical_path);
	free(*canonical_url);
	*canonical_path = NULL;
	*canonical_url = NULL;
	return -1;
}

/* The longest suffix of a file SQLite opens beside the database: the -journal of a
 * backup that db adopt or db migrate takes first (store_backup_name). */
#define DBURL_SUFFIX_MAX (sizeof ".pre-adopt-20261203T101500Z-99.bak-journal" - 1)

/* Refuse a database path SQLite could not open: its unix VFS takes only paths shorter
 * than its mxPathname (512 bytes), side files included, and fails on longer ones with
 * "unable to open database file". Frees both outputs on refusal. */
static int dburl_check_length(char **canonical_path, char **canonical_url, char *err, size_t errlen)
{
	sqlite3_vfs *vfs;
	size_t max;
	size_t len = strlen(*canonical_path);

	db_sqlite_configure();
	vfs = sqlite3_vfs_find(NULL);
	max = (size_t)(vfs != NULL ? vfs->mxPathname : 512) - DBURL_SUFFIX_MAX;

	if (len <= max)
		return 0;
	errbuf_fail(err, errlen,
	    "the database's path is %zu bytes long; SQLite opens a database by a path of at "
	    "most %zu bytes (%zu bytes less than SQLite's limit, for the files made beside "
	    "it: its backups and their -journal): %.40s...%s; move it to a shorter path",
	    len, max, DBURL_SUFFIX_MAX, *canonical_path, *canonical_path + len - 40);
	free(*canonical_path);
	free(*canonical_url);
	*canonical_path = NULL;
	*canonical_url = NULL;
	return -1;
}

/* SQLAlchemy's spelling of an SQLite URL names its Python driver after a '+'
 * (sqlite+pysqlite:///path.db, as the Python original's DATABASE_URL may): the file and the
 * path are the same. Returns the length of the scheme to skip ("sqlite+pysqlite"), 0 when
 * `url` is no such spelling, or -1 with a message for a driver whose files autopack cannot
 * open. */
static int dburl_sqlalchemy_sqlite(const char *url, char *err, size_t errlen)
{
	static const char *const same_file[] = { "pysqlite", "aiosqlite" };
	const char *driver = url + strlen("sqlite+");
	size_t n = strcspn(driver, ":/");
	char *shown;

	if (strncmp(url, "sqlite+", strlen("sqlite+")) != 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(same_file); i++)
		if (n == strlen(same_file[i]) && strncmp(driver, same_file[i], n) == 0)
			return (int)(strlen("sqlite+") + n);
	shown = dburl_pg_redact(url);
	if (n == strlen("pysqlcipher") && strncmp(driver, "pysqlcipher", n) == 0)
		errbuf_fail(err, errlen,
		    "'%s' names an SQLCipher database, encrypted, which autopack cannot open: "
		    "export it to a plain SQLite file (sqlcipher_export) and name that with %s",
		    shown, DBURL_EXAMPLE);
	else
		errbuf_fail(err, errlen,
		    "'%s': unknown SQLAlchemy driver '%.*s' for SQLite; name the file with %s "
		    "(sqlite+pysqlite:// and sqlite+aiosqlite:// are taken as sqlite://)",
		    shown, (int)n, driver, DBURL_EXAMPLE);
	free(shown);
	return -1;
}

/* Parse and canonicalise one URL; -1 with a message naming the problem. */
int dburl_parse(
    const char *url, char **canonical_path, char **canonical_url, char *err, size_t errlen)
{
	static const char prefix[] = "sqlite://";
	const char *rest;
	char *path;
	int skip;

	*canonical_path = NULL;
	*canonical_url = NULL;
	if (url == NULL || url[0] == '\0')
		return errbuf_fail(err, errlen, "empty database URL; use %s", DBURL_EXAMPLE);
	if (dburl_check_chars(url, err, errlen) != 0)
		return -1;
	if (strcmp(url, ":memory:") == 0)
		return errbuf_fail(err, errlen,
		    "':memory:' is not supported (every process must reach the same file); "
		    "use %s",
		    DBURL_EXAMPLE);
	if (dburl_pg_scheme(url)) {
		if (dburl_pg_parse(url, canonical_url, err, errlen) != 0)
			return -1;
		*canonical_path = xstrdup(*canonical_url);
		return dburl_check_utf8(canonical_path, canonical_url, err, errlen);
	}
	if ((skip = dburl_sqlalchemy_sqlite(url, err, errlen)) < 0)
		return -1;
	if (skip > 0 && strncmp(url + skip, "://", 3) != 0)
		return errbuf_fail(err, errlen,
		    "'%s' is not an sqlite URL: %.*s: is followed by three slashes, then the path; "
		    "use %s",
		    url, skip, url, DBURL_EXAMPLE);
	if (skip == 0 && strncmp(url, prefix, sizeof prefix - 1) != 0)
		return dburl_refuse_scheme(url, err, errlen);
	rest = url + (skip > 0 ? (size_t)skip + 3 : sizeof prefix - 1);
	if (rest[0] == '\0')
		return errbuf_fail(err, errlen, "'%s' names no file; use %s", url, DBURL_EXAMPLE);
	if (rest[0] != '/')
		return errbuf_fail(err, errlen,
		    "'%s': sqlite URLs take no host part (sqlite:// is followed by a third "
		    "slash, then the path); use %s",
		    url, DBURL_EXAMPLE);
	if (dburl_check_path(url, rest + 1, err, errlen) != 0)
		return -1;
	path = dburl_canonical(url, rest + 1, err, errlen);
	if (path == NULL)
		return -1;
	*canonical_path = path;
	*canonical_url = xasprintf("sqlite:///%s", path);
	if (dburl_check_length(canonical_path, canonical_url, err, errlen) != 0)
		return -1;
	return dburl_check_utf8(canonical_path, canonical_url, err, errlen);
}

/* Parse the value of `name`, or report it as the source of the error. */
static int dburl_parse_named(
    const char *name, const char *value, char **path, char **url, char *err, size_t errlen)
{
	char sub[400];

	if (dburl_parse(value, path, url, sub, sizeof sub) == 0)
		return 0;
	return errbuf_fail(err, errlen, "%s: %s", name, sub);
}

/* Pick the database: --db, else the environment, where two that disagree are refused. */
int dburl_resolve(const char *flag_value, char **canonical_path, char **canonical_url,
    const char **source, char *err, size_t errlen)
{
	const char *primary = getenv(DBURL_ENV_PRIMARY), *legacy = getenv(DBURL_ENV_LEGACY);
	char *p2 = NULL, *u2 = NULL;
	int rc;

	*canonical_path = NULL;
	*canonical_url = NULL;
	/* DATABASE_URL belongs to other programs too: set empty, it names nothing. */
	if (legacy != NULL && legacy[0] == '\0')
		legacy = NULL;
	/* An explicit flag outranks the environment, which is not even read: DATABASE_URL
	 * is often set for another program. */
	if (flag_value != NULL) {
		if (source != NULL)
			*source = "--db";
		return dburl_parse_named(
		    "--db", flag_value, canonical_path, canonical_url, err, errlen);
	}
	/* AUTOPACK_DB_URL is autopack's own: set but empty is a mistake (a unit's
	 * `Environment=AUTOPACK_DB_URL=`, a variable expanded to nothing), not a silent fall
	 * back to DATABASE_URL. */
	if (primary != NULL && primary[0] == '\0')
		return errbuf_fail(err, errlen,
		    "%s is set but empty: set it to a database URL (%s), unset it, or pass --db",
		    DBURL_ENV_PRIMARY, DBURL_EXAMPLE);
	if (primary == NULL && legacy == NULL)
		return errbuf_fail(err, errlen,
		    "no database named: pass --db with %s, or set %s (or %s); there is no "
		    "default database",
		    DBURL_EXAMPLE, DBURL_ENV_PRIMARY, DBURL_ENV_LEGACY);
	if (source != NULL)
		*source = primary != NULL ? DBURL_ENV_PRIMARY : DBURL_ENV_LEGACY;
	rc = dburl_parse_named(primary != NULL ? DBURL_ENV_PRIMARY : DBURL_ENV_LEGACY,
	    primary != NULL ? primary : legacy, canonical_path, canonical_url, err, errlen);
	if (rc != 0 || primary == NULL || legacy == NULL)
		return rc;
	/* Both are set: they must name the same file. Another kind of URL is shown by its
	 * scheme alone: it may carry a password. */
	if (dburl_parse(legacy, &p2, &u2, err, errlen) != 0 || strcmp(p2, *canonical_path) != 0) {
		if (u2 != NULL)
			errbuf_fail(err, errlen,
			    "%s names %s but %s names %s; set only one, make them name the same "
			    "file, or pass --db (which outranks both)",
			    DBURL_ENV_PRIMARY, *canonical_url, DBURL_ENV_LEGACY, u2);
		else
			errbuf_fail(err, errlen,
			    "%s names %s but %s is set to another database (a '%.*s' URL); unset "
			    "one of them, or pass --db (which outranks both)",
			    DBURL_ENV_PRIMARY, *canonical_url, DBURL_ENV_LEGACY,
			    (int)strcspn(legacy, ":/@"), legacy);
		rc = -1;
		free(*canonical_path);
		free(*canonical_url);
		*canonical_path = *canonical_url = NULL;
	}
	free(p2);
	free(u2);
	return rc;
}
