/* phase_run end to end, in process, against the stand-in, with hooks collecting events. */
#include "common/util.h"
#include "tests/unit/test.h"
#include "tests/unit/worker_standin.h"
#include "worker/phase.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY "sk-phase-test-4b1d-SECRET"
#define EV_MAX 32

/* A copy of one emitted event. */
struct rec {
	enum proto_event_kind kind;
	char level[16];
	char *text;         /* log message, or usage error class */
	int64_t a, b, c, d; /* usage: prompt, completion, status, try; est: predicted, actual,
				budget, max_tokens */
	bool success, truncated;
	char category[32];
	uint64_t version;
};

struct recorder {
	struct rec ev[EV_MAX];
	int n;
	int beats;
	int fail_after;  /* emit returns -1 from this event on (0: never) */
	char all[65536]; /* every string seen, for the key check */
	size_t all_len;
};

/* Remember a string for the key check. */
static void rec_text(struct recorder *r, const char *s)
{
	size_t k = s != NULL ? strlen(s) : 0;

	if (k > 0 && r->all_len + k + 2 < sizeof r->all) {
		memcpy(r->all + r->all_len, s, k);
		r->all_len += k;
		r->all[r->all_len++] = '\n';
		r->all[r->all_len] = '\0';
	}
}

static int rec_emit(void *ctx, struct proto_event *ev)
{
	struct recorder *r = ctx;
	struct rec *e;

	if (r->fail_after > 0 && r->n + 1 >= r->fail_after)
		return -1;
	CHECK(r->n < EV_MAX);
	e = &r->ev[r->n++];
	memset(e, 0, sizeof *e);
	e->kind = ev->kind;
	if (ev->kind == PROTO_EV_LOG) {
		snprintf(e->level, sizeof e->level, "%s", ev->body.log.level);
		e->text = xstrdup(ev->body.log.message);
		rec_text(r, ev->body.log.message);
	} else if (ev->kind == PROTO_EV_LLM_USAGE) {
		struct proto_usage *u = &ev->body.usage;
		e->text = xstrdup(u->error_class != NULL ? u->error_class : "");
		e->a = u->prompt_tokens;
		e->b = u->completion_tokens;
		e->c = u->http_status;
		e->d = u->try_number;
		CHECK_EQ_STR(u->role, "builder");
		rec_text(r, u->provider);
		rec_text(r, u->model);
	} else if (ev->kind == PROTO_EV_LLM_REQUEST) {
		struct proto_llm_request *q = &ev->body.request;
		e->a = q->max_tokens;
		e->d = q->try_number;
		CHECK_EQ_STR(q->role, "builder");
		rec_text(r, q->provider);
		rec_text(r, q->model);
	} else {
		struct proto_estimation *t = &ev->body.est;
		e->a = t->predicted_output_tokens;
		e->b = t->actual_output_tokens;
		e->c = t->selected_budget;
		e->d = t->actual_max_tokens;
		e->success = t->success;
		e->truncated = t->truncated;
		e->version = t->estimator_version;
		snprintf(e->category, sizeof e->category, "%s", t->category);
		e->text = xstrdup(t->deliverables_json);
		rec_text(r, t->deliverables_json);
		rec_text(r, t->stop_reason);
	}
	return 0;
}

static void rec_beat(void *ctx)
{
	((struct recorder *)ctx)->beats++;
}

static void rec_free(struct recorder *r)
{
	int i;

	for (i = 0; i < r->n; i++)
		free(r->ev[i].text);
}

/* Count events of a kind. */
static int rec_count(const struct recorder *r, enum proto_event_kind k)
{
	int i, n = 0;

	for (i = 0; i < r->n; i++)
		n += r->ev[i].kind == k;
	return n;
}

/* The i-th event of a kind. */
static const struct rec *rec_nth(const struct recorder *r, enum proto_event_kind k, int nth)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (r->ev[i].kind == k && nth-- == 0)
			return &r->ev[i];
	CHECK(!"no such event");
	return NULL;
}

