/* The vocabulary's name tables (see vocab.h). */
#include "common/vocab.h"
#include "common/util.h"

#include <assert.h>
#include <string.h>

/* What the supervisor knows of each outcome. */
struct outcome_entry {
	const char *name;  /* attempts.outcome */
	const char *label; /* first part of a fingerprint */
	enum reason reason;
	bool ok;
	bool reportable;
};

static const struct outcome_entry outcomes[OUTCOME_COUNT] = {
	[OUTCOME_SUCCESS] = { "success", "SUCCESS", REASON_NONE, true, true },
	[OUTCOME_FAILED] = { "failed", "FAILED", REASON_NONE, false, true },
	[OUTCOME_TIMEOUT] = { "timeout", "TIMEOUT", REASON_TIMEOUT, false, true },
	[OUTCOME_DRY_RUN] = { "dry_run", "DRY_RUN", REASON_NONE, true, true },
	[OUTCOME_WORKER_CRASHED] = { "worker_crashed", "WORKER_CRASHED", REASON_WORKER_CRASHED,
	    false, false },
	[OUTCOME_HEARTBEAT_LOST] = { "heartbeat_lost", "HEARTBEAT_LOST", REASON_HEARTBEAT_LOST,
	    false, false },
	[OUTCOME_CANCELLED] = { "cancelled", "CANCELLED", REASON_CANCELLED, false, false },
	[OUTCOME_SCALED_DOWN] = { "scaled_down", "SCALED_DOWN", REASON_SCALED_DOWN, false, false },
	[OUTCOME_SUPERVISOR_STOPPED] = { "supervisor_stopped", "SUPERVISOR_STOPPED",
	    REASON_SUPERVISOR_STOPPED, false, false },
	[OUTCOME_SUPERVISOR_RESTART] = { "supervisor_restart", "SUPERVISOR_RESTART",
	    REASON_SUPERVISOR_RESTART, false, false },
	[OUTCOME_SUPERVISOR_LOST] = { "supervisor_lost", "SUPERVISOR_LOST", REASON_SUPERVISOR_LOST,
	    false, false },
};

static const char *const reasons[REASON_COUNT] = {
	[REASON_INVALID_JOB] = "INVALID_JOB",
	[REASON_NO_API_KEY] = "NO_API_KEY",
	[REASON_NO_DELIVERABLES] = "NO_DELIVERABLES",
	[REASON_PROVIDER_ERROR] = "PROVIDER_ERROR",
	[REASON_OUTPUT_TRUNCATED] = "OUTPUT_TRUNCATED",
	[REASON_PARSE_FAILED] = "PARSE_FAILED",
	[REASON_NO_DELIVERABLES_WRITTEN] = "NO_DELIVERABLES_WRITTEN",
	[REASON_SCOPE_VIOLATION] = "SCOPE_VIOLATION",
	[REASON_WRITE_FAILED] = "WRITE_FAILED",
	[REASON_DELIVERABLES_MISSING] = "DELIVERABLES_MISSING",
	[REASON_CHECK_FAILED] = "CHECK_FAILED",
	[REASON_CHECK_NOT_RUN] = "CHECK_NOT_RUN",
	[REASON_TIMEOUT] = "TIMEOUT",
	[REASON_SUPERVISOR_LINK_LOST] = "SUPERVISOR_LINK_LOST",
	[REASON_JOB_BUILD_FAILED] = "JOB_BUILD_FAILED",
	[REASON_WORKER_CRASHED] = "WORKER_CRASHED",
	[REASON_HEARTBEAT_LOST] = "HEARTBEAT_LOST",
	[REASON_CANCELLED] = "CANCELLED",
	[REASON_SCALED_DOWN] = "SCALED_DOWN",
	[REASON_SUPERVISOR_STOPPED] = "SUPERVISOR_STOPPED",
	[REASON_SUPERVISOR_RESTART] = "SUPERVISOR_RESTART",
	[REASON_SUPERVISOR_LOST] = "SUPERVISOR_LOST",
};

