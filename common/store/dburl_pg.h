/*
 * PostgreSQL database URLs: postgresql://[user[:password]@]host[:port]/dbname[?params]
 * (also postgres:// and SQLAlchemy's postgresql+<driver>://), a Unix-socket directory
 * as ?host=/run/postgresql. The canonical form names everything libpq would otherwise
 * take from the environment (user, host, port), and never a password:
 *   postgresql://user@host:5432/dbname[?params]
 *   postgresql://user@/dbname?host=/run/postgresql&port=5432[&params]
 * A password given in the URL is accepted and kept in this process only
 * (dburl_pg_password); PGPASSWORD, ~/.pgpass and PGPASSFILE are libpq's own sources,
 * but for a supervisor, which takes PGPASSWORD out of its environment
 * (dburl_pg_take_env_password) so that no worker or check inherits it.
 */
#ifndef AUTOPACK_DBURL_PG_H
#define AUTOPACK_DBURL_PG_H

#include <stdbool.h>
#include <stddef.h>

/* Return true if `url` uses a PostgreSQL scheme. */
bool dburl_pg_scheme(const char *url);
/* Parse a PostgreSQL URL into its canonical form (a heap string), remembering a password
 * it holds for dburl_pg_password. -1 with a message in err that names what was wrong and
 * never shows the password. */
int dburl_pg_parse(const char *url, char **canonical_url, char *err, size_t errlen);
/* `url` (of any scheme) as a heap string with each password it holds replaced by "***":
 * that of its user part, read as libpq reads it (up to the '@', whatever '?' or '#' it
 * holds; a '/' in it too), and the value of each query parameter whose name, %XX decoded,
 * is password. The form every message shows. */
char *dburl_pg_redact(const char *url);
/* The password given inside the URL that parsed to `canonical_url` in this process, else
 * the one dburl_pg_take_env_password took, or NULL (libpq then reads PGPASSWORD or the
 * password file). */
const char *dburl_pg_password(const char *canonical_url);
/* Take PGPASSWORD out of this process's environment (the block /proc/<pid>/environ shows
 * included, overwritten), keeping it for dburl_pg_password: every connection this process
 * makes is given it as libpq would have read it (a URL's own password first, the password
 * file only without either), and no process it starts afterwards inherits it. Nothing
 * happens when it is unset. */
void dburl_pg_take_env_password(void);
/* Overwrite with '*', in place, each password a PostgreSQL URL holds (those
 * dburl_pg_redact replaces); other text, and a URL of another scheme, are left as they
 * are. For the command line: /proc/<pid>/cmdline shows it to every process of the
 * machine, a phase's check command included. */
void dburl_pg_hide_password(char *url);
/* Return true if `url` is a canonical PostgreSQL URL (as dburl_pg_parse writes). */
bool dburl_is_pg(const char *url);

#endif
