/*
 * The files of an SQLite database that nothing but SQLite may write: the database itself,
 * its -wal, -shm and -journal. A path given for an output (a log file, an export) is
 * checked against them, and against the files of any database, so that a typo cannot
 * overwrite or append to a database.
 */
#ifndef AUTOPACK_DBFILES_H
#define AUTOPACK_DBFILES_H

#include <stdbool.h>

/* Whether `path` names one of the files of the SQLite database at `db_path` (its canonical
 * absolute path): by name, once the directory of `path` is resolved (a -wal or -journal
 * not made yet included), or as another name of the same file (a symbolic or hard link);
 * with `fd` >= 0, the file open there is compared too. Returns the file's suffix ("" for
 * the database itself, "-wal", "-shm", "-journal"), or NULL when it is none of them. */
const char *dbfiles_match(const char *db_path, const char *path, int fd);
/* What a suffix dbfiles_match returned names: "the database itself" or "one of the
 * database's files". */
const char *dbfiles_what(const char *sfx);
/* Whether the file `path` (opened read-only: one this process may not read is not
 * judged) begins as one of any SQLite database's files: a database, a write-ahead log or
 * a WAL index (-shm). A log line or an NDJSON line begins with none of them. */
bool dbfiles_begins_as_database(const char *path);
/* Whether `path` is named <database>-wal, -shm or -journal beside a file that begins as a
 * database (an empty -wal, which its first bytes cannot tell, or one not made yet). */
bool dbfiles_names_database_side(const char *path);

#endif
