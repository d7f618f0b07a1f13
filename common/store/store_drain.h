/*
 * The supervisor's queries: the eligible-phase queue, attempts (the lease fence), events
 * and results. Everything here runs inside a transaction the caller opens with
 * store_drain_begin and ends with store_drain_commit or store_drain_rollback, so that one
 * commit carries a whole group of events, results and dispatches.
 */
#ifndef AUTOPACK_STORE_DRAIN_H
#define AUTOPACK_STORE_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"
#include "common/vocab.h"
#include "proto/proto.h"

struct store_drain;

/* A phase that may be dispatched, in (run, tier index, phase index) order. */
struct drain_phase {
	char *run_id;
	char *phase_id;
	int64_t tier_index;
	int64_t phase_index;
	int64_t attempts;                /* attempts made in the given session */
	int64_t max_attempts;            /* phases.max_builder_attempts, 0 if unset */
	const char *last_failure_reason; /* nullable */
};

/* What an attempt ended as (docs/data-model.md, "Drains"). */
struct drain_close {
	enum outcome outcome;
	enum reason reason;      /* REASON_NONE: none */
	const char *message;     /* nullable */
	const char *fingerprint; /* nullable */
	enum zero_yield zero_yield;
	bool reached_llm_boundary;
	int64_t duration_ms;
	enum phase_state phase_state; /* new phases.state, or PHASE_STATE_NONE to leave it */
};

/* Prepare the statements. Returns 0, or STORE_EIO with err set. */
int store_drain_open(struct store *st, struct store_drain **out, struct store_err *err);
void store_drain_close(struct store_drain *d);

int store_drain_begin(struct store_drain *d, struct store_err *err);
int store_drain_commit(struct store_drain *d, struct store_err *err);
void store_drain_rollback(struct store_drain *d);

/* Call fn for every phase in state QUEUED (and FAILED when with_failed), optionally of
 * one run, ordered by run, tier index, phase index, with its attempts in `session_id`.
 * A non-zero return from fn stops. */
int store_drain_each_eligible(struct store_drain *d, const char *run_filter, bool with_failed,
    const char *session_id, int (*fn)(void *arg, const struct drain_phase *p), void *arg,
    struct store_err *err);

/* Close attempts left open by an earlier supervisor as `supervisor_restart` and put their
 * EXECUTING phases back to QUEUED. *closed receives the number closed. */
int store_drain_recover(struct store_drain *d, int *closed, struct store_err *err);

/* Create an attempt for (run, phase) and make it the phase's current attempt; unless
 * dry_run, move the phase to EXECUTING. Fails with STORE_EINVAL if the phase is not in an
 * eligible state. */
int store_drain_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t worker_pid, const char *session_id, bool dry_run, uint64_t *attempt_id,
    int64_t *attempt_number, struct store_err *err);

/* Fill the phase-specific parts of a job (run, phase, phase spec, workspace) from the
 * database. Strings are heap copies owned by the job. */
int store_drain_job_fill(struct store_drain *d, const char *run_id, const char *phase_id,
    struct proto_job *job, struct store_err *err);

/* Insert one event of attempt `att`. *dup is set when (attempt, seq) was already stored,
 * in which case nothing is written. */
int store_drain_event_insert(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct proto_event *ev, bool *dup, struct store_err *err);

/* End attempt `att` and, if it is still its phase's current attempt, apply c->phase_state
 * and record the attempt's drain_session_results row.
 * *stale is set when the attempt was already closed or is no longer current; then nothing
 * is written. */
int store_drain_attempt_close(struct store_drain *d, uint64_t att, const struct drain_close *c,
    bool *stale, struct store_err *err);

/* Append a row to control_log. */
int store_drain_control_log(struct store_drain *d, int64_t peer_pid, int64_t peer_uid,
    const char *command, const char *args, bool ok, const char *result, struct store_err *err);

/* Record (or clear, with pid 0) the running supervisor and its control socket in meta. */
int store_drain_set_supervisor(
    struct store_drain *d, int64_t pid, const char *socket_path, struct store_err *err);

/* Count phases by state into counts[state]; states outside the vocabulary are counted in
 * counts[PHASE_STATE_NONE]. */
int store_drain_phase_counts(
    struct store_drain *d, int64_t counts[PHASE_STATE_COUNT], struct store_err *err);

/* Move phase (run, phase) from one of the states in `from` (a set of 1u << state bits) to
 * `to`. STORE_EINVAL names the phase's actual state when it is not in `from`, or says it
 * does not exist. */
int store_drain_phase_move(struct store_drain *d, const char *run_id, const char *phase_id,
    unsigned from, enum phase_state to, struct store_err *err);

/* Set PRAGMA synchronous to FULL or NORMAL. */
int store_drain_set_synchronous(struct store_drain *d, bool full, struct store_err *err);

/* Record a new drain session with its settings (a JSON object). */
int store_drain_session_open(struct store_drain *d, const char *session_id, int64_t pid,
    const char *settings_json, struct store_err *err);

/* Save a session's policy state (a JSON object) with the current transaction. */
int store_drain_session_state(
    struct store_drain *d, const char *session_id, const char *state_json, struct store_err *err);

/* Find the newest unfinished session: *session_id and *state_json are heap strings, both
 * NULL when there is none. */
int store_drain_session_find_open(
    struct store_drain *d, char **session_id, char **state_json, struct store_err *err);

/* The number of attempts made in a session (0 if unknown). */
int64_t store_drain_session_attempts(struct store_drain *d, const char *session_id);

/* Mark a drain session finished with the reason it stopped. */
int store_drain_session_close(
    struct store_drain *d, const char *session_id, const char *stop_reason, struct store_err *err);

/* Load the active estimator coefficient set: its version, overhead rows (from
 * estimator_coefficients.overhead_json, an array of [category, complexity, overhead]) and
 * its fitted model's JSON (heap; NULL for none). With no active set, *version is 1 (the
 * built-in defaults) and there are no rows. */
int store_drain_active_coefs(struct store_drain *d, uint64_t *version, struct proto_coef **rows,
    size_t *n, char **model_json, struct store_err *err);

#endif
