/* What the status document adds for those watching a drain: the supervisor's state, the
 * phase counts (read at most every STATUS_COUNTS_MS however often it is asked), health,
 * progress and ETA, recent failures and tokens. */
#include "supervisor/observe.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_COUNTS_MS 250

const char *status_state_name(struct sup *s)
{
	return s->store_lost        ? "store_lost" :
	    s->stopping == STOP_NOW ? "stopping_now" :
	    s->stopping             ? "stopping" :
	    s->paused               ? "paused" :
	                              "running";
}

int status_phase_counts(struct sup *s, int64_t counts[PHASE_STATE_COUNT], struct store_err *err)
{
	static int64_t cached[PHASE_STATE_COUNT];
	static uint64_t read_ms;
	static bool have;
	uint64_t now = clock_mono_ms();
	int rc;

	if (!have || now - read_ms >= STATUS_COUNTS_MS) {
		if ((rc = store_drain_phase_counts(s->sd, cached, err)) != 0) {
			have = false;
			return rc;
		}
		have = true;
		read_ms = now;
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

json_t *status_health_reasons(struct sup *s)
{
	json_t *a = json_array();
	int streak = metrics_commit_fail_streak(s);

	if (s->store_lost)
		reason_add(a, "database_lost",
		    "the database file %s is no longer the one opened; no further writes",
		    s->st->path);
	if (streak >= 3)
		reason_add(a, "commits_failing", "the last %d group commits failed", streak);
	if (s->crash_loop)
		reason_add(a, "crash_loop",
		    "workers keep crashing; the pool stopped respawning them (%llu crashes)",
		    (unsigned long long)s->n.worker_crashes);
	return a;
}

void status_extend(struct sup *s, json_t *doc)
{
	int64_t last = metrics_last_commit_wall_ms(s);
	uint64_t in, out, calls;
	struct progress p;
	json_t *reasons = status_health_reasons(s);
	const char *url = http_url(s);

	progress_compute(s, &p);
	metrics_tokens(s, &in, &out, &calls);
	json_object_set_new(doc, "progress", progress_to_json(&p));
	json_object_set_new(doc, "attempt_median_seconds", progress_medians_json(s));
	json_object_set_new(doc, "failures_recent", progress_failures_json(s));
	json_object_set_new(doc, "tokens",
	    json_pack("{s:I, s:I, s:I}", "input", (json_int_t)in, "output", (json_int_t)out,
	        "llm_calls", (json_int_t)calls));
	json_object_set_new(doc, "health",
	    json_pack("{s:b, s:o}", "ok", json_array_size(reasons) == 0, "reasons", reasons));
	json_object_set_new(doc, "last_commit_age_seconds",
	    last > 0 ? json_real((double)(clock_wall_ms() - last) / 1000.0) : json_null());
	json_object_set_new(doc, "writer_queue_writes", json_integer(s->ops_n));
	json_object_set_new(doc, "loop_lag_seconds", json_real(metrics_loop_lag(s)));
	json_object_set_new(doc, "http_url", url != NULL ? json_string(url) : json_null());
	json_object_set_new(
	    doc, "log_file", s->cfg.log_file != NULL ? json_string(s->cfg.log_file) : json_null());
}
