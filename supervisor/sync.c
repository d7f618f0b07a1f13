/* The commit's fsync off the loop. With --synchronous full on SQLite (always in WAL mode
 * for a writer), a group of the writer's whose fsync is deferred (while phases are short,
 * by default; every group with --fsync-off-loop; none with --fsync-on-loop) commits at
 * PRAGMA synchronous=NORMAL: COMMIT writes the WAL frames without syncing them, and this
 * file makes them durable: an fdatasync of the write-ahead log runs on the libuv threadpool while the loop goes on
 * (reads frames, schedules, writes and commits the next group). A committed group is held
 * until an fsync that started after its COMMIT returned has completed; only then is it
 * released (acknowledgements, jobs, done callbacks). Groups are held in commit order, one
 * fsync runs at a time, and its end releases every group committed before it started.
 * While it runs, the writer commits the next group once as many writes are queued as the
 * fsync makes durable, else when it ends: groups stay large, commits few. A group whose
 * fsync is not deferred commits at FULL, which syncs the WAL in COMMIT: it and every group
 * held before it are released at once.
 * SQLite syncs the WAL itself before each checkpoint, so no frame reaches the database
 * file unsynced. A failed fsync cannot be retried safely (the kernel may have dropped the
 * pages it could not write): the groups held are never acknowledged and nothing more is
 * written (lifecycle_sync_failed). Every other write (control commands, the session's
 * records) commits at FULL, as the connection is set outside the writer's groups. */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The threads libuv's pool starts at its first job, as libuv 1.x makes them: the number
 * UV_THREADPOOL_SIZE says (default 4, at least 1, at most 1024), each with a stack of
 * 8 MiB. */
#define SYNC_POOL_THREADS_DEFAULT 4
#define SYNC_POOL_THREADS_MAX 1024
#define SYNC_POOL_STACK (8u << 20)

/* On the threadpool: fdatasync the job's descriptor; nothing else is touched. */
static void sync_work_cb(uv_work_t *req)
{
	struct sync_job *j = container_of(req, struct sync_job, req);

	j->err = fdatasync(j->fd) == 0 ? 0 : errno;
#ifdef AUTOPACK_MUTANT_sync_error_ignored
	j->err = 0;
#endif
}

static void sync_done_cb(uv_work_t *req, int status);

/* Start an fsync covering every group committed so far. */
static void sync_start(struct sup *s)
{
	struct sync_job *j = &s->sync.job;
	int rc;

	assert(!s->sync.running && s->sync.fd >= 0);
	s->sync.covers = s->sync.committed;
	s->sync.running = true;
	s->sync.syncing_ops = 0;
	for (const struct commit_group *g = s->sync.head; g != NULL; g = g->next)
		s->sync.syncing_ops += g->nops;
	j->fd = s->sync.fd;
	j->err = 0;
	j->req.data = s;
	rc = uv_queue_work(s->loop, &j->req, sync_work_cb, sync_done_cb);
	if (rc != 0) {
		/* Never for a valid request; fail as the fsync would. */
		s->sync.running = false;
		lifecycle_sync_failed(s, s->sync.path, EIO, s->sync.nheld);
		sync_drop(s);
	}
}

/* Release (durable) or drop the held groups up to `upto`, in commit order. Returns how
 * many. */
static uint64_t sync_release_upto(struct sup *s, uint64_t upto, bool durable)
{
	struct commit_group *g;
	uint64_t n = 0;

	while ((g = s->sync.head) != NULL && g->seq <= upto) {
		s->sync.head = g->next;
		if (s->sync.head == NULL)
			s->sync.tail = NULL;
		s->sync.nheld--;
		s->sync.release(s, g, durable);
		n++;
	}
	return n;
}

/* Back on the loop: release what the fsync made durable and start the next one; on a
 * failure, give up on writing. */
