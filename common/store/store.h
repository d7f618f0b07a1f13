/*
 * The store: the only code that touches sqlite3. A store is one open autopack database,
 * named by its canonical path. Opening never creates a file; only store_init does.
 *
 * Functions return 0 on success or a negative STORE_E* code with a message in `err`
 * that names the database and what was wrong.
 */
#ifndef AUTOPACK_STORE_H
#define AUTOPACK_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/store/db.h"

enum store_errcode {
	STORE_OK = 0,
	STORE_ENOENT = -1,   /* no such file */
	STORE_ENOTDB = -2,   /* not SQLite, or SQLite but not autopack */
	STORE_EPARTIAL = -3, /* autopack meta present, tables missing */
	STORE_EVERSION = -4, /* schema newer than this program */
	STORE_EIO = -5,      /* SQLite or file system error */
	STORE_EINVAL = -6,   /* bad input (plan, arguments) */
	STORE_EEXIST = -7,   /* already exists */
	STORE_EBUSY = -8,    /* locked by another process */
	STORE_EMOVED = -9,   /* the file, its -wal or its -shm was replaced or removed under us */
	STORE_ELINKED = -10, /* the file has more than one name (hard links) */
	STORE_EIDENT = -11,  /* meta.db_uuid is not a canonical UUID */
	STORE_ESPENT = -12,  /* a drain session's budget is spent */
};

struct store_err {
	char text[1024];
	enum db_fault fault; /* the kind of the database's failure; DB_FAULT_NONE if not one */
};

struct store_ckpt;

struct store {
	struct db *db;
	enum db_backend backend;
	char *path;      /* canonical absolute path; PostgreSQL: the canonical URL */
	char *url;       /* canonical URL: sqlite:////abs/path.db, postgresql://user@host:5432/db */
	char *server_id; /* PostgreSQL: "<system identifier>/<database name>"; else NULL */
	uint64_t identity_checked_ms; /* PostgreSQL: the last store_identity_changed query */
	unsigned conn_gen;            /* PostgreSQL: bumped at each connection made again */
	char *pg_setup;               /* PostgreSQL: run again on each new connection, or NULL */
	char uuid[37];
	int schema_version;
	dev_t dev; /* identity of the file at open */
	ino_t ino;
	dev_t wal_dev, shm_dev; /* identity of <path>-wal and <path>-shm at a write open; */
	ino_t wal_ino, shm_ino; /* ino 0: not checked */
	off_t size_seen;        /* the file's largest size store_identity_changed saw (a writer) */
	int64_t data_version_seen; /* PRAGMA data_version when meta.db_uuid was last read */
	bool lost;                 /* store_identity_changed found the file or its WAL gone */
	bool writable;             /* opened with STORE_WRITE */
	bool tidy_on_close;        /* read-only, and no -wal or -shm existed before it opened */
	int migrated_from;         /* schema version this open upgraded from, or 0 */
	char *backup_path;         /* copy taken before that upgrade, or NULL */
	struct store_ckpt *ckpt;   /* a SQLite writer's checkpoints (store_checkpoint.h), or NULL */
};

enum store_mode {
	STORE_READ,             /* read-only; an older schema is reported, not changed */
	STORE_WRITE,            /* read-write, WAL; an older schema is backed up, then migrated */
	STORE_WRITE_REIDENTIFY, /* STORE_WRITE that also takes a meta.db_uuid that is not
	                           canonical (db reidentify replaces it) */
};

/* Tables counted in the identity banner, in banner order. */
enum store_table_count {
	STORE_COUNT_RUNS,
	STORE_COUNT_TIERS,
	STORE_COUNT_PHASES,
	STORE_COUNT_ATTEMPTS,
	STORE_COUNT_LLM_USAGE,
	STORE_COUNT_V2_EVENTS,
	STORE_COUNT_N,
};

/* What a banner shows: where the database is and what it holds. */
struct store_identity {
	int64_t size;     /* bytes in the main file */
	int64_t wal_size; /* bytes in <db>-wal, 0 if absent */
	char created_at[40];
	char created_by[200];
	int64_t counts[STORE_COUNT_N];
};

/* --- common/store/store_open.c --- */

/* Open the autopack database at canonical `path` (named by canonical `url`) into `st`.
 * Never creates a file. Refuses a missing file (STORE_ENOENT), a file with more than one
 * name (STORE_ELINKED, naming the count and the fix), a file that is not SQLite or not
 * autopack's (STORE_ENOTDB), missing tables or columns (STORE_EPARTIAL, listed), a newer
 * schema (STORE_EVERSION) and a meta.db_uuid that is not a canonical UUID (STORE_EIDENT),
 * all without writing to the file. STORE_WRITE upgrades an older schema after a backup
 * (store_migrate). On failure `st` holds nothing to close. */
int store_open(struct store *st, const char *path, const char *url, enum store_mode mode,
    struct store_err *err);