static const char *const zero_yields[ZERO_YIELD_COUNT] = {
	[ZERO_YIELD_SUCCESS_NO_LLM_CALLS] = "success_no_llm_calls",
	[ZERO_YIELD_TIMEOUT] = "timeout",
	[ZERO_YIELD_LLM_BOUNDARY_HIT] = "llm_boundary_hit",
	[ZERO_YIELD_FAILED_BEFORE_LLM] = "failed_before_llm",
	[ZERO_YIELD_PROVIDER_ERROR] = "provider_error",
	[ZERO_YIELD_PARSE_FAILED] = "parse_failed",
	[ZERO_YIELD_DELIVERABLES_FAILED] = "deliverables_failed",
	[ZERO_YIELD_CHECK_FAILED] = "check_failed",
	[ZERO_YIELD_EXECUTION_ERROR] = "execution_error",
	[ZERO_YIELD_UNKNOWN] = "unknown",
};

static const char *const phase_states[PHASE_STATE_COUNT] = {
	[PHASE_QUEUED] = "QUEUED",
	[PHASE_EXECUTING] = "EXECUTING",
	[PHASE_GATE] = "GATE",
	[PHASE_CI_RUNNING] = "CI_RUNNING",
	[PHASE_COMPLETE] = "COMPLETE",
	[PHASE_FAILED] = "FAILED",
	[PHASE_SKIPPED] = "SKIPPED",
};

static const char *const run_states[RUN_STATE_COUNT] = {
	[RUN_QUEUED] = "QUEUED",
	[RUN_PLAN_BOOTSTRAP] = "PLAN_BOOTSTRAP",
	[RUN_CREATED] = "RUN_CREATED",
	[RUN_PHASE_QUEUEING] = "PHASE_QUEUEING",
	[RUN_PHASE_EXECUTION] = "PHASE_EXECUTION",
	[RUN_GATE] = "GATE",
	[RUN_CI_RUNNING] = "CI_RUNNING",
	[RUN_SNAPSHOT_CREATED] = "SNAPSHOT_CREATED",
	[RUN_DONE_SUCCESS] = "DONE_SUCCESS",
	[RUN_DONE_FAILED_BUDGET_EXHAUSTED] = "DONE_FAILED_BUDGET_EXHAUSTED",
	[RUN_DONE_FAILED_POLICY_VIOLATION] = "DONE_FAILED_POLICY_VIOLATION",
	[RUN_DONE_FAILED_REQUIRES_HUMAN_REVIEW] = "DONE_FAILED_REQUIRES_HUMAN_REVIEW",
	[RUN_DONE_FAILED_ENVIRONMENT] = "DONE_FAILED_ENVIRONMENT",
};

static const char *const tier_states[TIER_STATE_COUNT] = {
	[TIER_PENDING] = "PENDING",
	[TIER_IN_PROGRESS] = "IN_PROGRESS",
	[TIER_COMPLETE] = "COMPLETE",
	[TIER_FAILED] = "FAILED",
	[TIER_SKIPPED] = "SKIPPED",
};

static const char *const event_kinds[EVENT_KIND_COUNT] = {
	[EVENT_LLM_USAGE] = "llm_usage",
	[EVENT_TOKEN_ESTIMATION_V2] = "token_estimation_v2",
	[EVENT_LOG] = "log",
	[EVENT_LLM_REQUEST] = "llm_request",
};

static const char *const usage_statuses[USAGE_STATUS_COUNT] = {
	[USAGE_OK] = "ok",
	[USAGE_ERROR] = "error",
	[USAGE_SENT] = "sent",
	[USAGE_LOST] = "lost",
};

static const char *const stop_levels[STOP_LEVEL_COUNT] = {
	[STOP_GRACEFUL] = "graceful",
	[STOP_NOW] = "now",
};

static const char *const buckets[BUCKET_COUNT] = {
	[BUCKET_UNKNOWN] = "unknown",
	[BUCKET_COLLECTION] = "collection",
	[BUCKET_DELIVERABLE] = "deliverable",
	[BUCKET_PATCH] = "patch",
	[BUCKET_OTHER] = "other",
	[BUCKET_TIMEOUT] = "timeout",
};

