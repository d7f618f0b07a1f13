/* A SQLite writer's checkpoints, run by the store after its commits (a WAL hook in place of
 * SQLite's automatic checkpoint, which does the same but drops the result): a failure is
 * counted and described for the caller to report, and the database file's mtime and size
 * are recorded after each, so that a write by anyone else (the writer's connection is the
 * file's only writer, and in WAL mode it writes the file only when it checkpoints) shows
 * as a moved mtime or another size. */
#include "common/store/store_checkpoint.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Format a file time as UTC with nanoseconds. */
static void ckpt_time(const struct timespec *t, char buf[48])
{
	struct tm tm;
	time_t sec = t->tv_sec;
	char day[32];

	if (gmtime_r(&sec, &tm) == NULL || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(day, sizeof day, "%lld", (long long)sec);
	snprintf(buf, 48, "%s.%09ldZ", day, (long)t->tv_nsec);
}

/* Whether two file times differ. */
static bool ckpt_time_moved(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec != b->tv_sec || a->tv_nsec != b->tv_nsec;
}

/* Stat the database file by name: true, with sb, if it is still the file opened. */
static bool ckpt_stat(const struct store_ckpt *c, struct stat *sb)
{
	return stat(c->path, sb) == 0 && sb->st_dev == c->dev && sb->st_ino == c->ino;
}

/* Read the first STORE_CKPT_HEAD bytes of the database file, then the meta table's page,
 * into buf through the write connection's own descriptor (one opened apart and closed
 * would drop SQLite's locks on the file): SQLITE_OK, SQLITE_IOERR_SHORT_READ if the file
 * is shorter, or another error. */
static int ckpt_head_read(const struct store_ckpt *c, unsigned char *buf)
{
	sqlite3_file *f = NULL;
	int rc;

	if (sqlite3_file_control(c->conn, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
	    f == NULL || f->pMethods == NULL)
		return SQLITE_ERROR;
	rc = f->pMethods->xRead(f, buf, STORE_CKPT_HEAD, 0);
	if (rc == SQLITE_OK && c->meta_len > 0)
		rc = f->pMethods->xRead(
		    f, buf + STORE_CKPT_HEAD, (int)c->meta_len, (sqlite3_int64)c->meta_off);
	return rc;
}

/* Record the file's mtime, size and first bytes as the handle's own. */
static void ckpt_record(struct store_ckpt *c, const struct stat *sb)
{
	c->mtime = sb->st_mtim;
	c->size = sb->st_size;
	c->head_known = ckpt_head_read(c, c->head) == SQLITE_OK;
}

/* The wal-index state a checkpoint leaves: the write-ahead log's salts, its frame count
 * and how many of its frames were copied into the database file (SQLite's shared-memory
 * index, in native byte order: the first header at 0, the checkpoint record at 96). */
struct ckpt_wal_state {
	uint32_t salt[2];
	uint32_t frames;
	uint32_t backfill;
};

/* Read the wal-index state through connection h's own mapping of it (the -shm file is
 * never opened apart: closing another descriptor of it would drop SQLite's locks):
 * false if it is not mapped or not one SQLite initialised. */
static bool ckpt_wal_read(sqlite3 *h, struct ckpt_wal_state *w)
{
	sqlite3_file *f = NULL;
	volatile void *map = NULL;
	unsigned char b[100];
	uint32_t version;

	if (sqlite3_file_control(h, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
	    f == NULL || f->pMethods == NULL || f->pMethods->iVersion < 2 ||
	    f->pMethods->xShmMap == NULL)
		return false;
	if (f->pMethods->xShmMap(f, 0, 32768, 0, &map) != SQLITE_OK || map == NULL)
		return false;
	memcpy(b, (const void *)map, sizeof b);
	memcpy(&version, b, 4);
	if (version != 3007000 || b[12] == 0)
		return false;
	memcpy(&w->frames, b + 16, 4);
	memcpy(w->salt, b + 32, 8);
	memcpy(&w->backfill, b + 96, 4);
	return true;
}

/* Keep w as the wal-index state this handle last left. */
static void ckpt_wal_keep(struct store_ckpt *c, const struct ckpt_wal_state *w)
{
	memcpy(c->wal_salt, w->salt, sizeof c->wal_salt);
	c->wal_frames = w->frames;
	c->wal_backfill = w->backfill;
}

/* Record the wal-index state after a checkpoint of this handle's (or at open). */
static void ckpt_wal_record(struct store_ckpt *c)
{
	struct ckpt_wal_state w;

	c->wal_known = ckpt_wal_read(c->conn, &w);
	if (c->wal_known)
		ckpt_wal_keep(c, &w);
}

/* The first salt as SQLite counts it: big-endian, one more at each restart of the log. */
static uint32_t ckpt_salt_seq(const uint32_t salt[2])
{
	const unsigned char *p = (const unsigned char *)&salt[0];

	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Whether the wal-index shows a checkpoint that this handle did not run since its last
 * (which copies into the database file only what was committed). This handle's commits
 * only add frames; it restarts the log (the next salt, nothing backfilled, frames added
 * at once) only when all of it was backfilled, which, between two checkpoints of its own,
 * happens at most once and only if its last one backfilled everything (the first frame
 * written into an empty log may draw new salts). So frames backfilled under the same
 * salts, any backfilled under new ones, a log emptied (a RESTART or TRUNCATE
 * checkpoint), or more restarts than this handle could have made, are another
 * connection's checkpoint. */
static bool ckpt_foreign_checkpoint(const struct store_ckpt *c)
{
	struct ckpt_wal_state w;
	uint32_t restarts, own;

	if (!c->wal_known || !ckpt_wal_read(c->conn, &w))
		return false;
	if (w.salt[0] == c->wal_salt[0] && w.salt[1] == c->wal_salt[1])
		return w.backfill > c->wal_backfill;
	if (w.backfill > 0 || w.frames == 0)
		return true;
	if (c->wal_frames == 0) /* the first frame of an empty log may draw new salts */
		return false;
	restarts = ckpt_salt_seq(w.salt) - ckpt_salt_seq(c->wal_salt);
	own = c->wal_backfill == c->wal_frames ? 1 : 0;
	return restarts > own;
}

/* How long a write with no trace of a checkpoint is given to show one: another
 * connection's checkpoint writes the file first and records what it backfilled after. */
#define CKPT_TRACE_WAIT_MS 2000

/* Whether sb differs from what was recorded, other than by another connection's
 * checkpoint (then recorded as if it were this handle's, with the file as it is now);
 * the wal-index state is recorded anew when it does not differ.
 * A difference with no trace of one is taken as another program's write (tampered, no
 * more checkpoints) once it has had CKPT_TRACE_WAIT_MS to show one; until then, true
 * without tampered: no checkpoint runs into the file. */
static bool ckpt_check(struct store_ckpt *c, const struct stat *sb)
{
	struct stat now;
	uint64_t t;

	if (c->tampered)
		return true;
	if (!ckpt_time_moved(&sb->st_mtim, &c->mtime) && sb->st_size == c->size) {
		/* A checkpoint of another connection's that left the mtime as it was (in
		 * the same clock tick as this handle's last) is no trace for a later write. */
		ckpt_wal_record(c);
		c->suspect_ms = 0;
		return false;
	}
#ifndef AUTOPACK_MUTANT_foreign_checkpoint_is_lost
	if (ckpt_foreign_checkpoint(c)) {
		c->foreign_checkpoints++;
		c->suspect_ms = 0;
		ckpt_record(c, ckpt_stat(c, &now) ? &now : sb);
		ckpt_wal_record(c);
		return false;
	}
	t = clock_mono_ms();
	if (c->suspect_ms == 0)
		c->suspect_ms = t > 0 ? t : 1;
	if (t - c->suspect_ms < CKPT_TRACE_WAIT_MS)
		return true;
#else
	(void)now;
	(void)t;
	(void)ckpt_foreign_checkpoint;
#endif
	c->tampered = true;
	c->seen_mtime = sb->st_mtim;
	c->seen_size = sb->st_size;
	return true;
}

/* What one checkpoint did: its result and, read right after it, the database file's
 * stat and the wal-index state. */
struct ckpt_result {
	int rc;
	char error[300];
	bool stat_ok;
	struct stat sb;
	bool wal_ok;
	struct ckpt_wal_state wal;
};

/* Run a passive checkpoint of c's database on connection h, on the calling thread, and
 * describe what it did into r. */
static void ckpt_run(const struct store_ckpt *c, sqlite3 *h, struct ckpt_result *r)
{
	int log = -1, done = -1, sys;

	r->rc = sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);
#ifdef AUTOPACK_MUTANT_checkpoint_failure_unnoticed
	r->rc = SQLITE_OK;
#endif
	r->error[0] = '\0';
	if (r->rc != SQLITE_OK && r->rc != SQLITE_BUSY) {
		sys = sqlite3_system_errno(h);
		snprintf(r->error, sizeof r->error, "%s (SQLite code %d%s%s)", sqlite3_errmsg(h),
		    sqlite3_extended_errcode(h), sys != 0 ? ", " : "",
		    sys != 0 ? strerror(sys) : "");
	}
	r->stat_ok = ckpt_stat(c, &r->sb);
	r->wal_ok = ckpt_wal_read(h, &r->wal);
}

/* Take what a checkpoint did as this handle's own: the file's mtime and size and the
 * wal-index state it left, and its outcome (`frames`: the WAL's frames when it was
 * asked for). */
static void ckpt_outcome(struct store_ckpt *c, const struct ckpt_result *r, int frames)
{
	if (r->stat_ok)
		ckpt_record(c, &r->sb);
	c->wal_known = r->wal_ok;
	if (r->wal_ok)
		ckpt_wal_keep(c, &r->wal);
	if (r->rc == SQLITE_BUSY) /* another connection is checkpointing: not ours to judge */
		return;
	if (r->rc == SQLITE_OK) {
		c->checkpoints++;
		c->failing = false;
		c->retry_at = 0;
		return;
	}
	c->failures++;
	c->failing = true;
	c->retry_at = frames + c->threshold;
	c->bg_turn = false;
	memcpy(c->error, r->error, sizeof c->error);
}

/* The checkpoints' own thread (store_ckpt_background) and its connection to the same
 * file. One checkpoint at a time: the handle's thread asks for it (CKPT_ASKED), this
 * thread runs it and leaves what it did (CKPT_DONE), the handle's thread takes that
 * (CKPT_IDLE); CKPT_STOP ends the thread once its checkpoint is over. */
struct ckpt_bg {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct db *db;
	const struct store_ckpt *c;
	enum {
		CKPT_IDLE,
		CKPT_ASKED,
		CKPT_DONE,
		CKPT_STOP
	} state;
	int asked_frames;
	struct ckpt_result result;
	void (*notify)(void *arg); /* called on the thread as each checkpoint ends, or NULL */
	void *notify_arg;
};

/* How long commits wait for the thread's catch-up before they go on all the same (the
 * log then starts again at a later turn). */
#define CKPT_HOLD_MS 200

/* Sync the database file after checkpoint r of connection h, which SQLite syncs only
 * when it copied the whole log: the pages it copied are then on disk, and the
 * checkpoint that copies the rest syncs only those. Nothing to do when r copied nothing
 * (`before`: the wal-index state before it, if known) or SQLite synced (the whole log
 * copied). A failure is r's. */
static void ckpt_bg_sync(sqlite3 *h, const struct ckpt_wal_state *before, struct ckpt_result *r)
{
	sqlite3_file *f = NULL;
	int rc;

	if (r->rc != SQLITE_OK)
		return;
	if (r->wal_ok && r->wal.backfill == r->wal.frames)
		return;
	if (r->wal_ok && before != NULL &&
	    memcmp(before->salt, r->wal.salt, sizeof before->salt) == 0 &&
	    before->backfill == r->wal.backfill)
		return;
	if (sqlite3_file_control(h, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
	    f == NULL || f->pMethods == NULL)
		return;
	if ((rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL)) != SQLITE_OK) {
		r->rc = rc;
		snprintf(r->error, sizeof r->error,
		    "syncing the database file after copying the log into it failed (SQLite code "
		    "%d)",
		    rc);
	}
}

/* The thread: run each checkpoint asked for until told to stop. */
static void *ckpt_bg_main(void *arg)
{
	struct ckpt_bg *b = arg;
	struct ckpt_wal_state before;
	struct ckpt_result r;
	bool known;
	void (*notify)(void *);
	void *notify_arg;

	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (b->state == CKPT_IDLE || b->state == CKPT_DONE)
			pthread_cond_wait(&b->wake, &b->lock);
		if (b->state == CKPT_STOP)
			break;
		pthread_mutex_unlock(&b->lock);
		known = ckpt_wal_read(db_sqlite_handle(b->db), &before);
		ckpt_run(b->c, db_sqlite_handle(b->db), &r);
		ckpt_bg_sync(db_sqlite_handle(b->db), known ? &before : NULL, &r);
		pthread_mutex_lock(&b->lock);
		if (b->state == CKPT_ASKED) {
			b->result = r;
			b->state = CKPT_DONE;
			pthread_cond_broadcast(&b->wake);
			notify = b->notify;
			notify_arg = b->notify_arg;
			if (notify != NULL) {
				pthread_mutex_unlock(&b->lock);
				notify(notify_arg);
				pthread_mutex_lock(&b->lock);
			}
		}
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* Whether no checkpoint of the thread's is running: one that ended is taken as this
 * handle's own first. Always true without the thread. */
static bool ckpt_bg_idle(struct store_ckpt *c)
{
	struct ckpt_bg *b = c->bg;
	struct ckpt_result r;
	bool idle, done;
	int frames;

	if (b == NULL)
		return true;
	pthread_mutex_lock(&b->lock);
	done = b->state == CKPT_DONE;
	idle = done || b->state == CKPT_IDLE;
	if (done) {
		r = b->result;
		frames = b->asked_frames;
		b->state = CKPT_IDLE;
	}
	pthread_mutex_unlock(&b->lock);
	if (done) {
		c->holding = false;
		ckpt_outcome(c, &r, frames);
	}
	return idle;
}

/* Wait for the checkpoint the thread runs, if any, to end, and take what it did as this
 * handle's. Nothing without the thread. */
static void ckpt_bg_wait(struct store_ckpt *c)
{
	struct ckpt_bg *b = c->bg;

	if (b == NULL)
		return;
	pthread_mutex_lock(&b->lock);
	while (b->state == CKPT_ASKED)
		pthread_cond_wait(&b->wake, &b->lock);
	pthread_mutex_unlock(&b->lock);
	ckpt_bg_idle(c);
}

/* Stop the thread once the checkpoint it runs, if any, has ended (what it did is taken
 * as this handle's), and close its connection. */
static void ckpt_bg_stop(struct store_ckpt *c)
{
	struct ckpt_bg *b = c->bg;

	if (b == NULL)
		return;
	ckpt_bg_wait(c);
	pthread_mutex_lock(&b->lock);
	b->state = CKPT_STOP;
	pthread_cond_broadcast(&b->wake);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	pthread_cond_destroy(&b->wake);
	pthread_mutex_destroy(&b->lock);
	db_close(b->db);
	free(b);
	c->bg = NULL;
	c->holding = false;
}

/* Free a record. */
static void ckpt_free(struct store_ckpt *c)
{
	if (c == NULL)
		return;
	ckpt_bg_stop(c);
	free(c->path);
	free(c->wal_path);
	free(c->head);
	free(c);
}

/* Ask the thread for a checkpoint of the log's `frames`. */
static void ckpt_bg_ask(struct store_ckpt *c, int frames)
{
	pthread_mutex_lock(&c->bg->lock);
	c->bg->state = CKPT_ASKED;
	c->bg->asked_frames = frames;
	pthread_cond_broadcast(&c->bg->wake);
	pthread_mutex_unlock(&c->bg->lock);
}

/* After each commit: once the WAL holds `threshold` frames (and, after a failure,
 * `retry_at`), unless the file was written by someone else since the last checkpoint,
 * run a passive one and record its outcome and the file's mtime and size after it.
 * With the thread, the first of each turn of the log runs there (it copies the log and
 * syncs the file) and this returns at once; the next copies and syncs only what was
 * committed while it ran, so that the log, all of it copied, starts again from its
 * beginning at the next commit (one checkpoint on the thread does not get there while
 * commits follow each other). That catch-up, and any after it in the same turn (another
 * connection kept the log from being copied whole, or the commits waited no longer),
 * runs on the thread too when the owner holds its commits for it (store_ckpt_notify),
 * else in the commit.
 * Returns SQLITE_OK always: the commit happened, a failed checkpoint does not undo it. */
static int ckpt_hook(void *arg, sqlite3 *h, const char *db, int frames)
{
	struct store_ckpt *c = arg;
	struct ckpt_result r;
	struct stat sb;

	(void)db;
	c->frames = frames;
	if (!ckpt_bg_idle(c))
		return SQLITE_OK;
	if (frames < c->threshold)
		c->bg_turn = false;
	if (frames < c->threshold || frames < c->retry_at || c->tampered)
		return SQLITE_OK;
	if (ckpt_stat(c, &sb) && ckpt_check(c, &sb))
		return SQLITE_OK;
	if (c->bg != NULL && (!c->bg_turn || c->bg->notify != NULL)) {
		if (c->bg_turn) {
			c->holding = true;
			c->hold_ms = clock_mono_ms();
		}
		c->bg_turn = true;
		ckpt_bg_ask(c, frames);
		return SQLITE_OK;
	}
	ckpt_run(c, h, &r);
	ckpt_outcome(c, &r, frames);
	return SQLITE_OK;
}

void store_ckpt_arm(struct store *st)
{
	struct store_ckpt *c;
	sqlite3 *h;
	int64_t n = 0, root = 0, page = 0;
	struct stat sb;

	if (st->db == NULL || st->backend != DB_SQLITE || !st->writable || st->ckpt != NULL)
		return;
	h = db_sqlite_handle(st->db);
	c = xcalloc(1, sizeof *c);
	c->path = xstrdup(st->path);
	c->wal_path = xasprintf("%s-wal", st->path);
	c->conn = h;
	c->dev = st->dev;
	c->ino = st->ino;
	c->threshold = 1000; /* SQLite's default */
	if (store_query_int(st->db, "PRAGMA wal_autocheckpoint", &n, NULL) == 0 && n > 0 &&
	    n < 1000000)
		c->threshold = (int)n;
	if (store_query_int(st->db, "SELECT rootpage FROM sqlite_schema WHERE name = 'meta'", &root,
	        NULL) == 0 &&
	    store_query_int(st->db, "PRAGMA page_size", &page, NULL) == 0 && root > 1 &&
	    root < INT32_MAX && page >= 512 && page <= 65536) {
		c->meta_off = (off_t)(root - 1) * (off_t)page;
		c->meta_len = (size_t)page;
	}
	c->head = xmalloc(STORE_CKPT_HEAD + c->meta_len);
	if (!ckpt_stat(c, &sb)) {
		ckpt_free(c);
		return;
	}
	ckpt_record(c, &sb);
	ckpt_wal_record(c);
	st->ckpt = c;
	sqlite3_wal_hook(h, ckpt_hook, c);
}

void store_ckpt_free(struct store *st)
{
	if (st->ckpt != NULL && st->db != NULL && st->backend == DB_SQLITE)
		sqlite3_wal_hook(db_sqlite_handle(st->db), NULL, NULL);
	ckpt_free(st->ckpt);
	st->ckpt = NULL;
}

bool store_ckpt_background(struct store *st, char *msg, size_t len)
{
	struct store_ckpt *c = st->ckpt;
	struct stat before, after;
	struct ckpt_bg *b;
	sigset_t all, was;
	struct db *db = NULL;
	char why[256];
	int rc;

	msg[0] = '\0';
	if (c == NULL || c->bg != NULL)
		return c != NULL;
	/* Its own connection to the file this handle has open: the same device and inode
	 * before and after it opens it, and a read that opens its write-ahead log. */
	if (!ckpt_stat(c, &before)) {
		snprintf(msg, len, "%s: no longer the file opened", c->path);
		return false;
	}
	if (db_sqlite_open(c->path, SQLITE_OPEN_READWRITE, STORE_BUSY_TIMEOUT_MS, &db, why,
	        sizeof why) != DB_OK) {
		snprintf(msg, len, "%s: %s", c->path, why);
		return false;
	}
	rc = sqlite3_exec(db_sqlite_handle(db),
	    "PRAGMA synchronous=FULL; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
	if (rc != SQLITE_OK || !ckpt_stat(c, &after)) {
		snprintf(msg, len, "%s: %s", c->path,
		    rc != SQLITE_OK ? sqlite3_errmsg(db_sqlite_handle(db)) :
		                      "no longer the file opened");
		db_close(db);
		return false;
	}
	b = xcalloc(1, sizeof *b);
	b->db = db;
	b->c = c;
	b->state = CKPT_IDLE;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->wake, NULL);
	/* The thread blocks every signal: a process's signals are for its main thread (the
	 * supervisor's loop), whose handlers may be gone at the end. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &was);
	rc = pthread_create(&b->thread, NULL, ckpt_bg_main, b);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	if (rc != 0) {
		snprintf(msg, len, "%s: cannot start a thread: %s", c->path, strerror(rc));
		pthread_cond_destroy(&b->wake);
		pthread_mutex_destroy(&b->lock);
		db_close(db);
		free(b);
		return false;
	}
	c->bg = b;
	return true;
}

void store_ckpt_notify(struct store *st, void (*done)(void *arg), void *arg)
{
	struct ckpt_bg *b = st->ckpt != NULL ? st->ckpt->bg : NULL;

	if (b == NULL)
		return;
	pthread_mutex_lock(&b->lock);
	b->notify = done;
	b->notify_arg = arg;
	pthread_mutex_unlock(&b->lock);
}

bool store_ckpt_holding(struct store *st, uint64_t *wait_ms)
{
	struct store_ckpt *c = st->ckpt;
	uint64_t held;

	if (c == NULL || !c->holding || ckpt_bg_idle(c))
		return false;
	held = clock_mono_ms() - c->hold_ms;
	if (held >= CKPT_HOLD_MS)
		return false;
	*wait_ms = CKPT_HOLD_MS - held;
	return true;
}

void store_ckpt_wait(struct store *st)
{
	if (st->ckpt != NULL)
		ckpt_bg_wait(st->ckpt);
}

void store_ckpt_ahead(struct store *st)
{
	struct store_ckpt *c = st->ckpt;
	struct stat sb;

	if (c == NULL || c->bg == NULL || c->frames == 0 || c->tampered || !ckpt_bg_idle(c))
		return;
	if (ckpt_stat(c, &sb) && ckpt_check(c, &sb))
		return;
	ckpt_bg_ask(c, c->frames);
}

void store_ckpt_foreground(struct store *st)
{
	if (st->ckpt != NULL)
		ckpt_bg_stop(st->ckpt);
}

bool store_ckpt_foreign_write(struct store *st, const struct stat *sb, char *buf, size_t len)
{
	struct store_ckpt *c = st->ckpt;
	char was[48], now[48];

	buf[0] = '\0';
#ifdef AUTOPACK_MUTANT_foreign_write_unnoticed
	return false;
#endif
	/* While a checkpoint of the thread's writes the file, its mtime and size tell
	 * nothing: they are judged after it, against what it left. */
	if (c == NULL || !ckpt_bg_idle(c))
		return false;
	c->file_checks++;
	if (!ckpt_check(c, sb) || !c->tampered)
		return false;
	ckpt_time(&c->mtime, was);
	ckpt_time(&c->seen_mtime, now);
	snprintf(buf, len,
	    "%s: the database file was written by another program after it was opened "
	    "(modified at %s, %lld bytes; as this process last wrote or opened it: %s, %lld "
	    "bytes): overwritten in place (e.g. by cp) or touched, it may no longer hold what "
	    "was committed",
	    c->path, now, (long long)c->seen_size, was, (long long)c->size);
	return true;
}

bool store_ckpt_file_is_own(const struct store *st)
{
	const struct store_ckpt *c = st->ckpt;
	unsigned char *now;
	bool own;
	int rc;

	if (c == NULL || !c->head_known)
		return true;
	now = xmalloc(STORE_CKPT_HEAD + c->meta_len);
	rc = ckpt_head_read(c, now);
	own = rc != SQLITE_IOERR_SHORT_READ &&
	    (rc != SQLITE_OK || memcmp(now, c->head, STORE_CKPT_HEAD + c->meta_len) == 0);
	free(now);
	return own;
}

int64_t store_ckpt_wal_bytes(const struct store *st)
{
	struct stat sb;

	if (st->ckpt == NULL || stat(st->ckpt->wal_path, &sb) != 0)
		return -1;
	return (int64_t)sb.st_size;
}
