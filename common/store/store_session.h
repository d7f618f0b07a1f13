/*
 * Drain sessions as the supervisor records them (a drain_sessions row per supervisor run,
 * a drain_session_results row per attempt written with the attempt's end), read back and
 * summarised as the Python controller's "BATCH DRAIN SUMMARY" and analyze_batch_session
 * did (docs/drain-rules.md, "The session summary"). Reads only.
 */
#ifndef AUTOPACK_STORE_SESSION_H
#define AUTOPACK_STORE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/store/store.h"

/* One drain session with its counts. */
struct store_session {
	char *session_id;
	char *started_at;
	char *completed_at;     /* NULL while running, or when its supervisor died */
	char *stop_reason;      /* NULL until it ends */
	int64_t supervisor_pid; /* 0 if not recorded */
	char *settings_json;    /* the drain's settings, a JSON object */
	char *state_json;       /* the drain policies' state, a JSON object ("{}" if none) */
	int64_t attempts;       /* attempts started in the session */
	int64_t open_attempts;  /* of which not ended */
	int64_t results;        /* drain_session_results rows */
	int64_t successes;      /* results with success */
	int64_t events;         /* Σ telemetry_events_collected of its results */
	int64_t handed_back;    /* results whose phase went back to the queue after an end the
	                         * operator or the supervisor made (outcome_hands_back) */
};

/* One result of a session: a drain_session_results row with its attempt's outcome. */
struct store_session_result {
	char *run_id;
	char *phase_id;
	char *outcome; /* attempts.outcome: success, failed, timeout, dry_run, ... */
	bool success;
	bool timeout;            /* outcome "timeout" */
	double duration_s;       /* -1 if unknown */
	int64_t events;          /* telemetry_events_collected */
	double yield_per_min;    /* telemetry_yield_per_minute, -1 if NULL */
	bool boundary;           /* reached_llm_boundary */
	char *fingerprint;       /* NULL */
	char *zero_yield_reason; /* NULL */
};

/* Results of one run in a session. */
struct store_session_run {
	char *run_id;
	bool stopped; /* listed in state_json stopped_runs */
	int64_t total, succeeded, timeouts, events;
};

/* A recommendation of analyze_batch_session. */
struct store_session_rec {
	const char *id; /* timeouts_high, timeouts_low, yield_low, yield_good, ... */
	char *text;
};

/* The summary of a session, computed from its results and state (docs/drain-rules.md). */
struct store_session_summary {
	int64_t processed, succeeded, failed, timeouts;
	double success_pct; /* 0 with nothing processed */
	double timeout_pct;
	int64_t events;      /* Σ telemetry events */
	int64_t with_events; /* results with at least one event */
	double events_per_phase;
	double minutes_non_timeout; /* Σ duration of non-timeout results, minutes */
	double overall_yield;       /* events ÷ minutes_non_timeout; -1 if no minutes */
	double yield_median, yield_p90, yield_max; /* per result, no events = 0; -1 if none */
	struct store_counts zero_yield;            /* per reason, most first */
	int64_t boundary_hits;
	int64_t unique_fingerprints;
	struct store_counts top_fingerprints; /* at most 5, most first */
	struct store_session_run *runs;       /* ordered by run id */
	size_t n_runs;
	int64_t runs_stopped; /* runs of this session in stopped_runs */
	json_t *state;        /* state_json parsed; an object, maybe empty */
	char *state_error;    /* why state_json cannot be read (state is then empty), or NULL */
	struct store_session_rec *recs;
	size_t n_recs;
};

#define STORE_SESSION_TOP_FINGERPRINTS 5

/* The most a saved count (of a fingerprint, of zero-yield attempts in a row) may be: one
 * larger (another program's, a hand edit) would overflow when counted on. */
#define STORE_SESSION_COUNT_MAX 1000000000
/* The name lists of a saved state, in the order they are checked. */
#define STORE_SESSION_STATE_LISTS 5
extern const char *const store_session_state_lists[STORE_SESSION_STATE_LISTS];

/* A session's saved state (state_json; NULL is "{}") parsed and checked: a JSON object
 * whose fingerprint_counts is an object of counts, consecutive_zero_yield a count (from 0
 * to STORE_SESSION_COUNT_MAX) and stopped_fingerprints, stopped_runs, sampled_runs,
 * promising_runs and deprioritized_runs lists of names, each absent or so (other keys are
 * not read). NULL with `why` saying what is wrong: not JSON (the parser's reason, line and
 * column), another JSON value than an object, or the key and the value that is not what
 * it must be. */
json_t *store_session_state_parse(const char *state_json, char *why, size_t whylen);

/* List every drain session, newest first. */
int store_session_list(
    struct store *st, struct store_session **out, size_t *n, struct store_err *err);
/* Read session `id`, or the newest with id NULL. A missing id (or no session at all)
 * is STORE_EINVAL with a message naming it. */
int store_session_get(
    struct store *st, const char *id, struct store_session *out, struct store_err *err);
/* Read the results of session `id` in attempt order. */
int store_session_results(struct store *st, const char *id, struct store_session_result **out,
    size_t *n, struct store_err *err);

/* Compute the summary of session `s` from its results. */
void store_session_summarize(const struct store_session *s, const struct store_session_result *r,
    size_t n, struct store_session_summary *sum);

void store_session_free(struct store_session *s);
void store_session_list_free(struct store_session *list, size_t n);
void store_session_results_free(struct store_session_result *r, size_t n);
void store_session_summary_free(struct store_session_summary *sum);

#endif
