#include "tests/unit/proto_samples.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

#define UTF8_TEXT "Ünïcödé ✓ 𝄞 日本語"

/* Pick the string for variant v. */
static char *pick(enum proto_sample_variant v, const char *typical, const char *max)
{
	if (v == SAMPLE_MIN)
		return xstrdup("");
	return xstrdup(v == SAMPLE_TYPICAL ? typical : max);
}

/* Pick a nullable string: absent in the min variant. */
static char *pick_opt(enum proto_sample_variant v, const char *typical, const char *max)
{
	return v == SAMPLE_MIN ? NULL : pick(v, typical, max);
}

/* Pick an integer for variant v. */
static int64_t num(enum proto_sample_variant v, int64_t min, int64_t typical, int64_t max)
{
	return v == SAMPLE_MIN ? min : v == SAMPLE_TYPICAL ? typical : max;
}

/* Pick an unsigned integer for variant v. */
static uint64_t unum(enum proto_sample_variant v, uint64_t typical)
{
	return v == SAMPLE_MIN ? 0 : v == SAMPLE_TYPICAL ? typical : UINT64_MAX;
}

/* A list of n strings "<prefix><index><suffix>". */
static void list_fill(struct proto_strlist *l, size_t n, const char *prefix, const char *suffix)
{
	l->n = n;
	l->items = xcalloc(n, sizeof *l->items);
	for (size_t j = 0; j < n; j++)
		l->items[j] = xasprintf("%s%04zu%s", prefix, j, suffix);
}

/* Fill a hello of variant v. */
static void build_hello(enum proto_sample_variant v, struct proto_hello *h)
{
	h->pid = num(v, 1, 4242, INT32_MAX);
	h->sw_version = pick(v, "0.1.0", UTF8_TEXT);
}

/* Fill a job of variant v. */
static void build_job(enum proto_sample_variant v, struct proto_job *j)
{
	size_t ndl = v == SAMPLE_MIN ? 0 : v == SAMPLE_TYPICAL ? 3 : PROTO_LIST_MAX;

	j->db_url = pick(
	    v, "sqlite:////tmp/autopack/autopack.db", "sqlite:////tmp/" UTF8_TEXT ".db");
	j->db_uuid = pick(
	    v, "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12", "ffffffff-ffff-ffff-ffff-ffffffffffff");
	j->attempt_id = unum(v, 17);
	j->run_id = pick(v, "demo-1", UTF8_TEXT);
	j->phase_id = pick(v, "p1-strings", UTF8_TEXT);
	j->phase.name = pick(v, "String helpers", UTF8_TEXT);
	j->phase.description = pick(
	    v, "Create string_helper.py with capitalize_words.", "Line one\nLine two\t" UTF8_TEXT);
	j->phase.task_category = pick_opt(v, "implementation", UTF8_TEXT);
	j->phase.complexity = pick_opt(v, "low", "high");
	list_fill(&j->phase.paths, v == SAMPLE_MIN ? 0 : 2, "src/dir", "/");
	list_fill(&j->phase.read_only_context, v == SAMPLE_MIN ? 0 : 1, "docs/ctx", ".md");
	list_fill(&j->phase.deliverables, ndl, "src/dir0/module_", ".py");
	j->phase.check_command = pick_opt(v, "python3 -c 'import utils.string_helper'", UTF8_TEXT);
	j->phase.max_builder_attempts = num(v, 0, 3, INT64_MAX);
	j->attempt_number = num(v, 1, 1, INT64_MAX);
	j->deadline_ms = num(v, 0, 1766527572123LL, INT64_MAX);
	j->max_tokens_cap = num(v, 0, 64000, PROTO_TOKENS_MAX);
	j->llm.provider = pick(v, "anthropic", "openai");
	j->llm.base_url = pick(v, "http://127.0.0.1:8080", "https://api.openai.com/v1");
	j->llm.model = pick(v, "claude-sonnet-4-5", UTF8_TEXT);
	j->llm.timeout_ms = num(v, 0, 120000, INT64_MAX);
	j->llm.max_retries = num(v, 0, 3, INT64_MAX);
	j->coef_version = unum(v, 2);
	j->ncoefs = v == SAMPLE_MIN ? 0 : 2;
	j->coefs = xcalloc(j->ncoefs, sizeof *j->coefs);
	for (size_t r = 0; r < j->ncoefs; r++) {
		j->coefs[r].category = pick(v, "implementation", UTF8_TEXT);
		j->coefs[r].complexity = pick(v, r ? "medium" : "low", "high");
		j->coefs[r].overhead = v == SAMPLE_TYPICAL ? 2000 + 500 * (int64_t)r :
		    r                                      ? INT64_MAX :
		                                             INT64_MIN;
	}
	j->fit_json = pick_opt(v, "{\"model\":\"ridge_log\",\"factor\":2.9}", UTF8_TEXT);
	j->workspace = pick(v, "/tmp/autopack/demo-workspace", "/tmp/" UTF8_TEXT);
	j->dry_run = v == SAMPLE_MAX;
	j->ann = v == SAMPLE_MIN ? -1 : 1;
}

