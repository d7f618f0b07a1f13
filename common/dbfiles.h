/*
 * The files of an SQLite database that nothing but SQLite may write: the database itself,
 * its -wal, -shm and -journal. A path given for an output (a log file, an export) is
 * checked against them, so that a typo cannot overwrite or append to the database.
 */
#ifndef AUTOPACK_DBFILES_H
#define AUTOPACK_DBFILES_H

/* Whether `path` names one of the files of the SQLite database at `db_path` (its canonical
 * absolute path): by name, once the directory of `path` is resolved (a -wal or -journal
 * not made yet included), or as another name of the same file (a symbolic or hard link);
 * with `fd` >= 0, the file open there is compared too. Returns the file's suffix ("" for
 * the database itself, "-wal", "-shm", "-journal"), or NULL when it is none of them. */
const char *dbfiles_match(const char *db_path, const char *path, int fd);
/* What a suffix dbfiles_match returned names: "the database itself" or "one of the
 * database's files". */
const char *dbfiles_what(const char *sfx);

#endif
