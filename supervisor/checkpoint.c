/* The checkpoints of the database's write-ahead log, as the operator sees them. The store
 * runs them after its commits (common/store/store_checkpoint.h) and counts the failures; a
 * checkpoint that keeps failing (the database file made immutable with chattr +i,
 * read-only, on a full disk) leaves every commit durable in the write-ahead log, which then
 * grows without bound. So does a checkpoint that succeeds but may copy nothing past the
 * snapshot another connection reads (a read transaction left open: a sqlite3 shell inside
 * BEGIN, another program's long-lived session). Once a second this reports either: a
 * warning naming the file, the error or the readers, and the log's size, at most once a
 * minute while it goes on, and a line when checkpoints succeed, or the log starts again.
 * Dispatch goes on: stopping it would not shrink the log, and a disk that fills fails the
 * commits themselves, which stops the supervisor (exit 3). */
#include "supervisor/observe.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/store/store_checkpoint.h"
#include "common/store/store_lock.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKPOINT_LOG_MS 60000  /* at most one warning a minute while checkpoints fail */
#define CHECKPOINT_HELD_MS 10000 /* a log past twice its threshold this long is held back */
#define CHECKPOINT_READERS 8     /* readers named */

/* Append "pid (name)" of process pid to b. */
static void checkpoint_name_pid(struct strbuf *b, pid_t pid)
{
	char comm[64];

	procs_comm(pid, comm, sizeof comm);
	strbuf_printf(b, comm[0] != '\0' ? "%ld (%s)" : "%ld", (long)pid, comm);
}

/* Report a log that has not started again from its beginning while checkpoints succeed:
 * it has held twice the frames that start a checkpoint for CHECKPOINT_HELD_MS, and
 * another process holds a read mark of the wal-index, or the log grew by another
 * threshold meanwhile. Said again at most once a minute; the log's restart is said once. */
static void checkpoint_held_report(struct sup *s, const struct store_ckpt *c)
{
	pid_t pids[CHECKPOINT_READERS];
	struct strbuf who = { 0 };
	uint64_t now;
	int n;

	if (c->frames < c->threshold && s->ckpt_held_warned) {
		log_info("%s: the write-ahead log started again from its beginning (%lld bytes)",
		    c->wal_path, (long long)store_ckpt_wal_bytes(s->st));
		s->ckpt_held_warned = false;
	}
	if (c->failing || c->frames < 2 * c->threshold) {
		s->ckpt_held_ms = 0;
		return;
	}
	now = clock_mono_ms();
	if (s->ckpt_held_ms == 0) {
		s->ckpt_held_ms = now;
		s->ckpt_held_frames = c->frames;
		return;
	}
	if (now - s->ckpt_held_ms < CHECKPOINT_HELD_MS ||
	    (s->ckpt_held_warned && now - s->ckpt_held_logged_ms < CHECKPOINT_LOG_MS))
		return;
	n = store_lock_wal_readers(c->path, pids, CHECKPOINT_READERS);
	if (n == 0 && c->frames < s->ckpt_held_frames + c->threshold)
		return;
	for (int i = 0; i < n; i++) {
		if (i > 0)
			strbuf_puts(&who, ", ");
		checkpoint_name_pid(&who, pids[i]);
	}
	log_warn("%s: the write-ahead log holds %d frames (%lld bytes) and has not started again "
	         "for %llu s, though checkpoints succeed: they copy nothing past the snapshot "
	         "that another connection's read transaction reads (%s%s), and the log grows "
	         "with every commit until that transaction ends: end it (a sqlite3 shell left "
	         "inside BEGIN, a program that keeps a session or a cursor open)",
	    c->wal_path, c->frames, (long long)store_ckpt_wal_bytes(s->st),
	    (unsigned long long)((now - s->ckpt_held_ms) / 1000),
	    n > 0 ? "held by pid " : "its process is not in /proc/locks", n > 0 ? who.s : "");
	free(who.s);
	s->ckpt_held_warned = true;
	s->ckpt_held_logged_ms = now;
}

void checkpoint_report(struct sup *s)
{
	const struct store_ckpt *c = s->st->ckpt;
	uint64_t now;

	if (c == NULL || s->store_lost)
		return;
	checkpoint_held_report(s, c);
	if (!c->failing) {
		if (s->ckpt_warned)
			log_info(
			    "%s: checkpoints of the write-ahead log succeed again (%llu failed); "
			    "it is %lld bytes",
			    c->path, (unsigned long long)c->failures,
			    (long long)store_ckpt_wal_bytes(s->st));
		s->ckpt_warned = false;
		return;
	}
	now = clock_mono_ms();
	if (c->failures == s->ckpt_logged_failures ||
	    (s->ckpt_warned && now - s->ckpt_logged_ms < CHECKPOINT_LOG_MS))
		return;
	log_warn("%s: checkpointing the write-ahead log into the database file failed: %s; %llu "
	         "checkpoint(s) failed so far. Every commit stays durable in %s, which is now "
	         "%lld bytes and grows until a checkpoint succeeds: make the database file "
	         "writable again (lsattr, chattr -i, its mode, the disk)",
	    c->path, c->error, (unsigned long long)c->failures, c->wal_path,
	    (long long)store_ckpt_wal_bytes(s->st));
	s->ckpt_warned = true;
	s->ckpt_logged_ms = now;
	s->ckpt_logged_failures = c->failures;
}

json_t *checkpoint_json(struct sup *s)
{
	const struct store_ckpt *c = s->st->ckpt;
	int64_t wal = store_ckpt_wal_bytes(s->st);

	if (c == NULL)
		return json_null();
	return json_pack("{s:o, s:i, s:I, s:I, s:b, s:s?, s:I}", "wal_bytes",
	    wal >= 0 ? json_integer(wal) : json_null(), "wal_frames", c->frames, "checkpoints",
	    (json_int_t)c->checkpoints, "checkpoint_failures", (json_int_t)c->failures,
	    "checkpoint_failing", c->failing, "checkpoint_error", c->failing ? c->error : NULL,
	    "file_checks", (json_int_t)c->file_checks);
}
