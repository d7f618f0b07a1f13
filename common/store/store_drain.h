/*
 * The drain's store: the supervisor's side of the database, in the store's own types. It
 * is the seam a second database backend plugs into: the supervisor uses nothing else of
 * the store while it drains (besides opening, identity and the coefficient set).
 *
 *   store_drain.c          statements, transactions, meta, durability
 *   store_drain_queue.c    eligible phases, restart recovery, phase counts and moves
 *   store_drain_attempt.c  attempts: open (the lease fence), the phase spec, close
 *   store_drain_event.c    telemetry events and control_log rows
 *   store_drain_session.c  drain sessions
 *   store_drain_watch.c    what a drain's watchers read (progress, failures, durations)
 *
 * Transactions: a group commit is store_drain_begin, then any number of
 * store_drain_attempt_open, store_drain_event_insert, store_drain_attempt_close,
 * store_drain_control_log and store_drain_session_state calls, then store_drain_commit (or
 * store_drain_rollback). Those five write only inside such a transaction. Every other
 * function here is a statement of its own and must be called outside one; each says so.
 * The tables and their values: docs/data-model.md.
 */
#ifndef AUTOPACK_STORE_DRAIN_H
#define AUTOPACK_STORE_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"
#include "common/store/store_estimation.h"
#include "common/vocab.h"

struct store_drain;

/* A list of heap strings handed out by the store. */
struct store_strs {
	char **v;
	size_t n;
};

/* A phase that may be dispatched, in (run, tier index, phase index) order. */
struct drain_phase {
	const char *run_id;
	const char *phase_id;
	int64_t tier_index;
	int64_t phase_index;
	int64_t attempts;                /* attempts made in the given session */
	int64_t max_attempts;            /* phases.max_builder_attempts, 0 if unset */
	const char *last_failure_reason; /* nullable */
	int64_t row;                     /* phases.id; 0 when not read */
	/* With with_spec: the phase's spec, which fn may take over (copy it and zero this);
	 * else NULL. */
	struct drain_spec *spec;
};

/* What the database says about a phase to run: everything of a job that is the phase's
 * own. Its strings and lists live in one allocation (`block`), released by
 * store_drain_spec_free. */
struct drain_spec {
	char *name;          /* phases.name, else the phase id */
	char *description;   /* "" when unset */
	char *task_category; /* nullable */
	char *complexity;    /* nullable */
	struct store_strs paths;
	struct store_strs read_only_context;
	struct store_strs deliverables;
	char *check_command; /* nullable */
	int64_t max_builder_attempts;
	char *workspace; /* runs.workspace, "" when unset */
	void *block;     /* the one allocation holding the above */
};

/* One HTTP try of an LLM call: a row in llm_usage_events. */
struct drain_usage {
	const char *provider;
	const char *model;
	const char *role;
	int64_t prompt_tokens;     /* -1: unknown */
	int64_t completion_tokens; /* -1: unknown */
	int64_t total_tokens;
	int64_t latency_ms;
	int64_t http_status;     /* 0: no HTTP response */
	const char *error_class; /* NULL when the try succeeded */
	int64_t try_number;
};

/* One HTTP try announced before it is sent: its llm_usage_events row, status 'sent', which
 * the try's drain_usage completes. */
struct drain_request {
	const char *provider;
	const char *model;
	const char *role;
	int64_t max_tokens;
	int64_t try_number;
};

/* One telemetry event of an attempt. Strings are borrowed for the call. */
struct drain_event {
	uint64_t attempt_id;
	uint64_t seq; /* 1-based within the attempt; (attempt_id, seq) is the event's key */
	enum event_kind kind;
	union {
		struct drain_usage usage; /* EVENT_LLM_USAGE */
		/* EVENT_TOKEN_ESTIMATION_V2: run, phase, times, attempt and seq are filled in
		 * by store_drain_event_insert */
		struct store_estimation est;
		struct {
			const char *level;
			const char *message;
		} log;                        /* EVENT_LOG */
		struct drain_request request; /* EVENT_LLM_REQUEST */
	} u;
};

