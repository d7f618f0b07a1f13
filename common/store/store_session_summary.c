/* The summary of a drain session, computed from its result rows and its state. */
#include "common/store/store_internal.h"
#include "common/store/store_session.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Order counts most first, then by key. */
static int summary_count_cmp(const void *a, const void *b)
{
	const struct store_count *x = a, *y = b;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Sort a count list most first, then by key. */
static void summary_counts_sort(struct store_counts *c)
{
	if (c->n > 0)
		qsort(c->items, c->n, sizeof *c->items, summary_count_cmp);
}

/* Order doubles ascending. */
static int summary_double_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Order runs by id. */
static int summary_run_cmp(const void *a, const void *b)
{
	const struct store_session_run *x = a, *y = b;

	return strcmp(x->run_id, y->run_id);
}

/* Return true if the JSON array `arr` holds the string `s`. */
static bool summary_json_has(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
	{
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	}
	return false;
}

/* Return the entry of run `id`, appending it if absent. */
static struct store_session_run *summary_run(struct store_session_summary *sum, const char *id)
{
	struct store_session_run *r;

	for (size_t i = 0; i < sum->n_runs; i++)
		if (strcmp(sum->runs[i].run_id, id) == 0)
			return &sum->runs[i];
	sum->runs = xrealloc(sum->runs, (sum->n_runs + 1) * sizeof *sum->runs);
	r = &sum->runs[sum->n_runs++];
	memset(r, 0, sizeof *r);
	r->run_id = xstrdup(id);
	return r;
}

/* Append a recommendation. */
static void summary_rec(struct store_session_summary *sum, const char *id, char *text)
{
	sum->recs = xrealloc(sum->recs, (sum->n_recs + 1) * sizeof *sum->recs);
	sum->recs[sum->n_recs].id = id;
	sum->recs[sum->n_recs].text = text;
	sum->n_recs++;
}

/* Median, nearest-rank 90th percentile and maximum of the per-result yields. */
static void summary_yields(
    const struct store_session_result *r, size_t n, struct store_session_summary *sum)
{
	double *y;

	sum->yield_median = sum->yield_p90 = sum->yield_max = -1;
	if (n == 0)
		return;
	y = xcalloc(n, sizeof *y);
	for (size_t i = 0; i < n; i++)
		y[i] = r[i].yield_per_min > 0 ? r[i].yield_per_min : 0;
	qsort(y, n, sizeof *y, summary_double_cmp);
	/* Halfway from the lower of the middle two: their sum may pass DBL_MAX. */
	sum->yield_median = n % 2 ? y[n / 2] : y[n / 2 - 1] + (y[n / 2] - y[n / 2 - 1]) / 2;
	sum->yield_p90 = y[(9 * n + 9) / 10 - 1];
	sum->yield_max = y[n - 1];
	free(y);
}

/* The recommendations of the session summary (docs/drain-rules.md). */
static void summary_recommend(struct store_session_summary *sum)
{
	if (sum->processed == 0)
		return;
	if (sum->timeout_pct > 30)
		summary_rec(sum, "timeouts_high",
		    xasprintf("timeouts are frequent (%.1f%% of "
		              "phases): try --phase-timeout-seconds 1200",
		        sum->timeout_pct));
	else if (sum->timeout_pct < 10)
		summary_rec(sum, "timeouts_low",
		    xasprintf("few timeouts (%.1f%% of phases): "
		              "--phase-timeout-seconds 600 would stop stuck phases sooner",
		        sum->timeout_pct));
	if (sum->events_per_phase < 1)
		summary_rec(sum, "yield_low",
		    xasprintf("low yield: %.2f telemetry events per "
		              "phase; check the LLM settings and the top fingerprints",
		        sum->events_per_phase));
	else if (sum->events_per_phase > 5)
		summary_rec(sum, "yield_good",
		    xasprintf("good yield: %.2f telemetry events per "
		              "phase",
		        sum->events_per_phase));
	if (sum->n_runs > 0 && sum->runs_stopped * 2 > (int64_t)sum->n_runs)
		summary_rec(sum, "runs_stopped",
		    xasprintf("%lld of %zu runs were stopped by "
		              "repeating fingerprints: try --max-fingerprint-repeats 5",
		        (long long)sum->runs_stopped, sum->n_runs));
}

/* Compute every figure of the summary. */
void store_session_summarize(const struct store_session *s, const struct store_session_result *r,
    size_t n, struct store_session_summary *sum)
{
	struct store_counts fps = { 0 };
	json_t *stopped;
	char why[200];

	assert(n == 0 || r != NULL);
	memset(sum, 0, sizeof *sum);
	sum->state = store_session_state_parse(s->state_json, why, sizeof why);
	if (sum->state == NULL) {
		sum->state_error = xstrdup(why);
		sum->state = json_object();
	}
	stopped = json_object_get(sum->state, "stopped_runs");
	for (size_t i = 0; i < n; i++) {
		struct store_session_run *run = summary_run(sum, r[i].run_id);

		sum->processed++;
		sum->succeeded += r[i].success;
		sum->timeouts += r[i].timeout;
		sum->events += r[i].events;
		sum->with_events += r[i].events > 0;
		sum->boundary_hits += r[i].boundary;
		if (!r[i].timeout && r[i].duration_s > 0)
			sum->minutes_non_timeout += r[i].duration_s / 60.0;
		if (r[i].zero_yield_reason != NULL)
			store_counts_bump(&sum->zero_yield, r[i].zero_yield_reason, 1);
		if (r[i].fingerprint != NULL)
			store_counts_bump(&fps, r[i].fingerprint, 1);
		run->total++;
		run->succeeded += r[i].success;
		run->timeouts += r[i].timeout;
		run->events += r[i].events;
	}
	sum->failed = sum->processed - sum->succeeded;
	if (sum->processed > 0) {
		sum->success_pct = 100.0 * (double)sum->succeeded / (double)sum->processed;
		sum->timeout_pct = 100.0 * (double)sum->timeouts / (double)sum->processed;
		sum->events_per_phase = (double)sum->events / (double)sum->processed;
	}
	sum->overall_yield = sum->minutes_non_timeout > 0 ?
	    (double)sum->events / sum->minutes_non_timeout :
	    -1;
	summary_yields(r, n, sum);
	summary_counts_sort(&sum->zero_yield);
	summary_counts_sort(&fps);
	sum->unique_fingerprints = (int64_t)fps.n;
	for (size_t i = 0; i < fps.n && i < STORE_SESSION_TOP_FINGERPRINTS; i++)
		store_counts_bump(&sum->top_fingerprints, fps.items[i].key, fps.items[i].n);
	store_counts_free(&fps);
	if (sum->n_runs > 0)
		qsort(sum->runs, sum->n_runs, sizeof *sum->runs, summary_run_cmp);
	for (size_t i = 0; i < sum->n_runs; i++) {
		sum->runs[i].stopped = summary_json_has(stopped, sum->runs[i].run_id);
		sum->runs_stopped += sum->runs[i].stopped;
	}
	summary_recommend(sum);
}

/* Free what store_session_summarize allocated. */
void store_session_summary_free(struct store_session_summary *sum)
{
	store_counts_free(&sum->zero_yield);
	store_counts_free(&sum->top_fingerprints);
	for (size_t i = 0; i < sum->n_runs; i++)
		free(sum->runs[i].run_id);
	free(sum->runs);
	for (size_t i = 0; i < sum->n_recs; i++)
		free(sum->recs[i].text);
	free(sum->recs);
	json_decref(sum->state);
	free(sum->state_error);
	memset(sum, 0, sizeof *sum);
}