/* Fill a heartbeat of variant v. */
static void build_heartbeat(enum proto_sample_variant v, struct proto_heartbeat *h)
{
	h->db_uuid = pick(v, "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12", UTF8_TEXT);
	h->attempt_id = unum(v, 17);
	h->wait_seq = num(v, -1, 12, INT64_MAX);
}

/* Fill an llm_usage body of variant v. */
static void build_usage(enum proto_sample_variant v, struct proto_usage *u)
{
	u->provider = pick(v, "anthropic", "openai");
	u->model = pick(v, "claude-sonnet-4-5", UTF8_TEXT);
	u->role = pick(v, "builder", "auditor");
	u->prompt_tokens = num(v, -1, 1234, PROTO_TOKENS_MAX);
	u->completion_tokens = num(v, -1, 567, PROTO_TOKENS_MAX);
	u->total_tokens = num(v, 0, 1801, PROTO_TOTAL_TOKENS_MAX);
	u->latency_ms = num(v, 0, 2300, INT64_MAX);
	u->http_status = num(v, 0, 200, 999);
	u->error_class = pick_opt(v, "rate_limited", UTF8_TEXT);
	u->try_number = num(v, 1, 1, INT64_MAX);
}

/* Fill a token_estimation_v2 body of variant v. */
static void build_estimation(enum proto_sample_variant v, struct proto_estimation *e)
{
	e->category = pick(v, "implementation", UTF8_TEXT);
	e->complexity = pick(v, "low", "high");
	e->deliverable_count = num(v, 0, 1, INT64_MAX);
	e->deliverables_json = pick(v, "[\"utils/string_helper.py\"]", "[\"" UTF8_TEXT "\"]");
	e->predicted_output_tokens = num(v, 0, 4000, PROTO_TOKENS_MAX);
	e->actual_output_tokens = num(v, 0, 3500, PROTO_TOKENS_MAX);
	e->selected_budget = num(v, 0, 8000, PROTO_TOKENS_MAX);
	e->actual_max_tokens = num(v, -1, 8000, PROTO_TOKENS_MAX);
	e->success = v != SAMPLE_MIN;
	e->truncated = v == SAMPLE_MAX;
	e->stop_reason = pick_opt(v, "end_turn", "max_tokens");
	e->model = pick(v, "claude-sonnet-4-5", UTF8_TEXT);
	e->estimator_version = (uint64_t)num(v, 0, 2, INT64_MAX);
	e->doc_features = num(v, -1, DOC_EXAMPLES, 15);
	e->context_quality = pick_opt(v, "some", "strong");
	e->sot_file_name = pick_opt(v, "BUILD_HISTORY.md", UTF8_TEXT);
	e->sot_entry_count_hint = num(v, -1, 12, INT64_MAX);
	e->input_tokens = num(v, -1, 2100, PROTO_TOKENS_MAX);
	e->deliverables_detail_json = pick_opt(
	    v, "[{\"kind\":\"new\",\"bytes\":null}]", "[{\"kind\":\"modify\",\"bytes\":4096}]");
}

/* Fill a result of variant v. */
static void build_result(enum proto_sample_variant v, struct proto_result *r)
{
	r->db_uuid = pick(v, "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12", UTF8_TEXT);
	r->attempt_id = unum(v, 17);
	r->final_seq = (uint64_t)num(v, 0, 3, INT64_MAX);
	r->outcome = pick(v, "failed", "success");
	r->failure_reason = pick_opt(v, "check_failed", UTF8_TEXT);
	r->message = pick_opt(v, "AssertionError: expected 'Ab' got 'ab'", UTF8_TEXT);
	r->fingerprint = pick_opt(
	    v, "check_failed:assertionerror expected <str> got <str>", UTF8_TEXT);
	r->zero_yield_reason = pick_opt(v, "no_deliverables", UTF8_TEXT);
	r->reached_llm_boundary = v != SAMPLE_MIN;
	r->duration_ms = num(v, 0, 4200, INT64_MAX);
}

