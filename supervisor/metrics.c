/* The supervisor's metrics in the Prometheus text exposition format 0.0.4, for
 * `autopack-ctl metrics` and GET /metrics (docs/observe.md lists every family).
 *
 * Counters count what was committed: after each group commit the writer hands over every
 * write it committed (metrics_op), so a rolled-back and retried commit counts once. They live in this process and restart at 0 with it, as Prometheus expects. Label
 * values come from the vocabulary (common/vocab.h) or, for provider, model and task
 * category, from the events and the database, cleaned to UTF-8 and capped in number. */
#include "supervisor/observe.h"
#include "common/log.h"
#include "common/store/store_checkpoint.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "common/utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HIST_MAX 16       /* bucket bounds of a histogram */
#define SERIES_MAX 200    /* label sets of one family from outside the vocabulary */
#define LABEL_MAX 128     /* bytes of such a label value */
#define LAG_PERIOD_MS 250 /* the loop lag is sampled this often */
#define LAG_SAMPLES 40    /* and reported as the largest of this many (10 s) */

struct hist {
	uint64_t n[HIST_MAX + 1]; /* per bucket, not cumulative; the last is +Inf */
	uint64_t count;
	double sum;
};

static const double commit_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	0.5, 1, 2.5, 5 };
static const double attempt_bounds[] = { 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
	7200 };

/* LLM calls of one (provider, model, HTTP status), with their tokens. */
struct llm_series {
	char *provider;
	char *model;
	int64_t status;
	uint64_t calls, in, out;
};

/* Attempt durations of one task category. */
struct cat_series {
	char *category;
	struct hist h;
};

struct metrics {
	uint64_t attempts[OUTCOME_COUNT][REASON_COUNT];
	uint64_t events[EVENT_KIND_COUNT];
	uint64_t duplicates;
	uint64_t handed_back; /* attempt ends that handed their phase back (metrics_handed_back) */
	struct llm_series *llm;
	size_t nllm;
	/* The (provider, model, status) of the last event counted, as it came (not cleaned),
	 * and its series' index: the events of a drain mostly repeat it. */
	char *last_provider, *last_model;
	int64_t last_status;
	size_t last_llm; /* meaningful once below nllm */
	struct cat_series *cats;
	size_t ncats;
	struct hist commit;
	int64_t last_commit_wall_ms;
	int64_t started_wall_ms;
	uv_timer_t lag_timer;
	uint64_t lag_due_ms;
	double lag_s[LAG_SAMPLES];
	size_t nlag;
};

/* Add one observation to a histogram with bounds b[0..nb). */
static void hist_observe(struct hist *h, const double *b, size_t nb, double v)
{
	size_t i = 0;

	while (i < nb && v > b[i])
		i++;
	h->n[i]++;
	h->count++;
	h->sum += v;
}

/* Sample how late the loop runs a timer, then sample again. */
static void lag_cb(uv_timer_t *t)
{
	struct metrics *m = t->data;
	double late = ((double)uv_hrtime() / 1e6 - (double)m->lag_due_ms) / 1000.0;

	m->lag_s[m->nlag++ % LAG_SAMPLES] = late > 0 ? late : 0;
	m->lag_due_ms = uv_now(t->loop) + LAG_PERIOD_MS;
	uv_timer_start(t, lag_cb, LAG_PERIOD_MS, 0);
}

/* Create the metrics and start the loop-lag sampler. */
void metrics_init(struct sup *s)
{
	struct metrics *m = xcalloc(1, sizeof *m);

	s->metrics = m;
	m->started_wall_ms = clock_wall_ms();
	m->last_commit_wall_ms = m->started_wall_ms;
	uv_timer_init(s->loop, &m->lag_timer);
	m->lag_timer.data = m;
	m->lag_due_ms = uv_now(s->loop) + LAG_PERIOD_MS;
	uv_timer_start(&m->lag_timer, lag_cb, LAG_PERIOD_MS, 0);
	uv_unref((uv_handle_t *)&m->lag_timer);
}

/* Free the metrics (the loop's handles are closed by then). */
void metrics_free(struct sup *s)
{
	struct metrics *m = s->metrics;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nllm; i++) {
		free(m->llm[i].provider);
		free(m->llm[i].model);
	}
	free(m->llm);
	free(m->last_provider);
	free(m->last_model);
	for (size_t i = 0; i < m->ncats; i++)
		free(m->cats[i].category);
	free(m->cats);
	free(m);
	s->metrics = NULL;
}