/* The index of `name` in a table of n names, or 0 (the *_NONE value). */
static int vocab_find(const char *const *names, int n, const char *name)
{
	if (name == NULL)
		return 0;
	for (int i = 1; i < n; i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return i;
	return 0;
}

/* Name a value of an enum; the value must be in the table. */
#define VOCAB_NAME(table, v) (assert((unsigned)(v) < ARRAY_SIZE(table)), (table)[v])

/* Name an outcome. */
const char *outcome_name(enum outcome o)
{
	assert((unsigned)o < OUTCOME_COUNT);
	return outcomes[o].name;
}

/* Name a failure reason. */
const char *reason_name(enum reason r)
{
	return VOCAB_NAME(reasons, r);
}

/* Name a zero-yield reason. */
const char *zero_yield_name(enum zero_yield z)
{
	return VOCAB_NAME(zero_yields, z);
}

/* Name a phase state. */
const char *phase_state_name(enum phase_state s)
{
	return VOCAB_NAME(phase_states, s);
}

/* Name a run state. */
const char *run_state_name(enum run_state s)
{
	return VOCAB_NAME(run_states, s);
}

/* Name a tier state. */
const char *tier_state_name(enum tier_state s)
{
	return VOCAB_NAME(tier_states, s);
}

/* Name an event kind. */
const char *event_kind_name(enum event_kind k)
{
	return VOCAB_NAME(event_kinds, k);
}

/* Name an LLM call's status. */
const char *usage_status_name(enum usage_status u)
{
	return VOCAB_NAME(usage_statuses, u);
}

/* Name a stop level. */
const char *stop_level_name(enum stop_level l)
{
	return VOCAB_NAME(stop_levels, l);
}

/* Name a bucket. */
const char *bucket_name(enum bucket b)
{
	return VOCAB_NAME(buckets, b);
}

/* Look up an outcome by name; OUTCOME_NONE if unknown. */
enum outcome outcome_parse(const char *name)
{
	if (name == NULL)
		return OUTCOME_NONE;
	for (int i = 1; i < OUTCOME_COUNT; i++)
		if (strcmp(outcomes[i].name, name) == 0)
			return (enum outcome)i;
	return OUTCOME_NONE;
}

/* Look up a failure reason by name; REASON_NONE if unknown. */
enum reason reason_parse(const char *name)
{
	return (enum reason)vocab_find(reasons, REASON_COUNT, name);
}

/* Look up a zero-yield reason by name; ZERO_YIELD_NONE if unknown. */
enum zero_yield zero_yield_parse(const char *name)
{
	return (enum zero_yield)vocab_find(zero_yields, ZERO_YIELD_COUNT, name);
}

/* Look up a phase state by name; PHASE_STATE_NONE if unknown. */
enum phase_state phase_state_parse(const char *name)
{
	return (enum phase_state)vocab_find(phase_states, PHASE_STATE_COUNT, name);
}

/* Look up an event kind by name; EVENT_KIND_NONE if unknown. */
enum event_kind event_kind_parse(const char *name)
{
	return (enum event_kind)vocab_find(event_kinds, EVENT_KIND_COUNT, name);
}

/* The fingerprint label of an outcome. */
const char *outcome_label(enum outcome o)
{
	assert((unsigned)o < OUTCOME_COUNT);
	return outcomes[o].label;
}

/* Whether the outcome is a success or a dry run. */
bool outcome_ok(enum outcome o)
{
	assert((unsigned)o < OUTCOME_COUNT);
	return outcomes[o].ok;
}

/* Whether the outcome hands a requeued phase back (OUTCOME_HANDS_BACK_SQL names the
 * same). */
bool outcome_hands_back(enum outcome o)
{
	switch (o) {
	case OUTCOME_WORKER_CRASHED:
	case OUTCOME_HEARTBEAT_LOST:
	case OUTCOME_SCALED_DOWN:
	case OUTCOME_SUPERVISOR_STOPPED:
	case OUTCOME_SUPERVISOR_RESTART:
	case OUTCOME_SUPERVISOR_LOST: return true;
	default: return false;
	}
}

/* Whether a worker may report the outcome. */
bool outcome_reportable(enum outcome o)
{
	assert((unsigned)o < OUTCOME_COUNT);
	return outcomes[o].reportable;
}

/* The reason recorded for an end the supervisor saw itself. */
enum reason outcome_reason(enum outcome o)
{
	assert((unsigned)o < OUTCOME_COUNT);
	return outcomes[o].reason;
}
