#include "proto/schema.h"

#include <string.h>

#include "common/util.h"
#include "proto/wire.h"

#define FIELD(k, kind, type, member, ...)                                                          \
	{                                                                                          \
		k, sizeof(k) - 1, kind, offsetof(type, member), 0, __VA_ARGS__                     \
	}
#define STR(k, type, member, limit) FIELD(k, PF_STR, type, member, 0, limit, NULL)
#define STR_OPT(k, type, member, limit) FIELD(k, PF_STR_OPT, type, member, 0, limit, NULL)
#define I64(k, type, member, lo, hi) FIELD(k, PF_I64, type, member, lo, hi, NULL)
#define NNEG(k, type, member) I64(k, type, member, 0, INT64_MAX)
#define I64_OPT(k, type, member, hi) FIELD(k, PF_I64_OPT, type, member, 0, hi, NULL)
#define U64(k, type, member) FIELD(k, PF_U64, type, member, 0, 0, NULL)
/* A uint64_t in [lo, hi] (hi > 0): one the database keeps as a signed 64-bit integer is at
 * most INT64_MAX. */
#define U64_IN(k, type, member, lo, hi) FIELD(k, PF_U64, type, member, lo, hi, NULL)
#define BOOL(k, type, member) FIELD(k, PF_BOOL, type, member, 0, 0, NULL)
#define LIST(k, type, member, limit) FIELD(k, PF_LIST, type, member, 0, limit, NULL)
#define MAP(k, type, member, schema) FIELD(k, PF_MAP, type, member, 0, 0, &schema)
#define SCHEMA(var, name, fields)                                                                  \
	_Static_assert(ARRAY_SIZE(fields) <= PROTO_FIELDS_MAX, "too many fields in " name);        \
	static const struct proto_schema var = { name, fields, ARRAY_SIZE(fields) }

static const struct proto_field hello_fields[] = {
	I64("pid", struct proto_hello, pid, 1, INT32_MAX),
	STR("sw", struct proto_hello, sw_version, PROTO_NAME_MAX),
};
SCHEMA(hello_schema, "hello", hello_fields);

static const struct proto_field phase_fields[] = {
	STR("name", struct proto_phase, name, PROTO_STR_MAX),
	STR("desc", struct proto_phase, description, PROTO_STR_MAX),
	STR_OPT("cat", struct proto_phase, task_category, PROTO_NAME_MAX),
	STR_OPT("cplx", struct proto_phase, complexity, PROTO_NAME_MAX),
	LIST("paths", struct proto_phase, paths, PROTO_PATH_MAX),
	LIST("ro", struct proto_phase, read_only_context, PROTO_PATH_MAX),
	LIST("dl", struct proto_phase, deliverables, PROTO_PATH_MAX),
	STR_OPT("check", struct proto_phase, check_command, PROTO_STR_MAX),
	NNEG("maxa", struct proto_phase, max_builder_attempts),
};
SCHEMA(phase_schema, "p", phase_fields);

static const struct proto_field llm_fields[] = {
	STR("prov", struct proto_llm, provider, PROTO_NAME_MAX),
	STR("url", struct proto_llm, base_url, PROTO_PATH_MAX),
	STR("model", struct proto_llm, model, PROTO_NAME_MAX),
	NNEG("tmo", struct proto_llm, timeout_ms),
	NNEG("retries", struct proto_llm, max_retries),
};
SCHEMA(llm_schema, "llm", llm_fields);

const struct proto_field proto_coef_fields[3] = {
	STR("cat", struct proto_coef, category, PROTO_NAME_MAX),
	STR("cplx", struct proto_coef, complexity, PROTO_NAME_MAX),
	I64("n", struct proto_coef, overhead, INT64_MIN, INT64_MAX),
};

