/*
 * The named vocabulary every binary shares: how an attempt ended (outcome), why it failed
 * (failure reason), why it yielded no telemetry (zero-yield reason), the states of phases,
 * runs and tiers, the kinds of telemetry event, the supervisor's stop levels and the drain
 * policy's failure-reason buckets. Each is an enum with one name table (vocab.c); code
 * compares the enums, and every one of these strings written to the database or shown to
 * a user comes from the tables here. docs/data-model.md and docs/drain-rules.md say what
 * the values mean.
 *
 * Parsing returns the *_NONE value of the enum for a name that is not in the table, so
 * text from a peer or an older database is never trusted as a value.
 */
#ifndef AUTOPACK_VOCAB_H
#define AUTOPACK_VOCAB_H

#include <stdbool.h>

/* How an attempt ended: attempts.outcome. The first four a worker reports; the others the
 * supervisor records when it saw the end itself. */
enum outcome {
	OUTCOME_NONE,
	OUTCOME_SUCCESS,
	OUTCOME_FAILED,
	OUTCOME_TIMEOUT,
	OUTCOME_DRY_RUN,
	OUTCOME_WORKER_CRASHED,     /* the worker exited or was killed on its own */
	OUTCOME_HEARTBEAT_LOST,     /* the worker fell silent and was killed */
	OUTCOME_CANCELLED,          /* `autopack-ctl cancel` */
	OUTCOME_SCALED_DOWN,        /* `autopack-ctl scale N --force` */
	OUTCOME_SUPERVISOR_STOPPED, /* a fast stop killed the worker */
	OUTCOME_SUPERVISOR_RESTART, /* left open by an earlier supervisor, closed at start */
	OUTCOME_SUPERVISOR_LOST,    /* its supervisor's heartbeat stopped; closed by another */
	OUTCOME_COUNT
};

/* Why an attempt failed: attempts.failure_reason (and phases.last_failure_reason). */
enum reason {
	REASON_NONE,
	/* reported by the worker */
	REASON_INVALID_JOB,
	REASON_NO_API_KEY,
	REASON_NO_DELIVERABLES, /* the phase's scope names none: no LLM call */
	REASON_PROVIDER_ERROR,
	REASON_OUTPUT_TRUNCATED,
	REASON_PARSE_FAILED,
	REASON_NO_DELIVERABLES_WRITTEN, /* the answer writes none of them: nothing written */
	REASON_SCOPE_VIOLATION,
	REASON_WRITE_FAILED,
	REASON_DELIVERABLES_MISSING,
	REASON_CHECK_FAILED,
	REASON_CHECK_NOT_RUN,
	REASON_TIMEOUT,
	REASON_SUPERVISOR_LINK_LOST,
	/* recorded by the supervisor */
	REASON_JOB_BUILD_FAILED,
	REASON_WORKER_CRASHED,
	REASON_HEARTBEAT_LOST,
	REASON_CANCELLED,
	REASON_SCALED_DOWN,
	REASON_SUPERVISOR_STOPPED,
	REASON_SUPERVISOR_RESTART,
	REASON_SUPERVISOR_LOST,
	REASON_COUNT
};

/* Why an attempt yielded no clean estimator sample: attempts.zero_yield_reason. */
enum zero_yield {
	ZERO_YIELD_NONE, /* it yielded one, or was a dry run */
	ZERO_YIELD_SUCCESS_NO_LLM_CALLS,
	ZERO_YIELD_TIMEOUT,
	ZERO_YIELD_LLM_BOUNDARY_HIT,
	ZERO_YIELD_FAILED_BEFORE_LLM,
	ZERO_YIELD_PROVIDER_ERROR,
	ZERO_YIELD_PARSE_FAILED,
	ZERO_YIELD_DELIVERABLES_FAILED,
	ZERO_YIELD_CHECK_FAILED,
	ZERO_YIELD_EXECUTION_ERROR,
	ZERO_YIELD_UNKNOWN,
	ZERO_YIELD_COUNT
};

/* phases.state, in the order reports list them. */
enum phase_state {
	PHASE_STATE_NONE,
	PHASE_QUEUED,
	PHASE_EXECUTING,
	PHASE_GATE,
	PHASE_CI_RUNNING,
	PHASE_COMPLETE,
	PHASE_FAILED,
	PHASE_SKIPPED,
	PHASE_STATE_COUNT
};

/* runs.state (the original's RunState). */
enum run_state {
	RUN_STATE_NONE,
	RUN_QUEUED, /* legacy */
	RUN_PLAN_BOOTSTRAP,
	RUN_CREATED,
	RUN_PHASE_QUEUEING,
	RUN_PHASE_EXECUTION,
	RUN_GATE,
	RUN_CI_RUNNING,
	RUN_SNAPSHOT_CREATED,
	RUN_DONE_SUCCESS,
	RUN_DONE_FAILED_BUDGET_EXHAUSTED,
	RUN_DONE_FAILED_POLICY_VIOLATION,
	RUN_DONE_FAILED_REQUIRES_HUMAN_REVIEW,
	RUN_DONE_FAILED_ENVIRONMENT,
	RUN_STATE_COUNT
};