static void sync_done_cb(uv_work_t *req, int status)
{
	struct sup *s = req->data;
	struct sync_job *j = &s->sync.job;
	int err = status != 0 ? EIO : j->err;

	s->sync.running = false;
	if (err != 0) {
		lifecycle_sync_failed(s, s->sync.path, err, s->sync.nheld);
		sync_drop(s);
	} else {
		s->n.commits_synced_off_loop += sync_release_upto(s, s->sync.covers, true);
		/* A release may have committed again (and started that group's fsync). */
		if (s->sync.head != NULL && !s->sync.running && !s->writes_off)
			sync_start(s);
		/* The groups it was to cover may have been released already (by a commit synced
		 * in SQLite's COMMIT): a commit put off for it happens now all the same. */
		if (!s->sync.running && !s->writes_off)
			writer_sync_ended(s);
	}
	lifecycle_check_done(s);
}

/* Open the write-ahead log SQLite writes: the name's file must be the one recorded when
 * the database was opened (device and inode). Returns the descriptor, or -1 with why. */
static int sync_open_wal(const struct store *st, const char *path, char *why, size_t n)
{
	struct stat sb;
	int fd;

	if (st->wal_ino == 0) {
		snprintf(why, n, "%s did not exist when the database was opened", path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, n, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0 || sb.st_dev != st->wal_dev || sb.st_ino != st->wal_ino) {
		snprintf(why, n, "%s is no longer the write-ahead log the database opened", path);
		close(fd);
		return -1;
	}
	return fd;
}

static pthread_mutex_t sync_probe_gate = PTHREAD_MUTEX_INITIALIZER;

/* A thread of sync_pool_startable: waits at the gate, then ends. */
static void *sync_probe_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&sync_probe_gate);
	pthread_mutex_unlock(&sync_probe_gate);
	return NULL;
}

/* Whether libuv's pool can start: as many threads at once, with stacks as large, as it
 * starts at its first job, when a thread it cannot start aborts the process (an address
 * space limit, ulimit -v or LimitAS=, or a process limit too low). false with why. */
static bool sync_pool_startable(char *why, size_t n)
{
	static pthread_t threads[SYNC_POOL_THREADS_MAX];
	const char *env = getenv("UV_THREADPOOL_SIZE");
	long want = env != NULL ? strtol(env, NULL, 10) : SYNC_POOL_THREADS_DEFAULT;
	pthread_attr_t attr;
	struct rlimit lim;
	long made = 0;
	int rc = 0;

	want = want < 1 ? 1 : want > SYNC_POOL_THREADS_MAX ? SYNC_POOL_THREADS_MAX : want;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SYNC_POOL_STACK);
	pthread_mutex_lock(&sync_probe_gate);
	while (
	    made < want && (rc = pthread_create(&threads[made], &attr, sync_probe_main, NULL)) == 0)
		made++;
	pthread_mutex_unlock(&sync_probe_gate);
	for (long i = 0; i < made; i++)
		pthread_join(threads[i], NULL);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		return true;
	if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
		snprintf(why, n,
		    "the threads of the pool that would sync them cannot be started (%ld of %ld "
		    "with stacks of 8 MiB, then pthread_create: %s; the address space limit, "
		    "ulimit -v or LimitAS=, is %llu bytes)",
		    made, want, strerror(rc), (unsigned long long)lim.rlim_cur);
	else
		snprintf(why, n,
		    "the threads of the pool that would sync them cannot be started (%ld of %ld "
		    "with stacks of 8 MiB, then pthread_create: %s)",
		    made, want, strerror(rc));
	return false;
}

/* The threadpool's first request, which does nothing: it makes libuv start every thread
 * of its pool. */
static uv_work_t sync_pool_first;

static void sync_pool_nothing(uv_work_t *req)
{
	(void)req;
}

static void sync_pool_started(uv_work_t *req, int status)
{
	(void)req;
	(void)status;
}