static char *dl_one[] = { "utils/string_helper.py" };
static char *scope_utils[] = { "utils/" };

/* A job for ./ws (absolute), implementation/low, one deliverable, against `base`. */
static void job_init(struct proto_job *j, const char *provider, const char *base)
{
	static char ws[4096];

	mkdir("ws", 0755);
	CHECK(realpath("ws", ws) != NULL);
	memset(j, 0, sizeof *j);
	j->db_url = (char *)"sqlite:////tmp/x.db";
	j->db_uuid = (char *)"00000000-0000-4000-8000-000000000000";
	j->attempt_id = 7;
	j->run_id = (char *)"demo-1";
	j->phase_id = (char *)"p1-strings";
	j->phase.name = (char *)"String helpers";
	j->phase.description = (char *)"Create string_helper.py with capitalize_words.";
	j->phase.task_category = (char *)"implementation";
	j->phase.complexity = (char *)"low";
	j->phase.paths.items = scope_utils;
	j->phase.paths.n = 1;
	j->phase.deliverables.items = dl_one;
	j->phase.deliverables.n = 1;
	j->phase.max_builder_attempts = 3;
	j->attempt_number = 1;
	j->deadline_ms = clock_wall_ms() + 60000;
	j->max_tokens_cap = 64000;
	j->llm.provider = (char *)provider;
	j->llm.base_url = (char *)base;
	j->llm.model = (char *)"test-model";
	j->llm.timeout_ms = 10000;
	j->llm.max_retries = 2;
	j->workspace = ws;
	setenv("ANTHROPIC_API_KEY", KEY, 1);
	setenv("OPENAI_API_KEY", KEY, 1);
}

/* Run the job with a recorder. */
static int run(const struct proto_job *j, struct recorder *r, struct proto_result *res)
{
	struct phase_hooks h = { .ctx = r, .emit = rec_emit, .heartbeat = rec_beat };

	return phase_run(j, &h, res);
}

/* A supervisor_present hook that says the supervisor is gone. */
static bool supervisor_gone(void *ctx)
{
	(void)ctx;
	return false;
}

/* Check that the key is nowhere in what the phase produced. */
static void check_no_key(struct recorder *r, const struct proto_result *res)
{
	rec_text(r, res->message);
	rec_text(r, res->fingerprint);
	rec_text(r, res->failure_reason);
	CHECK(strstr(r->all, KEY) == NULL);
}