/* What an attempt ended as. */
struct drain_close {
	enum outcome outcome;
	enum reason reason;      /* REASON_NONE: none */
	const char *message;     /* nullable */
	const char *fingerprint; /* nullable */
	enum zero_yield zero_yield;
	bool reached_llm_boundary;
	/* Every LLM try the attempt may have made was announced and its announcement is in:
	 * the worker's result ended it (the result follows all its events), or the worker
	 * never had the job. */
	bool tries_announced;
	int64_t duration_ms;
	enum phase_state phase_state; /* new phases.state, or PHASE_STATE_NONE to leave it */
	int64_t worker_pid;           /* recorded when the attempt has none yet; 0: none */
};

/* --- common/store/store_drain.c --- */

/* Prepare the drain's statements on `st`. Returns 0, or STORE_EIO with err set. */
int store_drain_open(struct store *st, struct store_drain **out, struct store_err *err);
/* Release the statements (NULL is ignored). */
void store_drain_close(struct store_drain *d);
/* Say that the drain is a dry run: store_drain_each_eligible then leaves out every phase
 * that has an attempt in the session it is given (a dry run leaves each phase's state as
 * it was, so the session's own attempts are what tell the phases it visited), as the
 * claims of several supervisors do (store_fleet.h). */
void store_drain_set_dry_run(struct store_drain *d, bool dry_run);
/* Start a group commit (BEGIN IMMEDIATE). Returns 0, or STORE_EIO (a busy database). */
int store_drain_begin(struct store_drain *d, struct store_err *err);
/* Commit the group. Returns 0, or STORE_EIO; then call store_drain_rollback. */
int store_drain_commit(struct store_drain *d, struct store_err *err);
/* Roll back the open group, if any. */
void store_drain_rollback(struct store_drain *d);
/* Whether the last failed call broke a database constraint (NOT NULL, UNIQUE, CHECK,
 * FOREIGN KEY, a trigger's RAISE), or was a write of an attempt's end or of its phase
 * that changed no row (another program's trigger or rule skipped it): the write, not the
 * database, is at fault, so the writer isolates it. If so, SQLite's message (which names the table and column, e.g.
 * "NOT NULL constraint failed: llm_usage_events.is_doctor_call") goes to `why`. */
bool store_drain_constraint_failed(struct store_drain *d, char *why, size_t whylen);
/* Why the database takes no write on the drain's connection, asked (outside a
 * transaction) after a write failed as read-only: on PostgreSQL the server is a standby,
 * or default_transaction_read_only is on, with where it was set and how to undo it; ""
 * when it takes writes, on SQLite, or when that cannot be read. */
void store_drain_read_only_why(struct store_drain *d, char *why, size_t whylen);
/* Set PRAGMA synchronous to FULL or NORMAL (outside a transaction). */
int store_drain_set_synchronous(struct store_drain *d, bool full, struct store_err *err);
/* Record (or clear, with pid 0) the running supervisor and its control socket in meta
 * (outside a transaction). */
int store_drain_set_supervisor(
    struct store_drain *d, int64_t pid, const char *socket_path, struct store_err *err);

/* --- common/store/store_drain_queue.c --- */

/* Call fn for every phase in state QUEUED (and FAILED when with_failed), optionally of
 * one run, ordered by run, tier index, phase index, with its attempts in `session_id`
 * and, with with_spec, its spec (outside a transaction): one statement, whatever the
 * number of phases. In a dry run (store_drain_set_dry_run) a phase with an attempt in
 * `session_id` is left out: the session visited it. The phase is borrowed for the call;
 * a non-zero return from fn stops. */
int store_drain_each_eligible(struct store_drain *d, const char *run_filter, bool with_failed,
    bool with_spec, const char *session_id, int (*fn)(void *arg, const struct drain_phase *p),
    void *arg, struct store_err *err);
/* Several supervisors (store_fleet.h): as store_drain_each_eligible, for the `n` runs of
 * `run_ids` only (outside a transaction): one statement, whatever their number. */
int store_drain_each_eligible_of(struct store_drain *d, const char *const *run_ids, size_t n,
    bool with_failed, bool with_spec, const char *session_id,
    int (*fn)(void *arg, const struct drain_phase *p), void *arg, struct store_err *err);