/* The series of (p, mo, status) among those made, or NULL. */
static struct llm_series *llm_series_at(
    struct metrics *m, const char *p, const char *mo, int64_t status)
{
	for (size_t i = 0; i < m->nllm; i++)
		if (m->llm[i].status == status && strcmp(m->llm[i].provider, p) == 0 &&
		    strcmp(m->llm[i].model, mo) == 0)
			return &m->llm[i];
	return NULL;
}

/* The series of (provider, model, status) by its cleaned labels, created when new; past
 * SERIES_MAX series a new one is counted in the series labelled "other" (those made keep
 * counting). */
static struct llm_series *llm_series_find(
    struct metrics *m, const char *provider, const char *model, int64_t status)
{
	char *p = utf8_clean(provider != NULL ? provider : "", LABEL_MAX);
	char *mo = utf8_clean(model != NULL ? model : "", LABEL_MAX);
	struct llm_series *x = llm_series_at(m, p, mo, status);

	if (x == NULL && m->nllm >= SERIES_MAX) {
		free(p);
		free(mo);
		p = xstrdup("other");
		mo = xstrdup("other");
		status = -1;
		x = llm_series_at(m, p, mo, status);
	}
	if (x != NULL) {
		free(p);
		free(mo);
		return x;
	}
	m->llm = xrealloc(m->llm, (m->nllm + 1) * sizeof *m->llm);
	x = &m->llm[m->nllm++];
	*x = (struct llm_series){ .provider = p, .model = mo, .status = status };
	return x;
}

/* llm_series_find, but the same (provider, model, status) as the last call's takes the
 * same series without cleaning the labels again. */
static struct llm_series *llm_series(
    struct metrics *m, const char *provider, const char *model, int64_t status)
{
	struct llm_series *x;

	if (m->last_llm < m->nllm && m->last_status == status &&
	    str_eq(m->last_provider, provider) && str_eq(m->last_model, model))
		return &m->llm[m->last_llm];
	x = llm_series_find(m, provider, model, status);
	free(m->last_provider);
	free(m->last_model);
	m->last_provider = provider != NULL ? xstrdup(provider) : NULL;
	m->last_model = model != NULL ? xstrdup(model) : NULL;
	m->last_status = status;
	m->last_llm = (size_t)(x - m->llm);
	return x;
}

/* The duration histogram of category c among those made, or NULL. */
static struct hist *cat_at(struct metrics *m, const char *c)
{
	for (size_t i = 0; i < m->ncats; i++)
		if (strcmp(m->cats[i].category, c) == 0)
			return &m->cats[i].h;
	return NULL;
}

/* The duration histogram of a task category (NULL: "none"), created when new; past
 * SERIES_MAX categories a new one is counted in "other" (those made keep counting). */
static struct hist *cat_hist(struct metrics *m, const char *category)
{
	char *c = utf8_clean(category != NULL ? category : "none", LABEL_MAX);
	struct hist *h = cat_at(m, c);

	if (h == NULL && m->ncats >= SERIES_MAX) {
		free(c);
		c = xstrdup("other");
		h = cat_at(m, c);
	}
	if (h != NULL) {
		free(c);
		return h;
	}
	m->cats = xrealloc(m->cats, (m->ncats + 1) * sizeof *m->cats);
	m->cats[m->ncats] = (struct cat_series){ .category = c };
	return &m->cats[m->ncats++].h;
}

/* Count a committed event: by kind, and an LLM call with its tokens by provider, model
 * and status. */
static void metrics_event(struct metrics *m, const struct op *o)
{
	const struct drain_event *row = &o->u.event.row;
	struct llm_series *x;

#ifndef AUTOPACK_MUTANT_metrics_count_uncommitted
	if (o->dup) {
		m->duplicates++;
		return;
	}
#endif
	m->events[row->kind]++;
	if (row->kind != EVENT_LLM_USAGE)
		return;
	x = llm_series(m, row->u.usage.provider, row->u.usage.model, row->u.usage.http_status);
	x->calls++;
	if (row->u.usage.prompt_tokens > 0)
		x->in += (uint64_t)row->u.usage.prompt_tokens;
	if (row->u.usage.completion_tokens > 0)
		x->out += (uint64_t)row->u.usage.completion_tokens;
}

/* Whether an attempt end hands its phase back: an end the operator or the supervisor
 * made (outcome_hands_back) after which the phase went back to the queue. */
static bool metrics_handed_back(const struct drain_close *end)
{
	return outcome_hands_back(end->outcome) && end->phase_state == PHASE_QUEUED;
}