/* Fill a request of variant v. */
static void build_request(enum proto_sample_variant v, struct proto_request *q)
{
	q->id = unum(v, 7);
	q->command = pick(v, "status", UTF8_TEXT);
	list_fill(&q->args, v == SAMPLE_MIN ? 0 : 2, "--arg", "");
	q->expect_uuid = pick_opt(v, "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12", UTF8_TEXT);
	q->expect_url = pick_opt(v, "sqlite:////tmp/autopack/autopack.db", UTF8_TEXT);
	q->expect_devino = pick_opt(v, "65024:10953381", UTF8_TEXT);
}

/* Fill a reply of variant v. */
static void build_reply(enum proto_sample_variant v, struct proto_reply *p)
{
	p->id = unum(v, 7);
	p->ok = v != SAMPLE_MIN;
	p->code = pick_opt(v, "not_found", UTF8_TEXT);
	p->message = pick_opt(v, "no phase p9 in run demo-1", UTF8_TEXT);
	p->db_url = pick(v, "sqlite:////tmp/autopack/autopack.db", UTF8_TEXT);
	p->db_uuid = pick(v, "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12", UTF8_TEXT);
	p->db_devino = pick(v, "65024:10953381", UTF8_TEXT);
	p->body = pick_opt(v, "{\"workers\":2,\"paused\":false}", "{\"text\":\"" UTF8_TEXT "\"}");
	p->more = v == SAMPLE_MAX;
}

/* Fill the event header and the body of kind k. */
static void build_event(enum proto_sample_variant v, enum proto_event_kind k, struct proto_event *e)
{
	e->db_uuid = pick(v, "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12", UTF8_TEXT);
	e->attempt_id = unum(v, 17);
	e->seq = (uint64_t)num(v, 1, 1, INT64_MAX);
	e->kind = k;
	if (k == PROTO_EV_LLM_USAGE) {
		build_usage(v, &e->body.usage);
	} else if (k == PROTO_EV_TOKEN_ESTIMATION) {
		build_estimation(v, &e->body.est);
	} else if (k == PROTO_EV_LLM_REQUEST) {
		e->body.request.provider = pick(v, "anthropic", UTF8_TEXT);
		e->body.request.model = pick(v, "claude-sonnet-4-5", UTF8_TEXT);
		e->body.request.role = pick(v, "builder", UTF8_TEXT);
		e->body.request.max_tokens = num(v, 1, 16384, PROTO_TOKENS_MAX);
		e->body.request.try_number = num(v, 1, 2, INT64_MAX);
	} else {
		e->body.log.level = pick(v, "info", "error");
		e->body.log.message = pick(v, "calling the model", UTF8_TEXT);
	}
}

static const char *const names[] = {
	"hello",
	"job",
	"heartbeat",
	"event_llm_usage",
	"event_token_estimation_v2",
	"event_log",
	"ack",
	"result",
	"cancel",
	"shutdown",
	"request",
	"reply",
	"event_llm_request",
};

size_t proto_sample_count(void)
{
	return ARRAY_SIZE(names);
}

const char *proto_sample_build(size_t i, enum proto_sample_variant v, struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	switch (i) {
	case 0:
		m->type = PROTO_HELLO;
		build_hello(v, &m->u.hello);
		break;
	case 1:
		m->type = PROTO_JOB;
		build_job(v, &m->u.job);
		break;
	case 2:
		m->type = PROTO_HEARTBEAT;
		build_heartbeat(v, &m->u.heartbeat);
		break;
	case 3:
	case 4:
	case 5:
		m->type = PROTO_EVENT;
		build_event(
		    v, (enum proto_event_kind)(PROTO_EV_LLM_USAGE + (int)(i - 3)), &m->u.event);
		break;
	case 6:
		m->type = PROTO_ACK;
		m->u.ack.attempt_id = unum(v, 17);
		m->u.ack.seq = unum(v, 3);
		break;
	case 7:
		m->type = PROTO_RESULT;
		build_result(v, &m->u.result);
		break;
	case 8:
		m->type = PROTO_CANCEL;
		m->u.cancel.attempt_id = unum(v, 17);
		break;
	case 9:
		m->type = PROTO_SHUTDOWN;
		m->u.shutdown.reason = pick_opt(v, "drained", UTF8_TEXT);
		break;
	case 10:
		m->type = PROTO_REQUEST;
		build_request(v, &m->u.request);
		break;
	case 11:
		m->type = PROTO_REPLY;
		build_reply(v, &m->u.reply);
		break;
	case 12:
		m->type = PROTO_EVENT;
		build_event(v, PROTO_EV_LLM_REQUEST, &m->u.event);
		break;
	default: return NULL;
	}
	return names[i];
}