/* What a drain left, in one read of the eligible phases (outside a transaction): call
 * unfinished(arg, run_id, n) for each run, ordered by run, with n > 0 eligible phases (as
 * store_drain_each_eligible) that `session_id` attempted fewer times than it may:
 * max_attempts, or the phase's own max_builder_attempts when lower; with dry_run, not at
 * all. Attempts a stop or a restart ended (supervisor_stopped, supervisor_restart) do not
 * count: the phase was not tried. Then call orphaned(arg, run_id, n) for each run (of
 * `run_filter` only, when not NULL) with n > 0 phases QUEUED (or FAILED, with
 * `with_failed`) whose run or tier has no row (another program's rows: the original kept
 * no foreign keys), ordered by run: the drain reads its queue through both, so it never
 * dispatches them, and they are not among the unfinished ones. A non-zero return from
 * either stops. *untexted tells whether a phase it read has an id that is not text
 * (neither unfinished nor orphaned: store_drain_each_untexted names them). */
int store_drain_each_left(struct store_drain *d, const char *run_filter, bool with_failed,
    const char *session_id, int64_t max_attempts, bool dry_run,
    int (*unfinished)(void *arg, const char *run_id, int64_t n),
    int (*orphaned)(void *arg, const char *run_id, int64_t n), void *arg, bool *untexted,
    struct store_err *err);
/* A phase whose run_id or phase_id is not text (a blob, a real, NULL: another program's
 * row, which SQLite's columns hold whatever their type): the scheduler keys phases by
 * their text ids, so no drain dispatches it, and store_drain_each_left counts it neither
 * unfinished nor orphaned. */
struct drain_untexted {
	int64_t row;        /* phases.id */
	const char *run_id; /* the run id as text (its bytes, for a blob) */
	const char *column; /* "run_id" or "phase_id": the first that is not text */
	const char *type;   /* SQLite's name of its type: "blob", "real", "integer", "null" */
	const char *value;  /* as SQL writes it: X'01', 1.5, NULL */
};
/* Call fn for each QUEUED phase (FAILED too, with `with_failed`; of run `run_filter` only,
 * when not NULL) whose run_id or phase_id is not text, by phases.id. None on PostgreSQL,
 * whose columns hold text only. STORE_EIO on failure; a non-zero return from fn stops. */
int store_drain_each_untexted(struct store_drain *d, const char *run_filter, bool with_failed,
    int (*fn)(void *arg, const struct drain_untexted *u), void *arg, struct store_err *err);
/* Close attempts left open by an earlier supervisor as `supervisor_restart` and put their
 * EXECUTING phases back to QUEUED, in one transaction of its own. *closed receives the
 * number closed. */
int store_drain_recover(struct store_drain *d, int *closed, struct store_err *err);
/* Refuse an SQLite database whose attempt ids are (almost) used up: SQLite numbers each
 * new attempt after the highest id ever used, which another program may have set to
 * 2^63-1. STORE_EINVAL naming the id, STORE_EIO if it cannot be read; 0 on PostgreSQL. */
int store_drain_ids_check(struct store_drain *d, struct store_err *err);
/* Call fn with the number of phases in each (run, state), optionally of one run, ordered
 * by run (outside a transaction); states outside the vocabulary are PHASE_STATE_NONE. A
 * non-zero return from fn stops. */
int store_drain_each_run_state(struct store_drain *d, const char *run_filter,
    int (*fn)(void *arg, const char *run_id, enum phase_state state, int64_t n), void *arg,
    struct store_err *err);
/* Count phases by state into counts[state] (outside a transaction); states outside the
 * vocabulary are counted in counts[PHASE_STATE_NONE]. */
int store_drain_phase_counts(
    struct store_drain *d, int64_t counts[PHASE_STATE_COUNT], struct store_err *err);
/* Move phase (run, phase) from one of the states in `from` (a set of 1u << state bits) to
 * `to` (outside a transaction). STORE_EINVAL names the phase's actual state when it is not
 * in `from`, or says it does not exist. */
int store_drain_phase_move(struct store_drain *d, const char *run_id, const char *phase_id,
    unsigned from, enum phase_state to, struct store_err *err);