/* Count a committed attempt end: by outcome and reason, its duration by the phase's task
 * category, the ends handed back, and the drain's progress. */
static void metrics_close(struct sup *s, struct metrics *m, const struct op *o)
{
	const struct drain_close *end = &o->u.close.end;

	if (o->dup)
		return;
	m->attempts[end->outcome][end->reason]++;
	hist_observe(cat_hist(m, o->u.close.category), attempt_bounds, ARRAY_SIZE(attempt_bounds),
	    (double)end->duration_ms / 1000.0);
	if (metrics_handed_back(end))
		m->handed_back++;
	progress_finished(s, end->phase_state != PHASE_QUEUED, outcome_ok(end->outcome),
	    metrics_handed_back(end));
}

/* Count one committed write. */
void metrics_op(struct sup *s, const struct op *o)
{
	struct metrics *m = s->metrics;

	if (m == NULL)
		return;
	if (o->kind == OP_EVENT && o->refused == NULL)
		metrics_event(m, o);
	else if (o->kind == OP_CLOSE)
		metrics_close(s, m, o);
}

/* Count a group commit that just succeeded, with its duration. */
void metrics_commit(struct sup *s, uint64_t began_ns)
{
	struct metrics *m = s->metrics;

	if (m == NULL)
		return;
	hist_observe(&m->commit, commit_bounds, ARRAY_SIZE(commit_bounds),
	    (double)(uv_hrtime() - began_ns) / 1e9);
	m->last_commit_wall_ms = clock_wall_ms();
}

/* Sum the tokens and LLM calls counted so far. */
void metrics_tokens(struct sup *s, uint64_t *input, uint64_t *output, uint64_t *calls)
{
	struct metrics *m = s->metrics;

	*input = *output = *calls = 0;
	for (size_t i = 0; m != NULL && i < m->nllm; i++) {
		*input += m->llm[i].in;
		*output += m->llm[i].out;
		*calls += m->llm[i].calls;
	}
}

/* Say when the last commit was (the start before the first). */
int64_t metrics_last_commit_wall_ms(struct sup *s)
{
	return s->metrics != NULL ? s->metrics->last_commit_wall_ms : 0;
}

/* The largest loop lag of the last LAG_SAMPLES samples, in seconds. */
double metrics_loop_lag(struct sup *s)
{
	struct metrics *m = s->metrics;
	double max = 0;
	size_t n;

	if (m == NULL)
		return 0;
	n = m->nlag < LAG_SAMPLES ? m->nlag : LAG_SAMPLES;
	for (size_t i = 0; i < n; i++)
		if (m->lag_s[i] > max)
			max = m->lag_s[i];
	return max;
}

/* Append a label value, escaped as the exposition format wants. */
static void put_label(struct strbuf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			strbuf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			strbuf_puts(b, "\\n");
		else
			strbuf_put(b, v, 1);
	}
}

