/* Calibration groups: actual ÷ predicted of the active set for each (category,
 * complexity), with the original's statistics conventions (docs/calibration.md). */
#include "common/calib/calib.h"
#include "common/strtab.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Name a group status. */
const char *calib_status_name(enum calib_status s)
{
	switch (s) {
	case CALIB_BELOW_MIN: return "below_min_samples";
	case CALIB_LOW_CONFIDENCE: return "low_confidence";
	case CALIB_HIGH_CONFIDENCE: return "high_confidence";
	}
	return "?";
}

/* 0.6 × min(1, n/12) + 0.4 / (1 + sd). */
double calib_confidence(size_t n, double sd)
{
	double count = (double)n / CALIB_SAMPLE_FULL;

	return 0.6 * (count < 1.0 ? count : 1.0) + 0.4 / (1.0 + sd);
}

/* Compute one group's figures from its samples. */
static void calib_group_fill(struct calib_group *g, const struct telem_sample *const *rows,
    size_t n, const struct calib_opts *o)
{
	double *ratio = xcalloc(n + 1, sizeof *ratio);
	double *waste = xcalloc(n + 1, sizeof *waste);
	double *act = xcalloc(n + 1, sizeof *act);
	double *est = xcalloc(n + 1, sizeof *est);
	double *budget = xcalloc(n + 1, sizeof *budget);

	for (size_t i = 0; i < n; i++) {
		const struct telem_sample *s = rows[i];
		int64_t ceiling = s->actual_max_tokens > 0 ? s->actual_max_tokens :
		                                             s->selected_budget;

		act[i] = (double)s->actual;
		est[i] = (double)s->predicted;
		budget[i] = (double)s->selected_budget;
		ratio[i] = s->predicted > 0 ? (double)s->actual / (double)s->predicted : 0.0;
		waste[i] = s->actual > 0 ? (double)ceiling / (double)s->actual : 0.0;
	}
	g->n = n;
	g->avg_actual = telem_mean(act, n);
	g->avg_estimated = telem_mean(est, n);
	g->avg_ratio = telem_mean(ratio, n);
	g->avg_selected_budget = telem_mean(budget, n);
	g->stdev_ratio = telem_pstdev(ratio, n);
	g->confidence = calib_confidence(n, g->stdev_ratio);
	telem_sort(ratio, n);
	telem_sort(waste, n);
	g->median_ratio = telem_upper_median(ratio, n);
	g->min_ratio = ratio[0];
	g->max_ratio = ratio[n - 1];
	g->waste_median = telem_upper_median(waste, n);
	g->waste_p90 = telem_p90_index(waste, n);
	if ((int64_t)n < o->min_samples)
		g->status = CALIB_BELOW_MIN;
	else if (g->confidence < o->confidence_threshold)
		g->status = CALIB_LOW_CONFIDENCE;
	else
		g->status = CALIB_HIGH_CONFIDENCE;
	free(ratio);
	free(waste);
	free(act);
	free(est);
	free(budget);
}

/* Order groups by sample count (most first), then category and complexity. */
static int calib_group_cmp(const void *a, const void *b)
{
	const struct calib_group *x = a, *y = b;
	int c;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	c = strcmp(x->category, y->category);
	return c != 0 ? c : strcmp(x->complexity, y->complexity);
}

/* Group the samples, (category, complexity) found through a table of the pairs, and fill
 * every group with its samples in their order. */
void calib_compute(const struct telem_sample *const *clean, size_t n, const struct calib_opts *o,
    struct calib_result *r)
{
	const struct telem_sample **rows = xcalloc(n + 1, sizeof *rows);
	size_t *group_of = xcalloc(n + 1, sizeof *group_of), *start;
	struct strtab pairs; /* group g's pair has index g */

	memset(r, 0, sizeof *r);
	r->opts = *o;
	r->n_clean = n;
	r->groups = xcalloc(n + 1, sizeof *r->groups);
	strtab_init(&pairs, n, true);
	for (size_t i = 0; i < n; i++) {
		const struct telem_sample *x = clean[i];
		bool added;

		r->n_with_max_tokens += x->actual_max_tokens > 0;
		group_of[i] = strtab_add_pair(&pairs, x->category, x->complexity, &added);
		if (added) {
			r->groups[r->n_groups].category = xstrdup(x->category);
			r->groups[r->n_groups].complexity = xstrdup(x->complexity);
			r->n_groups++;
		}
	}
	strtab_free(&pairs);
	start = xcalloc(r->n_groups + 1, sizeof *start); /* group g's rows: start[g] .. */
	for (size_t i = 0; i < n; i++)
		start[group_of[i] + 1]++;
	for (size_t g = 0; g < r->n_groups; g++)
		start[g + 1] += start[g];
	for (size_t i = 0; i < n; i++)
		rows[start[group_of[i]]++] = clean[i];
	for (size_t g = 0, at = 0; g < r->n_groups; g++) {
		calib_group_fill(&r->groups[g], rows + at, start[g] - at, o);
		at = start[g];
		r->n_eligible += r->groups[g].status != CALIB_BELOW_MIN;
		r->n_high_confidence += r->groups[g].status == CALIB_HIGH_CONFIDENCE;
	}
	if (r->n_groups > 1)
		qsort(r->groups, r->n_groups, sizeof *r->groups, calib_group_cmp);
	free(start);
	free(rows);
	free(group_of);
}

/* Free the groups. */
void calib_result_free(struct calib_result *r)
{
	for (size_t g = 0; g < r->n_groups; g++) {
		free(r->groups[g].category);
		free(r->groups[g].complexity);
	}
	free(r->groups);
	memset(r, 0, sizeof *r);
}
