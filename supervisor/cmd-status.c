/* Read-only control commands: status, workers, metrics. */
#include "supervisor/cmd.h"
#include "supervisor/observe.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Resident set size of a process in KiB, or -1. */
static long rss_kib(pid_t pid)
{
	char path[64];
	long pages = -1, rss = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One JSON object per live worker. */
static json_t *workers_json(struct sup *s)
{
	json_t *a = json_array();
	uint64_t now = clock_mono_ms();
	struct worker *w;

	for (w = s->workers; w != NULL; w = w->next) {
		if (w->state == W_EXITED)
			continue;
		json_array_append_new(a,
		    json_pack("{s:i, s:i, s:s, s:s?, s:s?, s:I, s:I, s:f, s:o, s:I, s:I}", "id",
		        w->id, "pid", (int)w->pid, "state", worker_state_name(w), "run_id",
		        w->lease.run != NULL ? w->lease.run->run_id : NULL, "phase_id",
		        w->lease.phase != NULL ? w->lease.phase->phase_id : NULL, "attempt_id",
		        (json_int_t)w->lease.attempt_id, "queued_attempt_id",
		        (json_int_t)w->queued.attempt_id, "age_seconds",
		        (double)(now - w->born_ms) / 1000.0, "phase_age_seconds",
		        w->lease.attempt_id != 0 ?
		            json_real((double)(now - w->lease.started_ms) / 1000.0) :
		            json_null(),
		        "rss_kib", (json_int_t)rss_kib(w->pid), "jobs_done",
		        (json_int_t)w->jobs_done));
	}
	return a;
}

/* Answer `workers`: the worker table. */
int cmd_workers(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	(void)c;
	(void)req;
	rep->body = json_pack("{s:o, s:i, s:b, s:s?}", "workers", workers_json(s), "target",
	    s->target, "crash_loop", s->crash_loop, "breaker", s->crash_loop ? s->breaker : NULL);
	return 0;
}

/* Add what watching needs: progress and ETA, recent failures, tokens, health. */
static void status_extend(struct sup *s, json_t *doc)
{
	int64_t last = metrics_last_commit_wall_ms(s);
	uint64_t in, out, calls;
	struct progress p;
	json_t *reasons = status_health_reasons(s);

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
	json_object_set_new(doc, "database", checkpoint_json(s));
	json_object_set_new(doc, "loop_lag_seconds", json_real(metrics_loop_lag(s)));
	json_object_set_new(
	    doc, "http_url", s->http_url != NULL ? json_string(s->http_url) : json_null());
	json_object_set_new(
	    doc, "log_file", s->cfg.log_file != NULL ? json_string(s->cfg.log_file) : json_null());
}

/* Where the commits' fsync runs: "server" (PostgreSQL), "none" (synchronous normal),
 * "on_loop" (in SQLite's COMMIT), "off_loop", or "auto" (off the loop while phases are
 * short). */
static const char *status_fsync_name(const struct sup *s)
{
	if (s->st->backend != DB_SQLITE)
		return "server";
	if (!s->cfg.sync_full)
		return "none";
	if (s->sync.fd < 0)
		return "on_loop";
	return s->cfg.fsync_where == FSYNC_OFF_LOOP ? "off_loop" : "auto";
}

/* Build the status document; NULL with err when the database cannot be read. */
json_t *status_doc(struct sup *s, struct store_err *err)
{
	int64_t counts[PHASE_STATE_COUNT];
	json_t *phases, *inflight, *doc;
	double up = (double)(clock_mono_ms() - s->started_ms) / 1000.0;
	struct worker *w;
	char devino[48];
	size_t i;

	if (status_phase_counts(s, counts, err) != 0)
		return NULL;
	phases = json_object();
	inflight = json_array();
	for (i = PHASE_STATE_NONE + 1; i < PHASE_STATE_COUNT; i++)
		json_object_set_new(phases, phase_state_name(i), json_integer(counts[i]));
	for (w = s->workers; w != NULL; w = w->next) {
		if (w->lease.attempt_id == 0)
			continue;
		json_array_append_new(inflight,
		    json_pack("{s:I, s:s, s:s, s:i, s:f}", "attempt_id",
		        (json_int_t)w->lease.attempt_id, "run_id", w->lease.run->run_id, "phase_id",
		        w->lease.phase->phase_id, "worker_id", w->id, "seconds",
		        (double)(clock_mono_ms() - w->lease.started_ms) / 1000.0));
	}
	store_devino(s->st, devino);
	doc = json_pack(
	    "{s:b, s:s, s:s, s:s, s:i, s:s, s:s?, s:f, s:s, s:s, s:I, s:I, s:b, s:s, s:b,"
	    " s:{s:i, s:i, s:b, s:s?, s:I, s:I, s:o}, s:o, s:o, s:{s:I, s:I, s:I, s:I},"
	    " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	    " s:{s:f, s:f}}",
	    "ok", 1, "db_url", s->st->url, "db_uuid", s->st->uuid, "db_device_inode", devino, "pid",
	    (int)getpid(), "version", AUTOPACK_VERSION, "session_id", s->session_id,
	    "uptime_seconds", up, "synchronous", s->cfg.sync_full ? "full" : "normal", "fsync",
	    status_fsync_name(s), "commit_window_ms", (json_int_t)s->cfg.commit_window_ms,
	    "commit_max", (json_int_t)s->cfg.commit_max, "paused", s->paused, "state",
	    status_state_name(s), "dry_run", s->cfg.dry_run, "pool", "target", s->target, "live",
	    s->live, "crash_loop", s->crash_loop, "breaker", s->crash_loop ? s->breaker : NULL,
	    "restarts", (json_int_t)s->n.worker_crashes, "spawn_failures",
	    (json_int_t)s->n.spawn_failures, "workers", workers_json(s), "phases", phases,
	    "in_flight", inflight, "queue", "phases_queued", (json_int_t)s->queued, "in_flight",
	    (json_int_t)s->in_flight, "leases_ahead", (json_int_t)s->nahead, "started",
	    (json_int_t)s->started, "counters", "dispatched", (json_int_t)s->n.dispatched,
	    "results", (json_int_t)s->n.results, "events_committed",
	    (json_int_t)s->n.events_committed, "events_duplicate",
	    (json_int_t)s->n.events_duplicate, "events_missing", (json_int_t)s->n.events_missing,
	    "rejected_wrong_uuid", (json_int_t)s->n.rejected_uuid, "rejected_stale",
	    (json_int_t)s->n.rejected_stale, "worker_crashes", (json_int_t)s->n.worker_crashes,
	    "worker_timeouts", (json_int_t)s->n.worker_timeouts, "spawn_failures",
	    (json_int_t)s->n.spawn_failures, "commits", (json_int_t)s->n.commits,
	    "commits_synced_off_loop", (json_int_t)s->n.commits_synced_off_loop, "commit_failures",
	    (json_int_t)s->n.commit_failures, "writes_refused", (json_int_t)s->n.writes_refused,
	    "rates", "results_per_second", up > 0 ? (double)s->n.results / up : 0.0,
	    "events_per_second", up > 0 ? (double)s->n.events_committed / up : 0.0);
	status_extend(s, doc);
	return doc;
}

/* Answer `status` with the status document. */
int cmd_status(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	struct store_err err;

	(void)c;
	(void)req;
	if ((rep->body = status_doc(s, &err)) == NULL)
		return cmd_error(rep, "store_error", "%s", err.text);
	return 0;
}

/* Answer `metrics` with the exposition. */
int cmd_metrics(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	char *text = metrics_text(s);

	(void)c;
	(void)req;
	rep->body = json_pack("{s:s}", "text", text);
	free(text);
	return 0;
}