/* Append a family's HELP and TYPE lines. */
static void family(struct strbuf *b, const char *name, const char *type, const char *help)
{
	strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Append a sample value: integers exactly, others with full precision. */
static void put_value(struct strbuf *b, double v)
{
	if (v == floor(v) && fabs(v) < 9e15)
		strbuf_printf(b, " %.0f\n", v);
	else
		strbuf_printf(b, " %.17g\n", v);
}

/* Append one sample with up to three labels (NULL names end the list). */
static void sample(struct strbuf *b, const char *name, const char *k1, const char *v1,
    const char *k2, const char *v2, const char *k3, const char *v3, double v)
{
	const char *k[3] = { k1, k2, k3 }, *vals[3] = { v1, v2, v3 };

	strbuf_puts(b, name);
	for (int i = 0; i < 3 && k[i] != NULL; i++) {
		strbuf_printf(b, "%c%s=\"", i == 0 ? '{' : ',', k[i]);
		put_label(b, vals[i]);
		strbuf_puts(b, "\"");
	}
	if (k1 != NULL)
		strbuf_puts(b, "}");
	put_value(b, v);
}

/* Append a histogram's buckets, sum and count, with one label (or none). */
static void hist_samples(struct strbuf *b, const char *name, const char *k, const char *v,
    const struct hist *h, const double *bounds, size_t nb)
{
	char bucket[128], le[32];
	uint64_t cum = 0;

	snprintf(bucket, sizeof bucket, "%s_bucket", name);
	for (size_t i = 0; i <= nb; i++) {
		cum += h->n[i];
		if (i < nb)
			snprintf(le, sizeof le, "%g", bounds[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		sample(b, bucket, k != NULL ? k : "le", k != NULL ? v : le, k != NULL ? "le" : NULL,
		    le, NULL, NULL, (double)cum);
	}
	snprintf(bucket, sizeof bucket, "%s_sum", name);
	sample(b, bucket, k, v, NULL, NULL, NULL, NULL, h->sum);
	snprintf(bucket, sizeof bucket, "%s_count", name);
	sample(b, bucket, k, v, NULL, NULL, NULL, NULL, (double)h->count);
}

/* Append the families of the database, the queue and the drain's progress. */
static void metrics_drain(struct sup *s, struct strbuf *b)
{
	static const char *const states[] = { "running", "paused", "breaker", "stopping",
		"stopping_now", "store_lost", "store_failed" };
	int64_t counts[PHASE_STATE_COUNT];
	struct store_err err;
	struct progress p;
	const char *now = status_state_name(s);

	family(b, "autopack_supervisor_state", "gauge",
	    "1 for the supervisor's current state, 0 for the others.");
	for (size_t i = 0; i < ARRAY_SIZE(states); i++)
		sample(b, "autopack_supervisor_state", "state", states[i], NULL, NULL, NULL, NULL,
		    strcmp(states[i], now) == 0);
	family(b, "autopack_phases", "gauge", "Phases in the database by state.");
	if (status_phase_counts(s, counts, &err) == 0) {
		for (int i = PHASE_STATE_NONE + 1; i < PHASE_STATE_COUNT; i++)
			sample(b, "autopack_phases", "state", phase_state_name(i), NULL, NULL, NULL,
			    NULL, (double)counts[i]);
		if (counts[PHASE_STATE_NONE] > 0)
			sample(b, "autopack_phases", "state", "unknown", NULL, NULL, NULL, NULL,
			    (double)counts[PHASE_STATE_NONE]);
	}
	family(b, "autopack_queue_eligible_phases", "gauge",
	    "Phases waiting in the run queues for a worker.");
	sample(b, "autopack_queue_eligible_phases", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->queued);
	family(b, "autopack_queue_in_flight_attempts", "gauge", "Attempts running now.");
	sample(b, "autopack_queue_in_flight_attempts", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->in_flight);
	progress_compute(s, &p);
	family(b, "autopack_drain_done_phases", "gauge",
	    "Phases this drain finished (they left the queue for good).");
	sample(b, "autopack_drain_done_phases", NULL, NULL, NULL, NULL, NULL, NULL, (double)p.done);
	family(b, "autopack_drain_failed_attempts", "gauge",
	    "Attempts of this drain that did not do what was asked.");
	sample(b, "autopack_drain_failed_attempts", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)p.failed);
	family(b, "autopack_drain_handed_back_attempts", "gauge",
	    "Attempts of this drain handed back: their phase went back to the queue after a "
	    "pause, a stop, a scale-down or a lost worker.");
	sample(b, "autopack_drain_handed_back_attempts", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)p.handed_back);
	family(b, "autopack_drain_remaining_phases", "gauge",
	    "Phases this drain will still run: eligible or in flight.");
	sample(b, "autopack_drain_remaining_phases", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)p.remaining);
	family(b, "autopack_drain_eta_seconds", "gauge",
	    "Estimated seconds until nothing is left (absent while unknown).");
	if (p.eta_seconds >= 0)
		sample(b, "autopack_drain_eta_seconds", NULL, NULL, NULL, NULL, NULL, NULL,
		    round(p.eta_seconds));
}

