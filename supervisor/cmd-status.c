/* Read-only control commands: status, workers, metrics. */
#include "supervisor/cmd.h"
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
		    json_pack("{s:i, s:i, s:s, s:s?, s:s?, s:I, s:f, s:I, s:I}", "id", w->id, "pid",
		        (int)w->pid, "state", worker_state_name(w), "run_id",
		        w->lease.run != NULL ? w->lease.run->run_id : NULL, "phase_id",
		        w->lease.phase != NULL ? w->lease.phase->phase_id : NULL, "attempt_id",
		        (json_int_t)w->lease.attempt_id, "age_seconds",
		        (double)(now - w->born_ms) / 1000.0, "rss_kib", (json_int_t)rss_kib(w->pid),
		        "jobs_done", (json_int_t)w->jobs_done));
	}
	return a;
}

int cmd_workers(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	(void)c;
	(void)req;
	rep->body = json_pack("{s:o, s:i, s:b, s:s?}", "workers", workers_json(s), "target",
	    s->target, "crash_loop", s->crash_loop, "breaker", s->crash_loop ? s->breaker : NULL);
	return 0;
}

int cmd_status(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	int64_t counts[PHASE_STATE_COUNT];
	json_t *phases = json_object(), *inflight = json_array();
	double up = (double)(clock_mono_ms() - s->started_ms) / 1000.0;
	struct store_err err;
	struct worker *w;
	size_t i;

	(void)c;
	(void)req;
	if (store_drain_phase_counts(s->sd, counts, &err) != 0) {
		json_decref(phases);
		json_decref(inflight);
		return cmd_error(rep, "store_error", "%s", err.text);
	}
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
	rep->body = json_pack(
	    "{s:s, s:s, s:i, s:s, s:s?, s:f, s:s, s:I, s:I, s:b, s:s, s:b,"
	    " s:{s:i, s:i, s:b, s:s?, s:I, s:I, s:o}, s:o, s:o, s:{s:I, s:I, s:I},"
	    " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	    " s:{s:f, s:f}}",
	    "db_url", s->st->url, "db_uuid", s->st->uuid, "pid", (int)getpid(), "version",
	    AUTOPACK_VERSION, "session_id", s->session_id, "uptime_seconds", up, "synchronous",
	    s->cfg.sync_full ? "full" : "normal", "commit_window_ms",
	    (json_int_t)s->cfg.commit_window_ms, "commit_max", (json_int_t)s->cfg.commit_max,
	    "paused", s->paused, "state",
	    s->store_lost               ? "store_lost" :
	        s->writes_off           ? "store_failed" :
	        s->stopping == STOP_NOW ? "stopping_now" :
	        s->stopping             ? "stopping" :
	        s->crash_loop           ? "breaker" :
	        s->paused               ? "paused" :
	                                  "running",
	    "dry_run", s->cfg.dry_run, "pool", "target", s->target, "live", s->live, "crash_loop",
	    s->crash_loop, "breaker", s->crash_loop ? s->breaker : NULL, "restarts",
	    (json_int_t)s->n.worker_crashes, "spawn_failures", (json_int_t)s->n.spawn_failures,
	    "workers", workers_json(s), "phases", phases, "in_flight", inflight, "queue",
	    "phases_queued", (json_int_t)s->queued, "in_flight", (json_int_t)s->in_flight,
	    "started", (json_int_t)s->started, "counters", "dispatched",
	    (json_int_t)s->n.dispatched, "results", (json_int_t)s->n.results, "events_committed",
	    (json_int_t)s->n.events_committed, "events_duplicate",
	    (json_int_t)s->n.events_duplicate, "events_missing", (json_int_t)s->n.events_missing,
	    "rejected_wrong_uuid", (json_int_t)s->n.rejected_uuid, "rejected_stale",
	    (json_int_t)s->n.rejected_stale, "worker_crashes", (json_int_t)s->n.worker_crashes,
	    "worker_timeouts", (json_int_t)s->n.worker_timeouts, "spawn_failures",
	    (json_int_t)s->n.spawn_failures, "commits", (json_int_t)s->n.commits, "commit_failures",
	    (json_int_t)s->n.commit_failures, "writes_refused", (json_int_t)s->n.writes_refused,
	    "rates", "results_per_second", up > 0 ? (double)s->n.results / up : 0.0,
	    "events_per_second", up > 0 ? (double)s->n.events_committed / up : 0.0);
	return 0;
}

int cmd_metrics(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	char *text;

	(void)c;
	(void)req;
	text = xasprintf(
	    "# TYPE autopack_dispatched_total counter\nautopack_dispatched_total %llu\n"
	    "# TYPE autopack_results_total counter\nautopack_results_total %llu\n"
	    "# TYPE autopack_events_committed_total counter\nautopack_events_committed_total %llu\n"
	    "# TYPE autopack_events_duplicate_total counter\nautopack_events_duplicate_total %llu\n"
	    "# TYPE autopack_events_missing_total counter\nautopack_events_missing_total %llu\n"
	    "# TYPE autopack_rejected_total counter\n"
	    "autopack_rejected_total{reason=\"wrong_uuid\"} %llu\n"
	    "autopack_rejected_total{reason=\"stale_attempt\"} %llu\n"
	    "# TYPE autopack_worker_crashes_total counter\nautopack_worker_crashes_total %llu\n"
	    "# TYPE autopack_commits_total counter\nautopack_commits_total %llu\n"
	    "# TYPE autopack_phases_queued gauge\nautopack_phases_queued %lld\n"
	    "# TYPE autopack_in_flight gauge\nautopack_in_flight %lld\n"
	    "# TYPE autopack_workers gauge\nautopack_workers %d\n",
	    (unsigned long long)s->n.dispatched, (unsigned long long)s->n.results,
	    (unsigned long long)s->n.events_committed, (unsigned long long)s->n.events_duplicate,
	    (unsigned long long)s->n.events_missing, (unsigned long long)s->n.rejected_uuid,
	    (unsigned long long)s->n.rejected_stale, (unsigned long long)s->n.worker_crashes,
	    (unsigned long long)s->n.commits, (long long)s->queued, (long long)s->in_flight,
	    s->live);
	rep->body = json_pack("{s:s}", "text", text);
	free(text);
	return 0;
}
