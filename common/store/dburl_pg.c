/* PostgreSQL database URLs, parsed by libpq (PQconninfoParse) and written back in one
 * canonical form without a password. */
#include "common/store/dburl_pg.h"
#include "common/envsecret.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <pg_config_manual.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBURL_PG_EXAMPLE                                                                           \
	"postgresql://autopack@db.example:5432/autopack or "                                       \
	"postgresql://autopack@/autopack?host=/run/postgresql"

/* The connection parameters a URL may set, and whether they go into the canonical URL. */
static const struct {
	const char *key;
	bool canonical;
} dburl_pg_keys[] = {
	{ "user", true },
	{ "password", false },
	{ "dbname", true },
	{ "host", true },
	{ "port", true },
	{ "sslmode", true },
	{ "sslrootcert", true },
	{ "sslcert", true },
	{ "sslkey", true },
	{ "sslcrl", true },
	{ "passfile", true },
	{ "target_session_attrs", true },
	{ "connect_timeout", false },
	{ "application_name", false },
};

/* The password of the one URL this process resolved with a password in it. */
static char *dburl_pg_secret_url, *dburl_pg_secret;

/* PGPASSWORD, once dburl_pg_take_env_password took it out of the environment. */
static char *dburl_pg_env_secret;

/* Return true if `url` uses a PostgreSQL scheme. */
bool dburl_pg_scheme(const char *url)
{
	return strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0 ||
	    strncmp(url, "postgresql+", 11) == 0 || strncmp(url, "postgres+", 9) == 0;
}

/* Return true if `url` is a canonical PostgreSQL URL. */
bool dburl_is_pg(const char *url)
{
	return url != NULL && strncmp(url, "postgresql://", 13) == 0;
}

/* Copy the key of the query parameter at `p` (up to '=', '&' or the end), %XX decoded,
 * into key (truncated to n bytes). */
static void dburl_pg_query_key(const char *p, char *key, size_t n)
{
	size_t i = 0;
	unsigned int c;

	for (; *p != '\0' && *p != '=' && *p != '&' && i + 1 < n; p++) {
		if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]) &&
		    sscanf(p + 1, "%2x", &c) == 1) {
			key[i++] = (char)c;
			p += 2;
		} else {
			key[i++] = *p;
		}
	}
	key[i] = '\0';
}

/* Mark in mask[] (one byte per byte of `url`) the bytes of every password `url` holds: the
 * text after its user's ':' and before the '@' (libpq looks for the '@' before the first
 * '/'; a '/' of the password itself makes it look no further, and the text up to the
 * last '@' before the query is marked all the same), and the value of each query
 * parameter whose name, %XX decoded, is password. A '?', '#' or '/' in a password, or a
 * parameter named passwor%64, is marked as libpq reads it. Returns whether any is. */
static bool dburl_pg_secrets(const char *url, bool *mask)
{
	const char *auth = strstr(url, "://"), *slash, *at, *colon;
	size_t n = strlen(url);
	bool any = false;
	char key[32];

	memset(mask, 0, n);
	if (auth == NULL)
		return false;
	auth += 3;
	slash = auth + strcspn(auth, "/");
	at = memrchr(auth, '@', (size_t)(slash - auth));
	if (at == NULL && *slash == '/')
		at = memrchr(slash, '@', strcspn(slash, "?"));
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon != NULL && at > colon + 1) {
		memset(mask + (colon + 1 - url), 1, (size_t)(at - colon - 1));
		any = true;
	}
	for (const char *p = auth; (p = strpbrk(p, "?&")) != NULL; p++) {
		const char *eq = p + 1 + strcspn(p + 1, "=&");
		size_t len;

		dburl_pg_query_key(p + 1, key, sizeof key);
		if (strcmp(key, "password") != 0 || *eq != '=')
			continue;
		len = strcspn(eq + 1, "&");
		memset(mask + (eq + 1 - url), 1, len);
		any = any || len > 0;
	}
	return any;
}

char *dburl_pg_redact(const char *url)
{
	size_t n = strlen(url);
	bool *mask = xcalloc(n + 1, sizeof *mask);
	struct strbuf b = { 0 };

	dburl_pg_secrets(url, mask);
	for (size_t i = 0; i < n; i++) {
		if (!mask[i])
			strbuf_put(&b, url + i, 1);
		else if (i == 0 || !mask[i - 1])
			strbuf_puts(&b, "***");
	}
	free(mask);
	return b.s != NULL ? b.s : xstrdup("");
}