/* Close the database and free the handle's strings; safe on a zeroed handle. */
void store_close(struct store *st);
/* Write the open file's identity as "device:inode" (decimal) into buf. */
void store_devino(const struct store *st, char buf[48]);
/* Re-stat the path, and for a write handle its -wal and -shm: 0 if each is still the file
 * opened, STORE_EMOVED if one was removed or replaced (a different device:inode),
 * STORE_EIO if it cannot be checked; for a SQLite write handle also STORE_EMOVED if the
 * file shrank, or was written (its mtime or size moved) since the handle's last checkpoint
 * (store_checkpoint.h): another program wrote it. On STORE_EMOVED the handle is marked lost: what is
 * committed but still only in the write-ahead log the connection has open is copied into
 * the database file it opened (a checkpoint; the message says how it went), and closing
 * it later deletes no file by name. */
int store_identity_changed(struct store *st, struct store_err *err);
/* As store_identity_changed, and for a SQLite write handle meta.db_uuid and the count of
 * commits read again even when no other connection committed since they were last read
 * (PRAGMA data_version): after a commit that failed, which may have failed on content put
 * in the file by another program. */
int store_identity_recheck(struct store *st, struct store_err *err);
/* SQLite: PRAGMA data_version of the store's connection, which moves when another
 * connection commits; -1 when it cannot be read, or on PostgreSQL. */
int64_t store_data_version(struct store *st);

/* Whether the connection to a database server is gone (never for SQLite). */
bool store_connection_lost(struct store *st);
/* Begin connecting again to the database opened (PostgreSQL), without waiting for the
 * server: 0 once begun, with *fd the socket to wait on for writing (store_reconnect_poll
 * then makes the connection), STORE_EIO when it cannot begin; 0 for SQLite. Until the
 * connection is made the store's statements fail at once as on a lost connection. */
int store_reconnect_start(struct store *st, int *fd, struct store_err *err);
/* Drive the connection begun by store_reconnect_start once its socket is ready as last
 * asked (at first: writable), without waiting: STORE_EBUSY while it is being made (*fd
 * the socket to wait on next, which may change from one step to the next, for writing
 * when *write, else for reading); 0 once made and found the same database; STORE_EIO
 * when it failed; STORE_EMOVED when it now reaches another database. 0 for SQLite. */
int store_reconnect_poll(struct store *st, int *fd, bool *write, struct store_err *err);
/* Give up the connection being made (its time is up): the connection stays lost. */
void store_reconnect_abandon(struct store *st);
/* Connect again (store_reconnect_start, then store_reconnect_poll as the socket gets
 * ready), waiting up to `ms`: 0 once made and found the same database, STORE_EMOVED when
 * it reaches another one, STORE_EIO when it failed or had no answer in time (the
 * connection then stays lost). 0 for SQLite. For a process whose loop is over. */
int store_reconnect_wait(struct store *st, uint64_t ms, struct store_err *err);

/* --- common/store/store_init.c --- */

/* Create a new autopack database at `path`: the whole schema and the meta row in one
 * transaction. An existing autopack database is left alone: STORE_EEXIST, with its uuid
 * in the message and in `uuid` (if not NULL). Any other existing file is refused
 * untouched (STORE_ENOTDB / STORE_EPARTIAL / STORE_EVERSION). On failure the half-made
 * file is removed. On success `uuid` receives the new database's uuid. */
int store_init(const char *path, char uuid[37], struct store_err *err);

/* --- common/store/store_migrate.c --- */

/* Upgrade an older schema to SCHEMA_VERSION: copy the database to
 * <path>.v<old>-<UTC stamp>.bak with the sqlite3 backup API, then apply every migration
 * step in one BEGIN IMMEDIATE transaction and bump meta.schema_version. Sets
 * st->migrated_from and st->backup_path. A current schema is left alone (returns 0).
 * On failure nothing is changed and the backup (if taken) is named in the message. */
int store_migrate(struct store *st, struct store_err *err);
/* Copy the open database to a new file `dest` with the sqlite3 backup API; a partial
 * copy is removed on failure. */
int store_backup(struct store *st, const char *dest, struct store_err *err);

/* --- common/store/store_banner.c --- */

/* Return the table name of banner count `i` (enum store_table_count). */
const char *store_count_name(int i);
/* Fill `id` from the file system and the database; a count that cannot be read is -1. */
int store_identity_read(struct store *st, struct store_identity *id, struct store_err *err);
/* Print the identity banner, one "name: value" line a field: canonical URL, path, size,
 * device:inode, uuid, schema version, creation, row counts. A count that cannot be read
 * prints as "?". */
void store_banner(struct store *st, FILE *out);
/* The same fields, named the same, on one line, for a log whose every line is one JSON
 * object: "database URL: file PATH, size N bytes, device:inode D:I, uuid U, schema version
 * V, created AT by BY; rows: runs N, ...". The texts are as stored (the log escapes them).
 * The caller frees it. */
char *store_banner_line(struct store *st);

/* --- common/store/store_stats.c --- */

/* One labelled count. */
struct store_count {
	char *key;
	int64_t n;
};

/* A list of labelled counts. */
struct store_counts {
	struct store_count *items;
	size_t n;
};