/* Lives in struct proto_job itself: "est" groups the estimator's fields on the wire. */
static const struct proto_field est_fields[] = {
	U64("ver", struct proto_job, coef_version),
	{ "oh", 2, PF_COEFS, offsetof(struct proto_job, coefs), offsetof(struct proto_job, ncoefs),
	    0, 0, NULL },
	STR_OPT("fit", struct proto_job, fit_json, PROTO_STR_MAX),
};
SCHEMA(est_schema, "est", est_fields);

static const struct proto_field job_fields[] = {
	STR("db", struct proto_job, db_url, PROTO_PATH_MAX),
	STR("uuid", struct proto_job, db_uuid, PROTO_NAME_MAX),
	U64("att", struct proto_job, attempt_id),
	STR("run", struct proto_job, run_id, PROTO_NAME_MAX),
	STR("phase", struct proto_job, phase_id, PROTO_NAME_MAX),
	MAP("p", struct proto_job, phase, phase_schema),
	I64("n", struct proto_job, attempt_number, 1, INT64_MAX),
	NNEG("deadline", struct proto_job, deadline_ms),
	I64("cap", struct proto_job, max_tokens_cap, 0, PROTO_TOKENS_MAX),
	MAP("llm", struct proto_job, llm, llm_schema),
	{ "est", 3, PF_MAP, 0, 0, 0, 0, &est_schema },
	STR("ws", struct proto_job, workspace, PROTO_PATH_MAX),
	BOOL("dry", struct proto_job, dry_run),
	I64_OPT("ann", struct proto_job, ann, 1),
};
SCHEMA(job_schema, "job", job_fields);

static const struct proto_field heartbeat_fields[] = {
	STR("uuid", struct proto_heartbeat, db_uuid, PROTO_NAME_MAX),
	U64("att", struct proto_heartbeat, attempt_id),
	I64_OPT("wait", struct proto_heartbeat, wait_seq, INT64_MAX),
};
SCHEMA(heartbeat_schema, "heartbeat", heartbeat_fields);

static const struct proto_field usage_fields[] = {
	STR("prov", struct proto_usage, provider, PROTO_NAME_MAX),
	STR("model", struct proto_usage, model, PROTO_NAME_MAX),
	STR("role", struct proto_usage, role, PROTO_NAME_MAX),
	I64_OPT("in", struct proto_usage, prompt_tokens, PROTO_TOKENS_MAX),
	I64_OPT("out", struct proto_usage, completion_tokens, PROTO_TOKENS_MAX),
	I64("total", struct proto_usage, total_tokens, 0, PROTO_TOTAL_TOKENS_MAX),
	NNEG("lat", struct proto_usage, latency_ms),
	I64("http", struct proto_usage, http_status, 0, 999),
	STR_OPT("err", struct proto_usage, error_class, PROTO_NAME_MAX),
	I64("try", struct proto_usage, try_number, 1, INT64_MAX),
};
SCHEMA(usage_schema, "body", usage_fields);

static const struct proto_field estimation_fields[] = {
	STR("cat", struct proto_estimation, category, PROTO_NAME_MAX),
	STR("cplx", struct proto_estimation, complexity, PROTO_NAME_MAX),
	NNEG("ndl", struct proto_estimation, deliverable_count),
	STR("dl", struct proto_estimation, deliverables_json, PROTO_STR_MAX),
	I64("pred", struct proto_estimation, predicted_output_tokens, 0, PROTO_TOKENS_MAX),
	I64("actual", struct proto_estimation, actual_output_tokens, 0, PROTO_TOKENS_MAX),
	I64("budget", struct proto_estimation, selected_budget, 0, PROTO_TOKENS_MAX),
	I64_OPT("maxt", struct proto_estimation, actual_max_tokens, PROTO_TOKENS_MAX),
	BOOL("success", struct proto_estimation, success),
	BOOL("truncated", struct proto_estimation, truncated),
	STR_OPT("stop", struct proto_estimation, stop_reason, PROTO_NAME_MAX),
	STR("model", struct proto_estimation, model, PROTO_NAME_MAX),
	U64_IN("ver", struct proto_estimation, estimator_version, 0, INT64_MAX),
	I64_OPT("doc", struct proto_estimation, doc_features, DOC_FEATURES_ALL),
	STR_OPT("ctxq", struct proto_estimation, context_quality, PROTO_NAME_MAX),
	STR_OPT("sot", struct proto_estimation, sot_file_name, PROTO_PATH_MAX),
	I64_OPT("sotn", struct proto_estimation, sot_entry_count_hint, INT64_MAX),
	I64_OPT("in", struct proto_estimation, input_tokens, PROTO_TOKENS_MAX),
	STR_OPT("dlx", struct proto_estimation, deliverables_detail_json, PROTO_STR_MAX),
};
SCHEMA(estimation_schema, "body", estimation_fields);