/* --- common/store/store_drain_attempt.c --- */

/* In the group: create an attempt for (run, phase) and make it the phase's current
 * attempt; unless dry_run, move the phase to EXECUTING. Fails with STORE_EINVAL if the
 * phase is not QUEUED or FAILED; with several supervisors (store_fleet.h), STORE_EINVAL
 * only when there is no such phase, and STORE_EBUSY when another supervisor holds its run
 * or the phase is no longer eligible (its run is to be read again). */
int store_drain_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t worker_pid, const char *session_id, bool dry_run, uint64_t *attempt_id,
    int64_t *attempt_number, struct store_err *err);
/* One phase a round leases (store_drain_attempts_open): what to claim, and what came of
 * it. */
struct drain_claim {
	const char *run_id;
	const char *phase_id;
	int64_t phase_row; /* phases.id as read with the queue (drain_phase.row), or 0 */
	int64_t worker_pid;
	int rc; /* 0: opened; else as store_drain_attempt_open returns it, why in err */
	uint64_t attempt_id;
	int64_t attempt_number;
	struct store_err err;
};
/* In the group: store_drain_attempt_open for each of a round's claims c[0..n) (distinct
 * runs), each claim's result in it; with several supervisors in two statements for them
 * all (the runs' locks, then the claims). Returns 0, or the store error that fails the
 * round (the claims' results then do not count). */
int store_drain_attempts_open(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, struct store_err *err);
/* Have every attempt store_drain_attempts_open opens from now on, unless a dry run's,
 * reserve in its transaction the llm_usage_events row of the attempt's first HTTP try (the
 * worker's first LLM call, try 1): status 'sent', `provider`, `model`, `role`, max_tokens
 * `cap` (the bound of anything the worker may ask for), seq NULL until the try's
 * llm_request event confirms the row (store_drain_event_insert). At the attempt's end
 * (store_drain_attempt_close) the row becomes 'lost' as any try still 'sent', unless the
 * close says every try was announced (tries_announced) and the row was never confirmed:
 * the worker sent no request, and the row is deleted. A reservation the database refuses
 * for a constraint (a legacy table's column autopack does not fill) fails the round and
 * ends reservations for the drain. The strings are borrowed for the drain's life. */
void store_drain_reserve_first_try(
    struct store_drain *d, const char *provider, const char *model, const char *role, int64_t cap);
/* Whether attempts opened now have their first try reserved: once false, it stays so. A
 * job of an attempt opened (and committed) while it is true may say so. */
bool store_drain_reserving(const struct store_drain *d);
/* Read what a job of (run, phase) needs from the database into `out` (outside a
 * transaction, or inside one). STORE_EINVAL when there is no such phase. */
int store_drain_spec(struct store_drain *d, const char *run_id, const char *phase_id,
    struct drain_spec *out, struct store_err *err);
/* Release a spec's strings and zero it. */
void store_drain_spec_free(struct drain_spec *s);
/* In the group: end attempt `att` and, if it is still its phase's current attempt, apply
 * c->phase_state, update the run's state and record the attempt's drain_session_results
 * row. *stale is set when the attempt was already closed or is no longer current; then
 * nothing is written. */
int store_drain_attempt_close(struct store_drain *d, uint64_t att, const struct drain_close *c,
    bool *stale, struct store_err *err);

/* In the group: record that attempt `att`'s end could not be written as it was (`why`):
 * the attempt ends with its outcome, reason and fingerprint, the message noting `why`,
 * and its phase goes back to QUEUED if the attempt is still its current one; the tier,
 * run and session result are not touched. *stale as for store_drain_attempt_close. */
int store_drain_attempt_close_bare(struct store_drain *d, uint64_t att, const struct drain_close *c,
    const char *why, bool *stale, struct store_err *err);

/* --- common/store/store_drain_event.c --- */

/* In the group: record event `ev` as not stored because of `why` (an error row in
 * events under its (attempt, seq) key, so a repeat is a duplicate); *dup as for
 * store_drain_event_insert. */
int store_drain_event_refused(struct store_drain *d, const struct drain_event *ev, const char *why,
    bool *dup, struct store_err *err);