/* Append the families of the write-ahead log and its checkpoints (SQLite only). */
static void metrics_checkpoints(struct sup *s, struct strbuf *b)
{
	const struct store_ckpt *c = s->st->ckpt;
	int64_t wal = store_ckpt_wal_bytes(s->st);

	if (c == NULL)
		return;
	family(b, "autopack_db_wal_bytes", "gauge",
	    "Size of the SQLite database's write-ahead log file.");
	if (wal >= 0)
		sample(b, "autopack_db_wal_bytes", NULL, NULL, NULL, NULL, NULL, NULL, (double)wal);
	family(b, "autopack_db_checkpoints_total", "counter",
	    "Checkpoints of the write-ahead log into the database file that succeeded.");
	sample(b, "autopack_db_checkpoints_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)c->checkpoints);
	family(b, "autopack_db_checkpoint_failures_total", "counter",
	    "Checkpoints of the write-ahead log into the database file that failed.");
	sample(b, "autopack_db_checkpoint_failures_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)c->failures);
}

/* Append the families of attempts, events and commits. */
static void metrics_work(struct sup *s, struct metrics *m, struct strbuf *b)
{
	family(b, "autopack_attempts_dispatched_total", "counter", "Attempts started.");
	sample(b, "autopack_attempts_dispatched_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->n.dispatched);
	family(b, "autopack_attempts_total", "counter",
	    "Attempts ended and committed, by outcome and failure reason.");
	for (int o = OUTCOME_NONE + 1; o < OUTCOME_COUNT; o++)
		for (int r = REASON_NONE; r < REASON_COUNT; r++)
			if (m->attempts[o][r] > 0 || (r == REASON_NONE && outcome_ok(o)))
				sample(b, "autopack_attempts_total", "outcome", outcome_name(o),
				    "reason", r == REASON_NONE ? "none" : reason_name(r), NULL,
				    NULL, (double)m->attempts[o][r]);
	family(b, "autopack_attempts_handed_back_total", "counter",
	    "Attempts ended by a pause, a stop, a scale-down or a lost worker whose phase went "
	    "back to the queue (counted in autopack_attempts_total too; no failure).");
	sample(b, "autopack_attempts_handed_back_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)m->handed_back);
	family(b, "autopack_attempt_duration_seconds", "histogram",
	    "Duration of the attempts ended, by the phase's task category.");
	for (size_t i = 0; i < m->ncats; i++)
		hist_samples(b, "autopack_attempt_duration_seconds", "category",
		    m->cats[i].category, &m->cats[i].h, attempt_bounds, ARRAY_SIZE(attempt_bounds));
	family(b, "autopack_events_committed_total", "counter",
	    "Telemetry events committed, by kind.");
	for (int k = EVENT_KIND_NONE + 1; k < EVENT_KIND_COUNT; k++)
		sample(b, "autopack_events_committed_total", "kind", event_kind_name(k), NULL, NULL,
		    NULL, NULL, (double)m->events[k]);
	family(b, "autopack_events_duplicate_total", "counter",
	    "Events received again after they were committed (not written twice).");
	sample(b, "autopack_events_duplicate_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)m->duplicates);
	family(b, "autopack_events_missing_total", "counter",
	    "Events a result's final seq says were sent but that never came.");
	sample(b, "autopack_events_missing_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->n.events_missing);
	family(b, "autopack_events_rejected_total", "counter",
	    "Events and results refused: for another database, or for an attempt not leased.");
	sample(b, "autopack_events_rejected_total", "reason", "wrong_database", NULL, NULL, NULL,
	    NULL, (double)s->n.rejected_uuid);
	sample(b, "autopack_events_rejected_total", "reason", "stale_attempt", NULL, NULL, NULL,
	    NULL, (double)s->n.rejected_stale);
	family(b, "autopack_commits_total", "counter", "Group commits that succeeded.");
	sample(
	    b, "autopack_commits_total", NULL, NULL, NULL, NULL, NULL, NULL, (double)s->n.commits);
	family(b, "autopack_commit_failures_total", "counter",
	    "Group commits that failed and were rolled back.");
	sample(b, "autopack_commit_failures_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->n.commit_failures);
	metrics_checkpoints(s, b);
	family(b, "autopack_commit_duration_seconds", "histogram",
	    "Time from BEGIN to COMMIT of the group commits that succeeded.");
	hist_samples(b, "autopack_commit_duration_seconds", NULL, NULL, &m->commit, commit_bounds,
	    ARRAY_SIZE(commit_bounds));
	family(b, "autopack_last_commit_timestamp_seconds", "gauge",
	    "Unix time of the last group commit (before the first: the start time).");
	sample(b, "autopack_last_commit_timestamp_seconds", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)(m->last_commit_wall_ms / 1000));
	family(b, "autopack_writer_queue_writes", "gauge", "Writes queued for the next commit.");
	sample(b, "autopack_writer_queue_writes", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->ops_n);
	if (s->st->backend != DB_PG)
		return;
	family(b, "autopack_db_reconnecting", "gauge",
	    "1 while an attempt to connect to the database server again is under way.");
	sample(b, "autopack_db_reconnecting", NULL, NULL, NULL, NULL, NULL, NULL,
	    s->reconnecting ? 1.0 : 0.0);
}

/* Append the families of LLM calls and their tokens. */
static void metrics_llm(struct metrics *m, struct strbuf *b)
{
	family(b, "autopack_llm_calls_total", "counter",
	    "LLM HTTP calls (each try), by provider, model and HTTP status (none: no response).");
	for (size_t i = 0; i < m->nllm; i++) {
		char status[24];

		if (m->llm[i].status > 0)
			snprintf(status, sizeof status, "%lld", (long long)m->llm[i].status);
		else
			snprintf(status, sizeof status, m->llm[i].status < 0 ? "other" : "none");
		if (m->llm[i].calls > 0)
			sample(b, "autopack_llm_calls_total", "provider", m->llm[i].provider,
			    "model", m->llm[i].model, "status", status, (double)m->llm[i].calls);
	}
	for (int t = 0; t < 2; t++) {
		const char *name = t == 0 ? "autopack_llm_input_tokens_total" :
		                            "autopack_llm_output_tokens_total";

		family(b, name, "counter",
		    t == 0 ? "Prompt tokens the providers reported, by provider and model." :
		             "Completion tokens the providers reported, by provider and model.");
		for (size_t i = 0; i < m->nllm; i++) {
			uint64_t sum = 0;
			bool first = true;

			for (size_t j = 0; j < i && first; j++)
				if (strcmp(m->llm[j].provider, m->llm[i].provider) == 0 &&
				    strcmp(m->llm[j].model, m->llm[i].model) == 0)
					first = false;
			if (!first)
				continue;
			for (size_t j = i; j < m->nllm; j++)
				if (strcmp(m->llm[j].provider, m->llm[i].provider) == 0 &&
				    strcmp(m->llm[j].model, m->llm[i].model) == 0)
					sum += t == 0 ? m->llm[j].in : m->llm[j].out;
			sample(b, name, "provider", m->llm[i].provider, "model", m->llm[i].model,
			    NULL, NULL, (double)sum);
		}
	}
}

/* Append the families of the worker pool and the loop. */
static void metrics_pool(struct sup *s, struct strbuf *b)
{
	static const char *const states[] = { "starting", "idle", "busy", "retiring" };
	int n[ARRAY_SIZE(states)] = { 0 };

	for (struct worker *w = s->workers; w != NULL; w = w->next)
		for (size_t i = 0; i < ARRAY_SIZE(states); i++)
			if (strcmp(worker_state_name(w), states[i]) == 0)
				n[i]++;
	family(b, "autopack_workers", "gauge", "Worker processes by state.");
	for (size_t i = 0; i < ARRAY_SIZE(states); i++)
		sample(b, "autopack_workers", "state", states[i], NULL, NULL, NULL, NULL, n[i]);
	family(b, "autopack_workers_wanted", "gauge", "Worker processes the pool aims for.");
	sample(b, "autopack_workers_wanted", NULL, NULL, NULL, NULL, NULL, NULL, s->target);
	family(b, "autopack_worker_crashes_total", "counter",
	    "Worker processes that exited or were killed on their own.");
	sample(b, "autopack_worker_crashes_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->n.worker_crashes);
	family(b, "autopack_worker_timeouts_total", "counter",
	    "Attempts killed at their phase deadline.");
	sample(b, "autopack_worker_timeouts_total", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)s->n.worker_timeouts);
	family(b, "autopack_crash_loop", "gauge",
	    "1 while the breaker is tripped (workers kept crashing, or the provider refused the"
	    " API key): no dispatch, no respawn.");
	sample(b, "autopack_crash_loop", NULL, NULL, NULL, NULL, NULL, NULL, s->crash_loop);
	family(b, "autopack_loop_lag_seconds", "gauge",
	    "The longest the event loop ran a timer late over the last 10 seconds.");
	sample(b, "autopack_loop_lag_seconds", NULL, NULL, NULL, NULL, NULL, NULL,
	    metrics_loop_lag(s));
}

/* Write the whole exposition into a heap string. */
char *metrics_text(struct sup *s)
{
	struct metrics *m = s->metrics;
	struct strbuf b = { 0 };

	family(&b, "autopack_build_info", "gauge", "The running autopack-supervisor's version.");
	sample(&b, "autopack_build_info", "version", AUTOPACK_VERSION, NULL, NULL, NULL, NULL, 1);
	family(&b, "autopack_start_time_seconds", "gauge", "Unix time the supervisor started.");
	sample(&b, "autopack_start_time_seconds", NULL, NULL, NULL, NULL, NULL, NULL,
	    (double)(m->started_wall_ms / 1000));
	metrics_drain(s, &b);
	metrics_work(s, m, &b);
	metrics_llm(m, &b);
	metrics_pool(s, &b);
	return b.s;
}