/* Usage of log entry i. */
static long long log_usage(json_t *log, size_t i, const char *k)
{
	json_t *v = json_object_get(json_object_get(json_array_get(log, i), "usage"), k);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

TEST(worker_phase_success_emits_usage_v2_and_passes_the_check)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	const struct rec *u, *v;
	json_t *log;
	struct stat st;

	standin_start(&sd, "[]", KEY);
	job_init(&j, "anthropic", sd.base);
	j.phase.check_command = (char *)"/usr/bin/python3 -c 'import utils.string_helper'";
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "success");
	CHECK(res.failure_reason == NULL && res.fingerprint == NULL);
	CHECK(res.zero_yield_reason == NULL);
	CHECK(!res.reached_llm_boundary);
	CHECK(res.duration_ms >= 0);
	CHECK(stat("ws/utils/string_helper.py", &st) == 0);
	CHECK(stat("ws/.autopack/logs/demo-1__p1-strings__a1.stdout.txt", &st) == 0);

	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 1);
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_LLM_USAGE), 1);
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_TOKEN_ESTIMATION), 1);
	u = rec_nth(&r, PROTO_EV_LLM_USAGE, 0);
	CHECK_EQ_INT(u->a, log_usage(log, 0, "prompt_tokens"));
	CHECK_EQ_INT(u->b, log_usage(log, 0, "completion_tokens"));
	CHECK_EQ_INT(u->c, 200);
	CHECK_EQ_INT(u->d, 1);
	v = rec_nth(&r, PROTO_EV_TOKEN_ESTIMATION, 0);
	CHECK_EQ_INT(v->a, 3424); /* int((634 + 2000) × 1.3) */
	CHECK_EQ_INT(v->b, log_usage(log, 0, "completion_tokens"));
	CHECK_EQ_INT(v->c, 8192);
	CHECK_EQ_INT(v->d, 16384);
	CHECK(v->success && !v->truncated);
	CHECK_EQ_INT(v->version, 1);
	CHECK_EQ_STR(v->category, "implementation");
	CHECK_EQ_STR(v->text, "[\"utils/string_helper.py\"]");
	/* The call was announced with its max_tokens before it was sent; its usage event came
	 * before the v2 event, and both before the last log. */
	CHECK(r.ev[0].kind == PROTO_EV_LLM_REQUEST);
	CHECK_EQ_INT(r.ev[0].a, 16384);
	CHECK_EQ_INT(r.ev[0].d, 1);
	CHECK(r.ev[1].kind == PROTO_EV_LLM_USAGE);
	CHECK(r.ev[r.n - 1].kind == PROTO_EV_LOG && strstr(r.ev[r.n - 1].text, "check"));
	check_no_key(&r, &res);
	json_decref(log);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_openai_provider_end_to_end)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	standin_start(&sd, "[{\"mode\":\"normal\",\"fence\":true}]", KEY);
	job_init(&j, "openai", sd.base_v1);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "success");
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_TOKEN_ESTIMATION), 1);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_truncation_retries_once_with_125_percent)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	const struct rec *v1, *v2;
	json_t *log;

	standin_start(&sd, "[{\"mode\":\"truncated\"}]", KEY);
	job_init(&j, "anthropic", sd.base);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "success");
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_TOKEN_ESTIMATION), 2);
	v1 = rec_nth(&r, PROTO_EV_TOKEN_ESTIMATION, 0);
	v2 = rec_nth(&r, PROTO_EV_TOKEN_ESTIMATION, 1);
	CHECK(v1->truncated && !v1->success);
	CHECK_EQ_INT(v1->d, 16384);
	CHECK_EQ_INT(v1->b, 16384);
	CHECK(!v2->truncated && v2->success);
	CHECK_EQ_INT(v2->d, 20480);
	CHECK(strstr(rec_nth(&r, PROTO_EV_LOG, 0)->text, "retrying once with 20480") != NULL);
	/* What the worker asked for, as the provider saw it. */
	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 2);
	CHECK_EQ_INT(
	    json_integer_value(json_object_get(json_array_get(log, 0), "max_tokens")), 16384);
	CHECK_EQ_INT(
	    json_integer_value(json_object_get(json_array_get(log, 1), "max_tokens")), 20480);
	json_decref(log);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_truncated_twice_fails_output_truncated)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	standin_start(&sd, "{\"default\":{\"mode\":\"truncated\"}}", KEY);
	job_init(&j, "anthropic", sd.base);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "failed");
	CHECK_EQ_STR(res.failure_reason, "OUTPUT_TRUNCATED");
	CHECK_EQ_STR(res.zero_yield_reason, "parse_failed");
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_TOKEN_ESTIMATION), 2);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_429_then_success_records_each_try)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	standin_start(&sd, "[{\"mode\":\"status\",\"status\":429,\"retry_after\":\"0\"}]", KEY);
	job_init(&j, "anthropic", sd.base);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "success");
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_LLM_USAGE), 2);
	CHECK_EQ_INT(rec_nth(&r, PROTO_EV_LLM_USAGE, 0)->c, 429);
	CHECK_EQ_STR(rec_nth(&r, PROTO_EV_LLM_USAGE, 0)->text, "rate_limited");
	CHECK_EQ_INT(rec_nth(&r, PROTO_EV_LLM_USAGE, 0)->b, -1);
	CHECK_EQ_INT(rec_nth(&r, PROTO_EV_LLM_USAGE, 1)->d, 2);
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_TOKEN_ESTIMATION), 1);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_provider_errors_exhausted_is_zero_yield)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	standin_start(&sd, "{\"default\":{\"mode\":\"status\",\"status\":503}}", KEY);
	job_init(&j, "anthropic", sd.base);
	j.llm.max_retries = 1;
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "failed");
	CHECK_EQ_STR(res.failure_reason, "PROVIDER_ERROR");
	CHECK_EQ_STR(res.zero_yield_reason, "provider_error");
	CHECK(strstr(res.message, "server_error after 2 tries") != NULL);
	CHECK(strncmp(res.fingerprint, "FAILED|provider_error|server_error after num tries", 50) ==
	    0);
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_LLM_USAGE), 2);
	CHECK_EQ_INT(rec_count(&r, PROTO_EV_TOKEN_ESTIMATION), 0);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_hostile_paths_are_refused_and_nothing_escapes)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	struct stat st;

	mkdir("a", 0755);
	mkdir("a/b", 0755);
	CHECK(chdir("a/b") == 0); /* ws is a/b/ws: ../../etc/x would land in a/etc/x */
	standin_start(&sd, "[{\"mode\":\"hostile\"}]", KEY);
	job_init(&j, "anthropic", sd.base);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "failed");
	CHECK_EQ_STR(res.failure_reason, "SCOPE_VIOLATION");
	CHECK(strstr(res.message, "../../etc/x") != NULL);
	CHECK(res.zero_yield_reason == NULL); /* the call itself gave a clean sample */
	CHECK(stat("../etc/x", &st) != 0 && stat("etc/x", &st) != 0);
	CHECK(stat("ws/utils/string_helper.py", &st) != 0); /* all or nothing */
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_symlink_escape_is_refused)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	struct stat st;

	standin_start(&sd, "[{\"mode\":\"hostile\",\"paths\":[\"utils/link/pwn.py\"]}]", KEY);
	job_init(&j, "anthropic", sd.base);
	mkdir("outside", 0755);
	mkdir("ws/utils", 0755);
	CHECK(symlink("../../outside", "ws/utils/link") == 0);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.failure_reason, "SCOPE_VIOLATION");
	CHECK(strstr(res.message, "leaves the workspace") != NULL);
	CHECK(stat("outside/pwn.py", &st) != 0);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_missing_deliverable_is_named)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	char *two[] = { "utils/a.py", "utils/b.py" };

	standin_start(&sd, "[{\"mode\":\"missing\"}]", KEY);
	job_init(&j, "anthropic", sd.base);
	j.phase.deliverables.items = two;
	j.phase.deliverables.n = 2;
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.failure_reason, "DELIVERABLES_MISSING");
	CHECK(strstr(res.message, "utils/b.py") != NULL);
	CHECK(strstr(res.message, "utils/a.py") == NULL);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_check_failure_is_reported_with_its_log)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	standin_start(&sd, "[]", KEY);
	job_init(&j, "anthropic", sd.base);
	j.phase.check_command = (char *)"echo 'ModuleNotFoundError: No module named x' >&2; exit 1";
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "failed");
	CHECK_EQ_STR(res.failure_reason, "CHECK_FAILED");
	CHECK(strstr(res.message, "exited 1") != NULL);
	CHECK(strstr(res.message, "ModuleNotFoundError") != NULL);
	CHECK(strstr(res.message, ".autopack/logs/demo-1__p1-strings__a1.stderr.txt") != NULL);
	CHECK(strncmp(res.fingerprint,
	          "FAILED|check_failed|check command exited num (stderr: path)", 59) == 0);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_deadline_bounds_the_llm_call)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	/* The stand-in answers after 60 s and the call's own timeout is 60 s: only the
	 * attempt's deadline can end it as a timeout. */
	standin_start(&sd, "{\"default\":{\"mode\":\"sleep\",\"seconds\":60}}", KEY);
	job_init(&j, "anthropic", sd.base);
	j.llm.timeout_ms = 60000;
	j.llm.max_retries = 0;
	j.deadline_ms = clock_wall_ms() + 1500;
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "timeout");
	CHECK_EQ_STR(res.failure_reason, "TIMEOUT");
	CHECK_EQ_STR(res.zero_yield_reason, "timeout");
	CHECK(strstr(res.message, "deadline") != NULL);
	CHECK(r.beats >= 1);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_no_api_key_fails_before_the_llm)
{
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	job_init(&j, "anthropic", "http://127.0.0.1:9");
	unsetenv("ANTHROPIC_API_KEY");
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "failed");
	CHECK_EQ_STR(res.failure_reason, "NO_API_KEY");
	CHECK(strstr(res.message, "ANTHROPIC_API_KEY") != NULL);
	CHECK_EQ_STR(res.zero_yield_reason, "failed_before_llm");
	CHECK_EQ_INT(r.n, 0);
	phase_result_clear(&res);
}

