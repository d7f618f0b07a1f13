/*
 * Watching a drain: the status document (status.c, and cmd-status.c that serves it), the
 * progress and ETA (progress.c), the Prometheus metrics (metrics.c) and the HTTP server
 * with its dashboard (http.c, dashboard.html). None of it changes the drain: the writer
 * hands the metrics what it committed; everything else only reads. docs/observe.md says
 * what each figure means.
 */
#ifndef AUTOPACK_OBSERVE_H
#define AUTOPACK_OBSERVE_H

#include <jansson.h>

#include "common/progress.h"
#include "supervisor/sup.h"

/* --- status.c and cmd-status.c: the status document --- */

/* The supervisor's state: running, paused, breaker (tripped), stopping, stopping_now,
 * store_lost or store_failed (it gave up writing). */
const char *status_state_name(struct sup *s);
/* Phases by state (store_drain_phase_counts), read again after a commit or a dispatch,
 * else at most every 250 ms. */
int status_phase_counts(struct sup *s, int64_t counts[PHASE_STATE_COUNT], struct store_err *err);
/* Why the supervisor is unhealthy, as a JSON array of {code, message} (empty: healthy):
 * the database lost, commits failing, a crash loop. */
json_t *status_health_reasons(struct sup *s);
/* The status document that `autopack-ctl status --json` and GET /api/status return, or
 * NULL with err set when the database cannot be read (cmd-status.c). */
json_t *status_doc(struct sup *s, struct store_err *err);

/* The write-ahead log and its checkpoints, as the status document's "database" object
 * (checkpoint.c): wal_bytes, wal_frames, checkpoints, checkpoint_failures,
 * checkpoint_failing, checkpoint_error; null on PostgreSQL. */
json_t *checkpoint_json(struct sup *s);

/* --- progress.c: how far the drain is, and when it ends --- */

/* Start the figures (a resumed session's from the database). */
void progress_init(struct sup *s);
/* Count a committed attempt end: whether its phase left the queue for good, whether it
 * did what was asked, and whether it was handed back (a pause, a stop, a scale-down or a
 * lost worker ended it and its phase went back to the queue: no failure). */
void progress_finished(struct sup *s, bool left_queue, bool ok, bool handed_back);
/* Work out the drain's progress and ETA now. */
void progress_compute(struct sup *s, struct progress *p);
/* The median attempt duration per task category the ETA uses, as a JSON object. */
json_t *progress_medians_json(struct sup *s);
/* The database's newest failed attempts (message, log path) as a JSON array. */
json_t *progress_failures_json(struct sup *s);
void progress_free(struct sup *s);

/* --- metrics.c: counters and the exposition --- */

/* Start the metrics and the loop-lag sampler (after the loop exists). */
void metrics_init(struct sup *s);
/* Free the metrics (after the loop's handles are closed). */
void metrics_free(struct sup *s);
/* Count a group commit that began at began_ns (uv_hrtime) and has just succeeded. */
void metrics_commit(struct sup *s, uint64_t began_ns);
/* Count one write of the commit that just succeeded (its dup and refused flags set). */
void metrics_op(struct sup *s, const struct op *o);
/* Unix time in ms of the last commit; the start time before the first. */
int64_t metrics_last_commit_wall_ms(struct sup *s);
/* The longest the loop ran a timer late over the last 10 seconds, in seconds. */
double metrics_loop_lag(struct sup *s);
/* Tokens and LLM calls committed so far. */
void metrics_tokens(struct sup *s, uint64_t *input, uint64_t *output, uint64_t *calls);
/* The whole exposition (a heap string). */
char *metrics_text(struct sup *s);

/* --- http.c: the HTTP server --- */

/* Check an --http ADDR:PORT value; 0, or -1 with a message in err. */
int http_addr_check(const char *spec, char *err, size_t errlen);
/* Serve --http from a thread of its own; s->http_url names what it serves. Returns 0 or
 * -1 (logged). */
int http_start(struct sup *s);
/* Stop serving (the thread ends; the loop's handles stay until closed). */
void http_stop(struct sup *s);
/* Free the server (after the loop's handles are closed). */
void http_free(struct sup *s);

/* --- dashboard.html, compiled in (Makefile) --- */

extern const char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