void dburl_pg_hide_password(char *url)
{
	bool *mask;
	size_t n;

	if (url == NULL || !dburl_pg_scheme(url))
		return;
	n = strlen(url);
	mask = xcalloc(n + 1, sizeof *mask);
	if (dburl_pg_secrets(url, mask))
		for (size_t i = 0; i < n; i++)
			if (mask[i])
				url[i] = '*';
	free(mask);
}

/* `text` (a message of libpq's, a value read from the URL) as a heap string with each
 * password of `url` it quotes replaced by "***", and "***" for the whole of a text that is
 * part of one (a port read from a password holding a '/'). */
static char *dburl_pg_mask(const char *url, const char *text)
{
	size_t n = strlen(url);
	bool *mask = xcalloc(n + 1, sizeof *mask);
	struct strbuf b = { 0 };
	char *out = xstrdup(text);

	dburl_pg_secrets(url, mask);
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		char *secret, *hit;

		if (!mask[i] || (i > 0 && mask[i - 1]))
			continue;
		while (i + len < n && mask[i + len])
			len++;
		secret = xstrndup(url + i, len);
		if (out[0] != '\0' && strstr(secret, out) != NULL) {
			free(out);
			out = xstrdup("***");
		}
		while ((hit = strstr(out, secret)) != NULL) {
			b.len = 0;
			strbuf_put(&b, out, (size_t)(hit - out));
			strbuf_puts(&b, "***");
			strbuf_puts(&b, hit + len);
			free(out);
			out = xstrdup(b.s);
		}
		free(secret);
	}
	free(b.s);
	free(mask);
	return out;
}

/* Append `s` percent-encoded where a URL part needs it (`keep` lists the characters that
 * may stay as they are besides letters, digits and -._~). */
static void dburl_pg_encode(struct strbuf *b, const char *s, const char *keep)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~", c) != NULL || strchr(keep, c) != NULL)
			strbuf_put(b, s, 1);
		else
			strbuf_printf(b, "%%%02X", c);
	}
}

/* The value of `key` in a parsed option list, or NULL. */
static const char *dburl_pg_get(const PQconninfoOption *o, const char *key)
{
	for (; o->keyword != NULL; o++)
		if (strcmp(o->keyword, key) == 0)
			return o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
	return NULL;
}

/* Check that every parameter set is one autopack accepts; -1 naming the first other. */
static int dburl_pg_check_keys(
    const PQconninfoOption *o, const char *shown, char *err, size_t errlen)
{
	for (; o->keyword != NULL; o++) {
		size_t i;

		if (o->val == NULL)
			continue;
		for (i = 0; i < ARRAY_SIZE(dburl_pg_keys); i++)
			if (strcmp(o->keyword, dburl_pg_keys[i].key) == 0)
				break;
		if (i == ARRAY_SIZE(dburl_pg_keys))
			return errbuf_fail(err, errlen,
			    "'%s': the connection parameter '%s' is not supported (it could make "
			    "the URL name another database than it shows); use %s",
			    shown, o->keyword, DBURL_PG_EXAMPLE);
	}
	return 0;
}

/* Refuse a URL that names a parameter twice: in its query and in its user, host, port
 * or path (libpq takes the last one, so the URL would show one database and reach
 * another), or twice in its query. `rest` is the URL from "://" on; its user part ends,
 * as libpq reads it, at the first '@' before the first '/' (a password may hold '?'). */
