/* A SQLite writer's checkpoints, run by the store itself after its commits, so that it
 * knows when it wrote the database file, whether that worked, and whether anyone else
 * wrote the file. */
#ifndef AUTOPACK_STORE_CHECKPOINT_H
#define AUTOPACK_STORE_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct store;
struct ckpt_bg;

/* How much of the database file's beginning is recorded after each checkpoint: its
 * first page at SQLite's default page size, with the header (change counter, page
 * count, schema cookie). The page of the meta table (the database's uuid) is recorded
 * with it. */
#define STORE_CKPT_HEAD 4096

/* What a write handle's checkpoints did (store->ckpt; NULL for other handles). */
struct store_ckpt {
	char *path;           /* the database file */
	char *wal_path;       /* its write-ahead log */
	struct sqlite3 *conn; /* the write connection, whose wal-index mapping is read */
	dev_t dev;            /* the database file's identity at open */
	ino_t ino;
	int threshold;              /* frames in the WAL that start a checkpoint */
	int retry_at;               /* after a failure: frames before the next try, else 0 */
	int frames;                 /* frames in the WAL after the last commit */
	uint64_t checkpoints;       /* checkpoints that succeeded */
	uint64_t failures;          /* checkpoints that failed */
	bool failing;               /* the last checkpoint failed */
	char error[300];            /* how the last failure went */
	struct timespec mtime;      /* the file's mtime and size after the last checkpoint */
	off_t size;                 /* ours (or at open) */
	bool tampered;              /* the file was written by someone else: no checkpoint */
	struct timespec seen_mtime; /* what was found then */
	off_t seen_size;
	bool wal_known;       /* the wal-index state below was read after the last checkpoint */
	uint32_t wal_salt[2]; /* then: the write-ahead log's salts, frames, frames backfilled */
	uint32_t wal_frames;
	uint32_t wal_backfill;
	uint64_t foreign_checkpoints; /* checkpoints by other connections, seen by their trace */
	uint64_t file_checks; /* times the file's mtime and size were judged (no checkpoint on) */
	uint64_t suspect_ms;  /* when a write with no trace was first seen (monotonic), else 0 */
	struct ckpt_bg *bg;   /* the checkpoints' own thread (store_ckpt_background), or NULL */
	bool bg_turn;         /* the thread's first checkpoint of this turn of the log is made */
	bool holding;         /* a catch-up runs: commits wait for it (store_ckpt_holding) */
	uint64_t hold_ms;     /* when it was asked for (monotonic) */
	off_t meta_off;       /* where the meta table's page is in the file, and its size */
	size_t meta_len;      /* (0: not known) */
	bool head_known;      /* head holds the file's first STORE_CKPT_HEAD bytes, then the */
	unsigned char *head;  /* meta table's page, as the last checkpoint left them */
};

/* Take over the automatic checkpoints of the write handle `st` (SQLite, open, its path
 * and identity set): from now on, after each commit that leaves at least as many frames
 * in the WAL as PRAGMA wal_autocheckpoint says (default 1000), a passive checkpoint runs
 * on the same connection, as SQLite's own would; a failure is counted and described, and
 * the next try waits for that many frames more. The database file's mtime and size are
 * recorded now and after each checkpoint. A checkpoint is not run once the file was
 * found written by someone else. Nothing fails: without the record, nothing is checked. */
void store_ckpt_arm(struct store *st);
/* Run the bulk of the checkpoints of the write handle `st` (armed) on a thread of their
 * own, with a connection of their own to the same file: the commit that starts one
 * returns at once and the next commits go on while it copies the log and syncs the
 * file; the commit after it copies and syncs only what came in meanwhile. What it did
 * is taken as the handle's at the first commit or check after it ended, and until then
 * a moved mtime or size of the file is not judged. Returns true, or false with msg
 * saying why (the checkpoints then stay in the commits). */
bool store_ckpt_background(struct store *st, char *msg, size_t len);
/* Have the thread's checkpoints call `done(arg)` on the thread when each one ends (it
 * must only wake the handle's thread, e.g. uv_async_send), and run the catch-up of each
 * turn of the log there too: the commit that starts it returns at once, and the handle's
 * owner holds its commits while it runs (store_ckpt_holding), so that it copies the
 * whole log and the log starts again at the next commit. Without the thread, nothing. */
void store_ckpt_notify(struct store *st, void (*done)(void *arg), void *arg);
/* Whether the commits of handle `st` are to wait for the thread's catch-up; if so,
 * *wait_ms is the most they wait for it before they go on all the same. What a
 * checkpoint that ended did is taken as the handle's first. */
bool store_ckpt_holding(struct store *st, uint64_t *wait_ms);
/* Wait for the thread's checkpoint, if one runs, to end, and take what it did as the
 * handle's: commits no longer wait for it. The thread stays. Safe without the thread. */
void store_ckpt_wait(struct store *st);
/* Have the thread copy everything the log holds now into the file, and sync the file,
 * whatever the number of frames, while the handle's owner goes on (its commits go on
 * too; closing the handle then copies only what they added). Nothing without the
 * thread, while it runs a checkpoint, with an empty log, or once the file was found
 * written by someone else. */
void store_ckpt_ahead(struct store *st);
/* Run the checkpoints in the commits again: wait for the thread's checkpoint, if one
 * runs, then stop the thread and close its connection. Safe without the thread. */
void store_ckpt_foreground(struct store *st);
/* Free what store_ckpt_arm allocated (the thread stopped first); safe when it did not
 * run. */
void store_ckpt_free(struct store *st);
/* Whether `sb` (a stat of the database file, the one opened) shows a write since the
 * last checkpoint of this handle (a moved mtime or another size); if so, describes it
 * into buf ("" otherwise). Always false for a handle without the record. */
bool store_ckpt_foreign_write(struct store *st, const struct stat *sb, char *buf, size_t len);
/* Whether the database file still begins, and holds the meta table's page, as after this
 * handle's last checkpoint (or at open); false when they differ or the file is shorter
 * now (another file copied over it, or truncated): its write-ahead log was not made for
 * what the file holds. True when it cannot be told. */
bool store_ckpt_file_is_own(const struct store *st);
/* The size of the write-ahead log file in bytes; -1 if there is none to tell. */
int64_t store_ckpt_wal_bytes(const struct store *st);

#endif