/* tiers.state (the original's TierState). */
enum tier_state {
	TIER_STATE_NONE,
	TIER_PENDING,
	TIER_IN_PROGRESS,
	TIER_COMPLETE,
	TIER_FAILED,
	TIER_SKIPPED,
	TIER_STATE_COUNT
};

/* Kinds of telemetry event: events.kind, and the event kinds of the wire. */
enum event_kind {
	EVENT_KIND_NONE,
	EVENT_LLM_USAGE,           /* one HTTP try: a row in llm_usage_events */
	EVENT_TOKEN_ESTIMATION_V2, /* one builder call: a row in token_estimation_v2_events */
	EVENT_LOG,                 /* a line of the attempt's log: events.level, events.message */
	EVENT_LLM_REQUEST, /* an HTTP try about to be sent: its llm_usage_events row, 'sent' */
	EVENT_KIND_COUNT
};

/* llm_usage_events.status: how one HTTP try to a provider ended. A try is recorded as
 * 'sent' before it leaves the worker, and becomes 'ok' or 'error' when the worker reports
 * it, or 'lost' when its attempt ends without that report (the worker died). */
enum usage_status {
	USAGE_STATUS_NONE,
	USAGE_OK,
	USAGE_ERROR,
	USAGE_SENT,
	USAGE_LOST,
	USAGE_STATUS_COUNT
};

/* llm_usage_events.role of a phase's builder call, the only role autopack's worker uses
 * (the supervisor reserves the first try's row with it). */
#define LLM_ROLE_BUILDER "builder"

/* Documentation features of a pure-doc phase, as bits (the *_required columns). */
enum doc_feature {
	DOC_API_REFERENCE = 1 << 0,
	DOC_EXAMPLES = 1 << 1,
	DOC_RESEARCH = 1 << 2,
	DOC_USAGE_GUIDE = 1 << 3,
	DOC_FEATURES_ALL = (1 << 4) - 1
};

/* How far the supervisor is in stopping. Levels only rise. */
enum stop_level {
	STOP_NONE,     /* running */
	STOP_GRACEFUL, /* no new dispatch; attempts in flight finish */
	STOP_NOW,      /* workers killed, their phases requeued */
	STOP_LEVEL_COUNT
};

/* The drain policy's failure-reason buckets, in dispatch order (a lower bucket first). */
enum bucket {
	BUCKET_UNKNOWN,
	BUCKET_COLLECTION,
	BUCKET_DELIVERABLE,
	BUCKET_PATCH,
	BUCKET_OTHER,
	BUCKET_TIMEOUT,
	BUCKET_COUNT
};

/* The name of a value, or NULL for a *_NONE value. */
const char *outcome_name(enum outcome o);
const char *reason_name(enum reason r);
const char *zero_yield_name(enum zero_yield z);
const char *phase_state_name(enum phase_state s);
const char *run_state_name(enum run_state s);
const char *tier_state_name(enum tier_state s);
const char *event_kind_name(enum event_kind k);
const char *usage_status_name(enum usage_status u);
const char *stop_level_name(enum stop_level l);
const char *bucket_name(enum bucket b);

/* The value a name stands for; the *_NONE value for NULL or a name not in the table. */
enum outcome outcome_parse(const char *name);
enum reason reason_parse(const char *name);
enum zero_yield zero_yield_parse(const char *name);
enum phase_state phase_state_parse(const char *name);
enum event_kind event_kind_parse(const char *name);

/* The outcome as the first part of a failure fingerprint: "FAILED", "WORKER_CRASHED". */
const char *outcome_label(enum outcome o);
/* Whether the attempt did what was asked (success, dry run). */
bool outcome_ok(enum outcome o);
/* Whether a worker may report this outcome in its result (success, failed, timeout, dry
 * run); the others only the supervisor records. */
bool outcome_reportable(enum outcome o);
/* Whether an attempt that ended with this outcome hands its phase back when the phase goes
 * back to the queue after it: the operator or the supervisor ended it (a pause or a stop,
 * a scale-down, a worker that died or fell silent, a supervisor restarted or lost), not
 * the phase's own work. Such an end is no failure. */
bool outcome_hands_back(enum outcome o);
/* The names of those outcomes as an SQL list, for `attempts.outcome IN (...)`. */
#define OUTCOME_HANDS_BACK_SQL                                                                     \
	"'worker_crashed', 'heartbeat_lost', 'scaled_down', 'supervisor_stopped',"                 \
	" 'supervisor_restart', 'supervisor_lost'"
/* The failure reason the supervisor records for an attempt it saw end itself with this
 * outcome (worker_crashed → WORKER_CRASHED); REASON_NONE for success and dry run. */
enum reason outcome_reason(enum outcome o);

#endif