TEST(worker_phase_deliverables_an_import_refuses_fail_before_the_llm)
{
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	char *clash[] = { "utils/a", "utils/a/b.py" };

	/* Port 9 answers nothing: a call would fail as a provider error instead. */
	job_init(&j, "anthropic", "http://127.0.0.1:9");
	j.phase.deliverables.items = clash;
	j.phase.deliverables.n = 2;
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.failure_reason, "INVALID_JOB");
	CHECK(strstr(res.message,
	          "scope.deliverables[0] \"utils/a\" and scope.deliverables[1] "
	          "\"utils/a/b.py\"") != NULL);
	CHECK_EQ_STR(res.zero_yield_reason, "failed_before_llm");
	phase_result_clear(&res);
	rec_free(&r);
}

TEST(worker_phase_dry_run_estimates_and_touches_nothing)
{
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	struct stat st;

	job_init(&j, "anthropic", "http://127.0.0.1:9");
	j.dry_run = true;
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "dry_run");
	CHECK(res.zero_yield_reason == NULL && res.fingerprint == NULL);
	CHECK_EQ_INT(r.n, 1);
	CHECK_EQ_INT(r.ev[0].kind, PROTO_EV_LOG);
	CHECK(strstr(r.ev[0].text, "estimate 3424") != NULL);
	CHECK(strstr(r.ev[0].text, "selected budget 8192") != NULL);
	CHECK(strstr(r.ev[0].text, "max_tokens 16384") != NULL);
	CHECK(stat("ws/utils", &st) != 0);
	phase_result_clear(&res);
	rec_free(&r);
}