/* Phase counts of one run. */
struct store_run_phases {
	char *run_id;
	char *state;
	int64_t total, queued, executing, complete, failed;
};

/* What db check reports besides the banner. */
struct store_stats {
	int64_t runs, phases;
	struct store_counts phase_states; /* every PhaseState (zeros too), then others */
	struct store_counts run_states;   /* states present, by count */
	struct store_run_phases *per_run; /* ordered by run id */
	size_t n_runs;
	int64_t v2_total, v2_success, v2_truncated;
	struct store_counts v2_by_category;   /* successful events */
	struct store_counts v2_by_complexity; /* successful events */
	int64_t usage_total, usage_failed, usage_tokens;
	int64_t usage_lost; /* of the failed: tries whose worker died before reporting them */
	/* tries on record whose outcome has not come (in flight, or of a supervisor that died:
	 * the next one makes them lost); not failed */
	int64_t usage_sent;
	/* rows left out of usage_tokens: a count no call reports (STORE_USAGE_PLAUSIBLE) */
	int64_t usage_excluded;
	struct store_usage_row *usage_excluded_rows; /* the first STORE_STATS_NAMED, by id */
	size_t n_usage_excluded_rows;
};

/* How many rows left out of a total db check names one by one. */
#define STORE_STATS_NAMED 10

/* An llm_usage_events row db check left out, its counts as the database holds them
 * (NULL for NULL; a text, a real or an integer as text). */
struct store_usage_row {
	int64_t id;
	char *total_tokens, *prompt_tokens, *completion_tokens;
};

/* Read every statistic db check prints. */
int store_stats_read(struct store *st, struct store_stats *stats, struct store_err *err);
/* Free what store_stats_read allocated. */
void store_stats_free(struct store_stats *stats);

/* --- common/store/store_plan.c --- */

/* What an import wrote. */
struct store_plan_summary {
	char **run_ids;
	size_t n_runs;
	int64_t tiers, phases;
};

/* Import a JSON plan (the text of a plan file; see README "Plan files"). The plan is read
 * one run at a time, each validated (its shape, then against the database) and written
 * with statements prepared once, all in one transaction: the first error names its JSON
 * path (runs[0].tiers[1].phases[2].scope.deliverables[0]: expected string) and nothing
 * is written (STORE_EINVAL); memory holds one run, not the plan. Relative workspaces are resolved against `base_dir`; `source` names the
 * plan in messages. */
int store_plan_import(struct store *st, const char *text, size_t len, const char *base_dir,
    const char *source, struct store_plan_summary *sum, struct store_err *err);
/* The largest plan file read. */
#define STORE_PLAN_MAX (256 << 20)

/* A plan file's text, read whole before the database is touched. */
struct store_plan_text {
	char *text;
	size_t len;
	char *base_dir; /* the file's directory; the current one for a pipe */
	bool regular;   /* a regular file (a pipe cannot be read twice) */
};

/* Read the plan at `path` (a file, or unless `regular_only` a pipe such as /dev/stdin), at
 * most STORE_PLAN_MAX bytes. Returns 0 or STORE_EINVAL naming the path and why. */
int store_plan_read(
    const char *path, bool regular_only, struct store_plan_text *pt, struct store_err *err);
/* Read a plan from the open descriptor `fd` (standard input: a pipe, a terminal, a file
 * from its offset) to its end, at most STORE_PLAN_MAX bytes, as store_plan_read reads a
 * pipe: not regular, its workspaces resolved against the current directory; `source`
 * names it in messages. Returns 0 or STORE_EINVAL naming `source` and why. */
int store_plan_read_fd(
    int fd, const char *source, struct store_plan_text *pt, struct store_err *err);
/* Free what store_plan_read filled in; safe on a zeroed one. */
void store_plan_text_free(struct store_plan_text *pt);
/* Read the plan file at `path` and import it, resolving workspaces against its
 * directory. Anything but a regular file (a FIFO, a terminal) is refused with
 * STORE_EINVAL without waiting on it. */
int store_plan_import_file(
    struct store *st, const char *path, struct store_plan_summary *sum, struct store_err *err);
/* Make `path` absolute against `base_dir` (NULL: the current directory) and collapse
 * "." and ".." lexically; the path need not exist. NULL if the cwd cannot be read. */
char *store_path_absolute(const char *path, const char *base_dir);
/* Free what an import put in `sum`. */
void store_plan_summary_free(struct store_plan_summary *sum);

/* --- common/store/store_seed.c --- */

#define STORE_SEED_RUN_ID "telemetry-collection-v4"

/* Add the telemetry seed run (ten small phases; README, "autopack-ctl commands")
 * with its deliverables written under the absolute directory `workspace`. Refuses with
 * STORE_EEXIST if the run exists. */
int store_seed_telemetry_run(
    struct store *st, const char *workspace, struct store_plan_summary *sum, struct store_err *err);

/* Return true if the failure in `err` is a busy or locked database: another connection
 * holds it for now, and a retry may well succeed. */
bool store_err_busy(const struct store_err *err);

/* Return a short name for a STORE_E* code ("ENOTDB"). */
const char *store_strerror(int code);

#endif