static int dburl_pg_check_twice(const char *rest, const char *shown, char *err, size_t errlen)
{
	const char *auth = rest + 3, *slash = auth + strcspn(auth, "/");
	const char *at = memchr(auth, '@', (size_t)(slash - auth));
	const char *hp = at != NULL ? at + 1 : auth, *end = hp + strcspn(hp, "/?");
	const char *colon, *q = strchr(end, '?');
	bool user = at != NULL && at > auth && *auth != ':', pass, host, port, db;
	char key[32], seen[16][32];
	size_t nseen = 0;

	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	pass = colon != NULL;
	colon = hp < end && *hp == '[' ? memchr(hp, ']', (size_t)(end - hp)) : hp;
	colon = colon != NULL ? memchr(colon, ':', (size_t)(end - colon)) : NULL;
	host = (colon != NULL ? colon : end) > hp;
	port = colon != NULL && colon + 1 < end;
	db = *end == '/' && end[1] != '\0' && end[1] != '?' && end[1] != '#';
	for (const char *p = q; p != NULL; p = strchr(p + 1, '&')) {
		const char *twice = NULL;

		dburl_pg_query_key(p + 1, key, sizeof key);
		if ((strcmp(key, "user") == 0 && user) || (strcmp(key, "password") == 0 && pass) ||
		    (strcmp(key, "host") == 0 && host) || (strcmp(key, "port") == 0 && port) ||
		    (strcmp(key, "dbname") == 0 && db))
			twice = strcmp(key, "dbname") == 0                       ? "in its path" :
			    strcmp(key, "host") == 0 || strcmp(key, "port") == 0 ? "after its '@'" :
			                                                           "before its '@'";
		for (size_t i = 0; twice == NULL && i < nseen; i++)
			if (strcmp(seen[i], key) == 0)
				twice = "earlier in its query";
		if (twice != NULL)
			return errbuf_fail(err, errlen,
			    "'%s' names '%s' twice (%s and as ?%s=): name it once; use %s", shown,
			    key, twice, key, DBURL_PG_EXAMPLE);
		if (nseen < ARRAY_SIZE(seen))
			memcpy(seen[nseen++], key, sizeof key);
	}
	return 0;
}

/* Write the canonical URL of a parsed option list completed with libpq's defaults. */
static char *dburl_pg_compose(
    const PQconninfoOption *o, const char *user, const char *host, const char *port)
{
	struct strbuf b = { 0 };
	char sep = '?';

	strbuf_puts(&b, "postgresql://");
	dburl_pg_encode(&b, user, "");
	strbuf_puts(&b, "@");
	if (host[0] != '/') {
		if (strchr(host, ':') != NULL)
			strbuf_printf(&b, "[%s]", host);
		else
			dburl_pg_encode(&b, host, "");
		strbuf_printf(&b, ":%s", port);
	}
	strbuf_puts(&b, "/");
	dburl_pg_encode(&b, dburl_pg_get(o, "dbname"), "");
	if (host[0] == '/') {
		strbuf_puts(&b, "?host=");
		dburl_pg_encode(&b, host, "/");
		strbuf_printf(&b, "&port=%s", port);
		sep = '&';
	}
	for (size_t i = 0; i < ARRAY_SIZE(dburl_pg_keys); i++) {
		const char *k = dburl_pg_keys[i].key, *v = dburl_pg_get(o, k);

		if (!dburl_pg_keys[i].canonical || v == NULL || strcmp(k, "user") == 0 ||
		    strcmp(k, "dbname") == 0 || strcmp(k, "host") == 0 || strcmp(k, "port") == 0)
			continue;
		strbuf_printf(&b, "%c%s=", sep, k);
		dburl_pg_encode(&b, v, "/");
		sep = '&';
	}
	return b.s;
}

/* Check the host and port: one server, a numeric port. `port_shown` is the port as a
 * message shows it ("***" when it was read from a password holding a '/'). */
static int dburl_pg_check_server(const char *host, const char *port, const char *port_shown,
    const char *shown, char *err, size_t errlen)
{
	char *end;
	long p;

	if (strchr(host, ',') != NULL || strchr(port, ',') != NULL)
		return errbuf_fail(err, errlen,
		    "'%s' names several servers; name one (every supervisor must reach the same "
		    "database); use %s",
		    shown, DBURL_PG_EXAMPLE);
	p = strtol(port, &end, 10);
	if (*end != '\0' || p < 1 || p > 65535)
		return errbuf_fail(err, errlen, "'%s': port '%s' is not a port number%s; use %s",
		    shown, port_shown,
		    strcmp(port, port_shown) != 0 ? " (a '/' in a password is written %2F)" : "",
		    DBURL_PG_EXAMPLE);
	return 0;
}