TEST(worker_phase_calibrated_coefficients_from_the_job_are_used)
{
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	struct proto_coef row = { (char *)"implementation", (char *)"low", 1000 };

	job_init(&j, "anthropic", "http://127.0.0.1:9");
	j.dry_run = true;
	j.coefs = &row;
	j.ncoefs = 1;
	j.coef_version = 4;
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK(strstr(r.ev[0].text, "estimate 3900") != NULL); /* (1000 + 2000) × 1.3 */
	CHECK(strstr(r.ev[0].text, "estimator v4") != NULL);
	phase_result_clear(&res);
	rec_free(&r);
}

/* Run a dry-run job with `n` rows at `version` and check its estimate line. */
static void dry_estimate(struct proto_coef *rows, size_t n, uint64_t version, const char *want)
{
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;

	job_init(&j, "anthropic", "http://127.0.0.1:9");
	j.dry_run = true;
	j.coefs = rows;
	j.ncoefs = n;
	j.coef_version = version;
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK(strstr(r.ev[0].text, want) != NULL);
	phase_result_clear(&res);
	rec_free(&r);
}

/* The coefficients built for one job are reused for the next only when its set is the
 * same: a changed row, version or an empty set is built anew. */
TEST(worker_phase_each_job_gets_its_own_coefficient_set)
{
	struct proto_coef row = { (char *)"implementation", (char *)"low", 1000 };
	struct proto_coef other = { (char *)"implementation", (char *)"low", 2000 };

	dry_estimate(NULL, 0, 0, "estimate 3424");
	dry_estimate(&row, 1, 4, "estimate 3900 ");
	dry_estimate(&row, 1, 4, "estimator v4");
	dry_estimate(&other, 1, 4, "estimate 5200 "); /* (2000 + 2000) × 1.3 */
	dry_estimate(&other, 1, 5, "estimator v5");
	dry_estimate(NULL, 0, 0, "estimate 3424");
}