static const struct proto_field log_fields[] = {
	STR("lvl", struct proto_log, level, PROTO_NAME_MAX),
	STR("msg", struct proto_log, message, PROTO_STR_MAX),
};
SCHEMA(log_schema, "body", log_fields);

static const struct proto_field request_ev_fields[] = {
	STR("prov", struct proto_llm_request, provider, PROTO_NAME_MAX),
	STR("model", struct proto_llm_request, model, PROTO_NAME_MAX),
	STR("role", struct proto_llm_request, role, PROTO_NAME_MAX),
	I64("maxt", struct proto_llm_request, max_tokens, 1, PROTO_TOKENS_MAX),
	I64("try", struct proto_llm_request, try_number, 1, INT64_MAX),
};
SCHEMA(request_ev_schema, "body", request_ev_fields);

static const struct proto_field event_fields[] = {
	STR("uuid", struct proto_event, db_uuid, PROTO_NAME_MAX),
	U64("att", struct proto_event, attempt_id),
	/* 0 is the supervisor's own event of an attempt (a telemetry gap). */
	U64_IN("seq", struct proto_event, seq, 1, INT64_MAX),
	FIELD("kind", PF_KIND, struct proto_event, kind, 0, 0, NULL),
	FIELD("body", PF_BODY, struct proto_event, body, 0, 0, NULL),
};
SCHEMA(event_schema, "event", event_fields);

static const struct proto_field ack_fields[] = {
	U64("att", struct proto_ack, attempt_id),
	U64("seq", struct proto_ack, seq),
};
SCHEMA(ack_schema, "ack", ack_fields);

static const struct proto_field result_fields[] = {
	STR("uuid", struct proto_result, db_uuid, PROTO_NAME_MAX),
	U64("att", struct proto_result, attempt_id),
	U64_IN("seq", struct proto_result, final_seq, 0, INT64_MAX),
	STR("outcome", struct proto_result, outcome, PROTO_NAME_MAX),
	STR_OPT("why", struct proto_result, failure_reason, PROTO_STR_MAX),
	STR_OPT("msg", struct proto_result, message, PROTO_STR_MAX),
	STR_OPT("fp", struct proto_result, fingerprint, PROTO_STR_MAX),
	STR_OPT("zy", struct proto_result, zero_yield_reason, PROTO_STR_MAX),
	BOOL("llm", struct proto_result, reached_llm_boundary),
	NNEG("dur", struct proto_result, duration_ms),
};
SCHEMA(result_schema, "result", result_fields);

static const struct proto_field cancel_fields[] = {
	U64("att", struct proto_cancel, attempt_id),
};
SCHEMA(cancel_schema, "cancel", cancel_fields);

static const struct proto_field shutdown_fields[] = {
	STR_OPT("why", struct proto_shutdown, reason, PROTO_STR_MAX),
};
SCHEMA(shutdown_schema, "shutdown", shutdown_fields);