/* In the group: insert one event of an attempt of (run, phase). *dup is set when
 * (attempt, seq) was already stored with an event of its kind (a repeat), in which case
 * nothing is written. An insert that wrote nothing otherwise (a trigger or rule skipped it,
 * or the key holds an event of another kind) fails with STORE_EIO, its reason told by
 * store_drain_constraint_failed, as a refused write's. */
int store_drain_event_insert(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct drain_event *ev, bool *dup, struct store_err *err);
/* In the group: append a row to control_log. */
int store_drain_control_log(struct store_drain *d, int64_t peer_pid, int64_t peer_uid,
    const char *command, const char *args, bool ok, const char *result, struct store_err *err);

/* --- common/store/store_drain_session.c --- */

/* Record a new drain session with its settings, a JSON object (outside a transaction,
 * or in the one in which a supervisor of several chooses its session), named `name`, or
 * `name` with the first suffix -2, -3, ... no other session has: *session_id is the name
 * given, a heap string. */
int store_drain_session_open(struct store_drain *d, const char *name, int64_t pid,
    const char *settings_json, char **session_id, struct store_err *err);
/* In the group: save a session's policy state (a JSON object). */
int store_drain_session_state(
    struct store_drain *d, const char *session_id, const char *state_json, struct store_err *err);
/* Find the newest unfinished session (outside a transaction): *session_id and
 * *state_json are heap strings, both NULL when there is none. */
int store_drain_session_find_open(
    struct store_drain *d, char **session_id, char **state_json, struct store_err *err);
/* The number of attempts made in a session, and how many of them were dry runs (outside a
 * transaction). */
int store_drain_session_attempts(
    struct store_drain *d, const char *session_id, int64_t *n, int64_t *dry, struct store_err *err);
/* Mark a drain session finished with the reason it stopped (outside a transaction). */
int store_drain_session_close(
    struct store_drain *d, const char *session_id, const char *stop_reason, struct store_err *err);

/* --- common/store/store_drain_watch.c --- */

/* An attempt that ended without doing what was asked. Strings are borrowed for the call. */
struct drain_failure {
	uint64_t attempt_id;
	const char *run_id;
	const char *phase_id;
	int64_t attempt_number;
	enum outcome outcome;
	const char *reason;    /* nullable */
	const char *message;   /* nullable */
	const char *ended_at;  /* the stored timestamp */
	const char *workspace; /* runs.workspace, "" when unset */
};

/* Call fn for each (run, task category) of the phases in state QUEUED (and FAILED when
 * with_failed) with their count; category is NULL for phases without one (outside a
 * transaction). */
int store_drain_each_queued_category(struct store_drain *d, bool with_failed,
    int (*fn)(void *arg, const char *run_id, const char *category, int64_t n), void *arg,
    struct store_err *err);
/* Call fn with the task category (nullable) and duration of each of the newest `limit`
 * attempts that ran to an end of their own: success, failed, timeout, worker_crashed,
 * heartbeat_lost; or only dry_run ones when dry_run (outside a transaction). */
int store_drain_each_duration(struct store_drain *d, bool dry_run, int64_t limit,
    int (*fn)(void *arg, const char *category, int64_t duration_ms), void *arg,
    struct store_err *err);
/* Call fn for the newest `limit` ended attempts whose outcome is neither success nor
 * dry_run, newest first (outside a transaction). */
int store_drain_each_failure(struct store_drain *d, int64_t limit,
    int (*fn)(void *arg, const struct drain_failure *f), void *arg, struct store_err *err);
/* Count a session's attempts that left their phase for good (*done: the phase is
 * COMPLETE, FAILED or SKIPPED after it, or it was a dry run), those that handed their
 * phase back (*handed_back: a crash, a lost heartbeat, a scale-down, a stop, a restarted
 * or lost supervisor, and the phase QUEUED after it) and the others that did not do what
 * was asked (*failed) (outside a transaction). */
int store_drain_session_tally(struct store_drain *d, const char *session_id, int64_t *done,
    int64_t *failed, int64_t *handed_back, struct store_err *err);

#endif
