#include "common/store/dburl.h"
#include "common/store/dburl_pg.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	size_t n;

	if (sep == NULL && (colon == NULL || (slash != NULL && slash < colon)))
		return errbuf_fail(err, errlen,
		    "'%s' is a bare path, not a database URL; write sqlite:///%s", url, url);
	n = sep != NULL ? (size_t)(sep - url) : (size_t)(colon - url);
	return errbuf_fail(err, errlen, "unsupported URL scheme '%.*s' in '%s'; use %s", (int)n,
	    url, url, DBURL_EXAMPLE);
}

/* Check the path part of a sqlite:/// URL for forms that name no file. */
static int dburl_check_path(const char *url, const char *path, char *err, size_t errlen)
{
	if (path[0] == '\0')
		return errbuf_fail(err, errlen, "'%s' names no file; use %s", url, DBURL_EXAMPLE);
	if (strchr(path, '?') != NULL)
		return errbuf_fail(err, errlen, "'%s': query strings are not supported; use %s",
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

/* Parse and canonicalise one URL; -1 with a message naming the problem. */
int dburl_parse(
    const char *url, char **canonical_path, char **canonical_url, char *err, size_t errlen)
{
	static const char prefix[] = "sqlite://";
	const char *rest;
	char *path;

	*canonical_path = NULL;
	*canonical_url = NULL;
	if (url == NULL || url[0] == '\0')
		return errbuf_fail(err, errlen, "empty database URL; use %s", DBURL_EXAMPLE);
	if (strcmp(url, ":memory:") == 0)
		return errbuf_fail(err, errlen,
		    "':memory:' is not supported (every process must reach the same file); "
		    "use %s",
		    DBURL_EXAMPLE);
	if (dburl_pg_scheme(url)) {
		if (dburl_pg_parse(url, canonical_url, err, errlen) != 0)
			return -1;
		*canonical_path = xstrdup(*canonical_url);
		return 0;
	}
	if (strncmp(url, prefix, sizeof prefix - 1) != 0)
		return dburl_refuse_scheme(url, err, errlen);
	rest = url + sizeof prefix - 1;
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
	return 0;
}

/* Pick the database from --db and the environment; -1 if none, or two disagree. */
int dburl_resolve(const char *flag_value, char **canonical_path, char **canonical_url,
    const char **source, char *err, size_t errlen)
{
	const char *names[3] = { "--db", DBURL_ENV_PRIMARY, DBURL_ENV_LEGACY };
	const char *values[3];
	char *path = NULL, *curl = NULL, sub[400];
	int first = -1;

	values[0] = flag_value;
	values[1] = getenv(DBURL_ENV_PRIMARY);
	values[2] = getenv(DBURL_ENV_LEGACY);
	*canonical_path = NULL;
	*canonical_url = NULL;
	for (int i = 0; i < 3; i++) {
		char *p, *u;

		if (values[i] == NULL || values[i][0] == '\0')
			continue;
		if (dburl_parse(values[i], &p, &u, sub, sizeof sub) != 0) {
			free(path);
			free(curl);
			return errbuf_fail(err, errlen, "%s: %s", names[i], sub);
		}
		if (first < 0) {
			first = i;
			path = p;
			curl = u;
			continue;
		}
		if (strcmp(p, path) != 0) {
			errbuf_fail(err, errlen,
			    "%s names %s but %s names %s; set only one, or make them name the "
			    "same file",
			    names[first], curl, names[i], u);
			free(p);
			free(u);
			free(path);
			free(curl);
			return -1;
		}
		free(p);
		free(u);
	}
	if (first < 0)
		return errbuf_fail(err, errlen,
		    "no database named: pass --db with %s, or set %s (or %s); there is no "
		    "default database",
		    DBURL_EXAMPLE, DBURL_ENV_PRIMARY, DBURL_ENV_LEGACY);
	*canonical_path = path;
	*canonical_url = curl;
	if (source != NULL)
		*source = names[first];
	return 0;
}