static const struct proto_field request_fields[] = {
	U64("id", struct proto_request, id),
	STR("cmd", struct proto_request, command, PROTO_NAME_MAX),
	LIST("args", struct proto_request, args, PROTO_STR_MAX),
	STR_OPT("uuid", struct proto_request, expect_uuid, PROTO_NAME_MAX),
	STR_OPT("db", struct proto_request, expect_url, PROTO_PATH_MAX),
	STR_OPT("dev", struct proto_request, expect_devino, PROTO_NAME_MAX),
};
SCHEMA(request_schema, "request", request_fields);

static const struct proto_field reply_fields[] = {
	U64("id", struct proto_reply, id),
	BOOL("ok", struct proto_reply, ok),
	STR_OPT("code", struct proto_reply, code, PROTO_NAME_MAX),
	STR_OPT("msg", struct proto_reply, message, PROTO_STR_MAX),
	STR("db", struct proto_reply, db_url, PROTO_PATH_MAX),
	STR("uuid", struct proto_reply, db_uuid, PROTO_NAME_MAX),
	STR("dev", struct proto_reply, db_devino, PROTO_NAME_MAX),
	STR_OPT("body", struct proto_reply, body, PROTO_STR_MAX),
	BOOL("more", struct proto_reply, more),
};
SCHEMA(reply_schema, "reply", reply_fields);

static const struct proto_schema *const type_schemas[] = {
	[PROTO_HELLO] = &hello_schema,
	[PROTO_JOB] = &job_schema,
	[PROTO_HEARTBEAT] = &heartbeat_schema,
	[PROTO_EVENT] = &event_schema,
	[PROTO_ACK] = &ack_schema,
	[PROTO_RESULT] = &result_schema,
	[PROTO_CANCEL] = &cancel_schema,
	[PROTO_SHUTDOWN] = &shutdown_schema,
	[PROTO_REQUEST] = &request_schema,
	[PROTO_REPLY] = &reply_schema,
};

static const struct proto_schema *const kind_schemas[] = {
	[PROTO_EV_LLM_USAGE] = &usage_schema,
	[PROTO_EV_TOKEN_ESTIMATION] = &estimation_schema,
	[PROTO_EV_LOG] = &log_schema,
	[PROTO_EV_LLM_REQUEST] = &request_ev_schema,
};

/* The schema of a message type, or NULL. */
const struct proto_schema *proto_schema_of_type(enum proto_type t)
{
	if ((size_t)t >= ARRAY_SIZE(type_schemas))
		return NULL;
	return type_schemas[t];
}

/* The schema of an event kind's body, or NULL. */
const struct proto_schema *proto_schema_of_kind(enum proto_event_kind k)
{
	if ((size_t)k >= ARRAY_SIZE(kind_schemas))
		return NULL;
	return kind_schemas[k];
}

/* Name a message type ("unknown" for none). */
const char *proto_type_name(enum proto_type t)
{
	const struct proto_schema *s = proto_schema_of_type(t);

	return s != NULL ? s->name : "unknown";
}

/* Name an event kind ("unknown" for none). */
const char *proto_event_kind_name(enum proto_event_kind k)
{
	if (proto_schema_of_kind(k) == NULL)
		return "unknown";
	return event_kind_name((enum event_kind)k);
}

/* Find the message type a name stands for, or 0. */
enum proto_type proto_type_lookup(const void *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t t = 1; t < ARRAY_SIZE(type_schemas); t++) {
		const char *name = type_schemas[t]->name;

		if (name[0] == *(const char *)s && strlen(name) == n && memcmp(name, s, n) == 0)
			return (enum proto_type)t;
	}
	return 0;
}

/* Find the event kind a name stands for, or 0. */
enum proto_event_kind proto_kind_lookup(const void *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t k = 1; k < ARRAY_SIZE(kind_schemas); k++) {
		const char *name = event_kind_name((enum event_kind)k);

		if (kind_schemas[k] != NULL && name[0] == *(const char *)s && strlen(name) == n &&
		    memcmp(name, s, n) == 0)
			return (enum proto_event_kind)k;
	}
	return 0;
}