TEST(worker_phase_key_never_leaves_the_process)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	json_t *log, *e;
	size_t i;

	standin_start(&sd, "{\"default\":{\"mode\":\"echo_key\"}}", KEY);
	job_init(&j, "anthropic", sd.base);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.failure_reason, "PROVIDER_ERROR");
	CHECK(strstr(res.message, "[redacted]") != NULL);
	check_no_key(&r, &res);
	/* The key went out in its own header of each request, and nowhere else. */
	log = standin_log();
	CHECK(json_array_size(log) >= 1);
	json_array_foreach(log, i, e)
	{
		CHECK(json_is_true(json_object_get(e, "key_ok")));
		CHECK(json_is_false(json_object_get(e, "key_elsewhere")));
	}
	json_decref(log);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_emit_failure_stops_the_attempt)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { .fail_after = 1 };
	struct proto_result res;
	struct stat st;

	standin_start(&sd, "[]", KEY);
	job_init(&j, "anthropic", sd.base);
	CHECK_EQ_INT(run(&j, &r, &res), -1);
	CHECK_EQ_STR(res.failure_reason, "SUPERVISOR_LINK_LOST");
	CHECK(stat("ws/utils/string_helper.py", &st) != 0);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_writes_nothing_once_the_supervisor_is_gone)
{
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	struct phase_hooks h = { .ctx = &r,
		.emit = rec_emit,
		.heartbeat = rec_beat,
		.supervisor_present = supervisor_gone };
	struct stat st;
	json_t *log;

	standin_start(&sd, "[]", KEY);
	job_init(&j, "anthropic", sd.base);
	CHECK_EQ_INT(phase_run(&j, &h, &res), -1);
	CHECK_EQ_STR(res.failure_reason, "SUPERVISOR_LINK_LOST");
	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 1);              /* the call was made, */
	CHECK(stat("ws/utils/string_helper.py", &st) != 0); /* its files not written */
	json_decref(log);
	phase_result_clear(&res);
	rec_free(&r);
	standin_stop(&sd);
}

TEST(worker_phase_a_workspace_ending_in_dotdot_is_judged_as_itself)
{
	/* A worker lets a workspace through when the directory holding it is known to hold
	 * neither its binary nor a system directory, but only for a workspace named there by
	 * its own name: "D/.." is D's parent, and here that holds this binary. */
	char exe[4096], top[4096 + 32], ws[4096 + 64], cmd[4096 + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	struct standin sd;
	struct proto_job j;
	struct recorder r = { 0 };
	struct proto_result res;
	char *slash;

	CHECK(n > 0);
	exe[n] = '\0';
	CHECK((slash = strrchr(exe, '/')) != NULL);
	*slash = '\0'; /* the binary's directory */
	CHECK((slash = strrchr(exe, '/')) != NULL);
	*slash = '\0'; /* the directory holding it */
	snprintf(top, sizeof top, "%s/phase-test-%d", exe, (int)getpid());
	snprintf(ws, sizeof ws, "%s/x", top);
	CHECK(mkdir(top, 0755) == 0 && mkdir(ws, 0755) == 0);
	standin_start(&sd, "[]", KEY);
	job_init(&j, "anthropic", sd.base);
	j.workspace = ws; /* its directory, `top`, is then known clean */
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.outcome, "success");
	phase_result_clear(&res);
	snprintf(ws, sizeof ws, "%s/..", top);
	CHECK_EQ_INT(run(&j, &r, &res), 0);
	CHECK_EQ_STR(res.failure_reason, "INVALID_JOB");
	CHECK(strstr(res.message, "holds ") != NULL);
	phase_result_clear(&res);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	CHECK(system(cmd) == 0);
	rec_free(&r);
	standin_stop(&sd);
}
