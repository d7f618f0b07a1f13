/* How long this process's statements waited for the database, on either backend: each
 * wait of DB_WAITED_MIN_MS or more is kept (the last DB_WAITED_KEPT), with when it began
 * and ended and which statement waited, so that a stall of the supervisor's loop spent
 * waiting for the database names the database, not the supervisor (supervisor/lag.c).
 * PostgreSQL's waits are the statements' waits for the server's answers (db_pg_wait.c);
 * SQLite's are the calls into SQLite that took that long (a busy wait for a lock another
 * process holds, a checkpoint, a slow disk: sqlite/db_sqlite.c). Thread-safe. */
#ifndef AUTOPACK_STORE_DB_WAITED_H
#define AUTOPACK_STORE_DB_WAITED_H

#include <stddef.h>
#include <stdint.h>

#define DB_WAITED_MIN_MS 100
#define DB_WAITED_KEPT 16

/* The monotonic clock in ms, coarse (to a few ms) and cheap enough to read around every
 * call into SQLite. */
uint64_t db_waited_clock_ms(void);
/* Keep the wait of statement `sql` from `start` to `end` (ms, CLOCK_MONOTONIC, or its
 * coarse form) when it lasted DB_WAITED_MIN_MS or more. */
void db_waited_note(uint64_t start, uint64_t end, const char *sql);
/* How long the waits kept overlapped the monotonic times `from` to `to` (ms); the first
 * characters of the statement that waited longest go to sql ("" when none). */
uint64_t db_waited(uint64_t from, uint64_t to, char *sql, size_t n);

#endif
