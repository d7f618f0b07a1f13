/* What the status document, the metrics and /healthz share: the supervisor's state, the
 * phase counts (read again after a commit or a dispatch, else at most every
 * STATUS_COUNTS_MS, however often they are asked) and the reasons it is unhealthy. */
#include "supervisor/observe.h"
#include "common/store/store_checkpoint.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_COUNTS_MS 250

/* Name the supervisor's state. */
const char *status_state_name(struct sup *s)
{
	return s->store_lost        ? "store_lost" :
	    s->writes_off           ? "store_failed" :
	    s->stopping == STOP_NOW ? "stopping_now" :
	    s->stopping             ? "stopping" :
	    s->crash_loop           ? "breaker" :
	    s->paused               ? "paused" :
	                              "running";
}

/* Count phases by state, from the cache while it holds; STORE_E* on failure. */
int status_phase_counts(struct sup *s, int64_t counts[PHASE_STATE_COUNT], struct store_err *err)
{
	static int64_t cached[PHASE_STATE_COUNT];
	static uint64_t read_ms, read_commits, read_dispatched;
	static bool have;
	uint64_t now = clock_mono_ms();
	int rc;

	if (!have || now - read_ms >= STATUS_COUNTS_MS || read_commits != s->n.commits ||
	    read_dispatched != s->n.dispatched) {
		if ((rc = store_drain_phase_counts(s->sd, cached, err)) != 0) {
			have = false;
			return rc;
		}
		have = true;
		read_ms = now;
		read_commits = s->n.commits;
		read_dispatched = s->n.dispatched;
	}
	memcpy(counts, cached, sizeof cached);
	return 0;
}

/* Append a reason {code, message} to the array. */
static void reason_add(json_t *a, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reason_add(json_t *a, const char *code, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_array_append_new(a, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

/* List the reasons the supervisor is unhealthy (empty when healthy). */
json_t *status_health_reasons(struct sup *s)
{
	json_t *a = json_array();
	int streak = s->commit_fail_streak;

	if (s->store_lost)
		reason_add(a, "database_lost",
		    "the database file %s is no longer the one opened; no further writes",
		    s->st->path);
	if (s->writes_off && !s->store_lost)
		reason_add(a, "writes_stopped", "the supervisor gave up on the database: %s",
		    s->stop_reason != NULL ? s->stop_reason : "its writes failed");
	else if (streak >= 3)
		reason_add(a, "commits_failing", "the last %d group commits failed", streak);
	if (!s->store_lost && s->st->ckpt != NULL && s->st->ckpt->failing)
		reason_add(a, "checkpoints_failing",
		    "checkpointing the write-ahead log into %s failed (%llu time(s)): %s; the "
		    "write-ahead log grows until one succeeds",
		    s->st->path, (unsigned long long)s->st->ckpt->failures, s->st->ckpt->error);
	if (s->crash_loop)
		reason_add(a, "crash_loop",
		    "the breaker tripped: no dispatch and no respawn until `autopack-ctl resume` or"
		    " `scale` (%s)",
		    s->breaker);
	return a;
}
