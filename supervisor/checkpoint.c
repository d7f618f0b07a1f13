/* The checkpoints of the database's write-ahead log, as the operator sees them. The store
 * runs them after its commits (common/store/store_checkpoint.h) and counts the failures; a
 * checkpoint that keeps failing (the database file made immutable with chattr +i,
 * read-only, on a full disk) leaves every commit durable in the write-ahead log, which then
 * grows without bound. Once a second this reports it: a warning naming the file, the error
 * and the log's size, at most once a minute while the failures go on, and a line when a
 * checkpoint succeeds again. Dispatch goes on: stopping it would not shrink the log, and a
 * disk that fills fails the commits themselves, which stops the supervisor (exit 3). */
#include "supervisor/observe.h"
#include "common/log.h"
#include "common/store/store_checkpoint.h"
#include "common/util.h"

#define CHECKPOINT_LOG_MS 60000 /* at most one warning a minute while checkpoints fail */

void checkpoint_report(struct sup *s)
{
	const struct store_ckpt *c = s->st->ckpt;
	uint64_t now;

	if (c == NULL || s->store_lost)
		return;
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