void sync_init(struct sup *s, void (*release)(struct sup *s, struct commit_group *g, bool durable))
{
	char why[600];

	memset(&s->sync, 0, sizeof s->sync);
	s->sync.fd = -1;
	s->sync.release = release;
	if (s->cfg.fsync_where == FSYNC_ON_LOOP)
		return;
	if (!s->cfg.sync_full || s->st->backend != DB_SQLITE) {
		if (s->cfg.fsync_where == FSYNC_OFF_LOOP)
			log_warn(
			    "--fsync-off-loop has no effect with %s: commits are as without it",
			    s->cfg.sync_full ? "PostgreSQL" : "--synchronous normal");
		return;
	}
	s->sync.path = xasprintf("%s-wal", s->st->path);
	s->sync.fd = sync_open_wal(s->st, s->sync.path, why, sizeof why);
	if (s->sync.fd >= 0 && !sync_pool_startable(why, sizeof why)) {
		close(s->sync.fd);
		s->sync.fd = -1;
		log_warn("commits are synced by SQLite on the loop (slower): %s", why);
		return;
	}
	/* The pool's threads start here, while main still blocks the stop signals: they keep
	 * them blocked, so such a signal is taken by the loop's thread alone, never by a pool
	 * thread at the end, when the watchers are closed and its default action is back. */
	if (s->sync.fd >= 0 &&
	    uv_queue_work(s->loop, &sync_pool_first, sync_pool_nothing, sync_pool_started) != 0)
		log_warn("the threadpool could not be started now: it starts at the first sync");
	if (s->sync.fd >= 0 && s->cfg.fsync_where == FSYNC_OFF_LOOP)
		log_info(
		    "commits are made durable by an fdatasync of %s off the loop", s->sync.path);
	else if (s->sync.fd >= 0)
		log_info("while phases are short, commits are made durable off the loop (an"
		         " fdatasync of %s)",
		    s->sync.path);
	else if (s->cfg.fsync_where == FSYNC_OFF_LOOP)
		log_warn("commits are synced by SQLite on the loop (slower): %s", why);
	else
		log_info("commits are synced by SQLite on the loop: %s", why);
}

bool sync_deferring(const struct sup *s)
{
	if (s->sync.fd < 0)
		return false;
	return s->cfg.fsync_where == FSYNC_OFF_LOOP || lease_phases_short(s);
}

int sync_group_begin(struct sup *s, struct store_err *err)
{
	s->sync.defer = sync_deferring(s);
	if (!s->sync.defer || s->sync.normal)
		return 0;
	if (store_drain_set_synchronous(s->sd, false, err) != 0)
		return -1;
	s->sync.normal = true;
	return 0;
}

void sync_group_end(struct sup *s)
{
	struct store_err err;

	if (!s->sync.normal)
		return;
	/* Outside a group every commit syncs in SQLite, as the operator asked. */
	if (store_drain_set_synchronous(s->sd, true, &err) != 0)
		log_error("%s", err.text);
	else
		s->sync.normal = false;
}

void sync_hold(struct sup *s, struct commit_group *g)
{
#ifdef AUTOPACK_MUTANT_ack_before_sync
	s->sync.release(s, g, true);
	return;
#endif
	if (s->sync.fd < 0 || !s->sync.defer) {
		/* SQLite synced the WAL in this COMMIT: the groups before it are durable too. */
		sync_release_upto(s, UINT64_MAX, true);
		s->sync.release(s, g, true);
		return;
	}
	s->sync.defer = false;
	g->seq = ++s->sync.committed;
	g->next = NULL;
	if (s->sync.tail != NULL)
		s->sync.tail->next = g;
	else
		s->sync.head = g;
	s->sync.tail = g;
	s->sync.nheld++;
	if (!s->sync.running)
		sync_start(s);
}

bool sync_waiting(const struct sup *s)
{
	if (s->sync.tail != NULL && s->sync.tail->seq > s->sync.covers)
		return true;
	return s->sync.running && s->ops_n < s->sync.syncing_ops;
}

void sync_drop(struct sup *s)
{
	sync_release_upto(s, UINT64_MAX, false);
}

void sync_finish(struct sup *s)
{
	assert(!s->sync.running);
	sync_drop(s);
	sync_group_end(s);
	if (s->sync.fd >= 0)
		close(s->sync.fd);
	s->sync.fd = -1;
	free(s->sync.path);
	s->sync.path = NULL;
}
