/*
 * Database URLs. The accepted SQLite forms are sqlite:///relative/path.db (relative to the
 * current directory of the calling process) and sqlite:////absolute/path.db, and the same
 * with SQLAlchemy's driver named (sqlite+pysqlite://, sqlite+aiosqlite://); PostgreSQL's
 * are in dburl_pg.h. A URL is
 * resolved once, in the process the user started, to the canonical form
 * sqlite:////abs/path.db whose directory part is realpath()-resolved; the file itself
 * need not exist (db init creates it).
 *
 * Functions return 0 on success or -1 with a message in `err` that names what was wrong
 * and shows a correct example.
 */
#ifndef AUTOPACK_DBURL_H
#define AUTOPACK_DBURL_H

#include <stddef.h>

/* The environment variables read by dburl_resolve when there is no --db flag, in this
 * order. */
#define DBURL_ENV_PRIMARY "AUTOPACK_DB_URL"
#define DBURL_ENV_LEGACY "DATABASE_URL"

/* Parse `url` and resolve it to a canonical absolute path and URL (heap strings the
 * caller frees). On failure both outputs are NULL. */
int dburl_parse(
    const char *url, char **canonical_path, char **canonical_url, char *err, size_t errlen);

/* Resolve the database: `flag_value` (the --db flag) if not NULL, and then the
 * environment is not read; else AUTOPACK_DB_URL, else DATABASE_URL (an empty DATABASE_URL,
 * which other programs set, counts as unset). Refuses when none is set, when
 * AUTOPACK_DB_URL is set but empty, and when both variables are set and do not name the
 * same file (one that does not parse counts as naming another). If `source` is not NULL it
 * receives a static description of the source used ("--db", ...). */
int dburl_resolve(const char *flag_value, char **canonical_path, char **canonical_url,
    const char **source, char *err, size_t errlen);

#endif