/* Parse and canonicalise a PostgreSQL URL; -1 with a message that hides the password. */
int dburl_pg_parse(const char *url, char **canonical_url, char *err, size_t errlen)
{
	PQconninfoOption *o = NULL, *defs = NULL;
	const char *rest = strstr(url, "://");
	char *shown = dburl_pg_redact(url), *libpq_url, *msg = NULL, *masked = NULL;
	const char *user, *host, *port;
	char lower[256];
	int rc = -1;

	*canonical_url = NULL;
	libpq_url = xasprintf("postgresql%s", rest != NULL ? rest : "");
	if (rest == NULL || strncmp(rest, "://", 3) != 0) {
		errbuf_fail(
		    err, errlen, "'%s' is not a PostgreSQL URL; use %s", shown, DBURL_PG_EXAMPLE);
		goto out;
	}
	if (strchr(url, '#') != NULL) {
		errbuf_fail(err, errlen,
		    "'%s': fragments ('#...') are not supported (a '#' in a password is written "
		    "%%23); use %s",
		    shown, DBURL_PG_EXAMPLE);
		goto out;
	}
	o = PQconninfoParse(libpq_url, &msg);
	if (o == NULL) {
		size_t n = msg != NULL ? strlen(msg) : 0;

		while (n > 0 && isspace((unsigned char)msg[n - 1]))
			msg[--n] = '\0';
		masked = dburl_pg_mask(url, msg != NULL ? msg : "cannot be parsed");
		errbuf_fail(err, errlen, "'%s': %s; use %s", shown, masked, DBURL_PG_EXAMPLE);
		goto out;
	}
	if (dburl_pg_check_keys(o, shown, err, errlen) != 0 ||
	    dburl_pg_check_twice(rest, shown, err, errlen) != 0)
		goto out;
	if (dburl_pg_get(o, "dbname") == NULL) {
		errbuf_fail(err, errlen,
		    "'%s' names no database (the path after the host is the database name); "
		    "use %s",
		    shown, DBURL_PG_EXAMPLE);
		goto out;
	}
	defs = PQconndefaults();
	/* An address from the environment (PGHOSTADDR, or the service file PGSERVICE names)
	 * is where libpq connects, whatever host the URL names. */
	if (defs != NULL && dburl_pg_get(defs, "hostaddr") != NULL) {
		errbuf_fail(err, errlen,
		    "'%s': the environment sets the server's address %s (PGHOSTADDR, or the service "
		    "file PGSERVICE names), which libpq would connect to instead of the host the URL "
		    "names; unset it, or write the address as the URL's host",
		    shown, dburl_pg_get(defs, "hostaddr"));
		goto out;
	}
	user = dburl_pg_get(o, "user");
	user = user != NULL ? user : defs != NULL ? dburl_pg_get(defs, "user") : NULL;
	host = dburl_pg_get(o, "host");
	host = host != NULL ? host : defs != NULL ? dburl_pg_get(defs, "host") : NULL;
	host = host != NULL ? host : DEFAULT_PGSOCKET_DIR;
	port = dburl_pg_get(o, "port");
	port = port != NULL ? port : defs != NULL ? dburl_pg_get(defs, "port") : NULL;
	port = port != NULL ? port : "5432";
	if (user == NULL) {
		errbuf_fail(err, errlen, "'%s' names no user and none is known; use %s", shown,
		    DBURL_PG_EXAMPLE);
		goto out;
	}
	masked = dburl_pg_mask(url, port);
	if (dburl_pg_check_server(host, port, masked, shown, err, errlen) != 0)
		goto out;
	if (host[0] != '/') {
		size_t i;

		for (i = 0; host[i] != '\0' && i + 1 < sizeof lower; i++)
			lower[i] = (char)tolower((unsigned char)host[i]);
		lower[i] = '\0';
		host = lower;
	}
	*canonical_url = dburl_pg_compose(o, user, host, port);
	if (dburl_pg_get(o, "password") != NULL) {
		free(dburl_pg_secret_url);
		free(dburl_pg_secret);
		dburl_pg_secret_url = xstrdup(*canonical_url);
		dburl_pg_secret = xstrdup(dburl_pg_get(o, "password"));
	}
	rc = 0;
out:
	PQconninfoFree(o);
	PQconninfoFree(defs);
	PQfreemem(msg);
	free(libpq_url);
	free(shown);
	free(masked);
	return rc;
}

/* The password given inside the URL that parsed to `canonical_url`, else the PGPASSWORD
 * taken out of the environment, or NULL. */
const char *dburl_pg_password(const char *canonical_url)
{
	if (dburl_pg_secret_url == NULL || strcmp(dburl_pg_secret_url, canonical_url) != 0)
		return dburl_pg_env_secret;
	return dburl_pg_secret;
}

void dburl_pg_take_env_password(void)
{
	char *v = env_secret_take("PGPASSWORD");

	if (v == NULL)
		return;
	if (dburl_pg_env_secret != NULL)
		explicit_bzero(dburl_pg_env_secret, strlen(dburl_pg_env_secret));
	free(dburl_pg_env_secret);
	dburl_pg_env_secret = v;
}
