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

/* What a write handle's checkpoints did (store->ckpt; NULL for other handles). */
struct store_ckpt {
	char *path;     /* the database file */
	char *wal_path; /* its write-ahead log */
	dev_t dev;      /* the database file's identity at open */
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
};

/* Take over the automatic checkpoints of the write handle `st` (SQLite, open, its path
 * and identity set): from now on, after each commit that leaves at least as many frames
 * in the WAL as PRAGMA wal_autocheckpoint says (default 1000), a passive checkpoint runs
 * on the same connection, as SQLite's own would; a failure is counted and described, and
 * the next try waits for that many frames more. The database file's mtime and size are
 * recorded now and after each checkpoint. A checkpoint is not run once the file was
 * found written by someone else. Nothing fails: without the record, nothing is checked. */
void store_ckpt_arm(struct store *st);
/* Free what store_ckpt_arm allocated; safe when it did not run. */
void store_ckpt_free(struct store *st);
/* Whether `sb` (a stat of the database file, the one opened) shows a write since the
 * last checkpoint of this handle (a moved mtime or another size); if so, describes it
 * into buf ("" otherwise). Always false for a handle without the record. */
bool store_ckpt_foreign_write(struct store *st, const struct stat *sb, char *buf, size_t len);
/* The size of the write-ahead log file in bytes; -1 if there is none to tell. */
int64_t store_ckpt_wal_bytes(const struct store *st);

#endif
