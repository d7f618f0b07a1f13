/* The proposal: high-confidence groups become new overhead rows, and what a sample
 * would have been predicted under them. */
#include "common/calib/calib.h"
#include "common/util.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* Categories whose estimate comes from a documentation model, not an overhead row. */
static bool calib_doc_model(const char *category)
{
	return strcmp(category, "doc_synthesis") == 0 || strcmp(category, "doc_sot_update") == 0;
}

/* Copy a name lowercased and trimmed, as the estimator matches rows. */
static void calib_name_copy(const char *s, char *out, size_t n)
{
	size_t len, k;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	for (k = 0; k < len && k + 1 < n; k++)
		out[k] = (char)tolower((unsigned char)s[k]);
	out[k] = '\0';
}

/* Name the overhead row a group's samples used: the category through the estimator's
 * overhead aliases ("tests" → "testing"), both names lowercased. */
static void calib_row_name(const struct est_coefs *c, struct calib_group *g)
{
	calib_name_copy(g->category, g->row_category, sizeof g->row_category);
	calib_name_copy(g->complexity, g->row_complexity, sizeof g->row_complexity);
	for (size_t i = 0; i < c->n_overhead_alias; i++) {
		if (strcmp(c->overhead_alias[i].from, g->row_category) == 0) {
			strlcpy_ap(
			    g->row_category, c->overhead_alias[i].to, sizeof g->row_category);
			break;
		}
	}
}

/* Whether group a should give way to group b on a shared row: fewer samples, or as
 * many and less confidence. */
static bool calib_yields(const struct calib_group *a, const struct calib_group *b)
{
	return a->n < b->n || (a->n == b->n && a->confidence < b->confidence);
}

/* Mark high-confidence groups that cannot change a row, or whose row is shared. */
static void calib_resolve(struct calib_result *r, const struct est_coefs *current)
{
	for (size_t i = 0; i < r->n_groups; i++) {
		struct calib_group *g = &r->groups[i];

		if (g->status != CALIB_PROPOSED)
			continue;
		calib_row_name(current, g);
		if (calib_doc_model(g->row_category) || g->row_category[0] == '\0' ||
		    g->row_complexity[0] == '\0')
			g->status = CALIB_NOT_OVERHEAD;
	}
	for (size_t i = 0; i < r->n_groups; i++) {
		struct calib_group *g = &r->groups[i];

		for (size_t j = 0; j < r->n_groups && g->status == CALIB_PROPOSED; j++) {
			const struct calib_group *h = &r->groups[j];

			if (j != i && h->status == CALIB_PROPOSED &&
			    strcmp(g->row_category, h->row_category) == 0 &&
			    strcmp(g->row_complexity, h->row_complexity) == 0 &&
			    (calib_yields(g, h) || (!calib_yields(h, g) && j < i)))
				g->status = CALIB_SHARED_ROW;
		}
	}
}

/* Compute each proposed group's new overhead and apply them all to a copy of current. */
int calib_propose(struct calib_result *r, const struct est_coefs *current,
    struct est_coefs *proposed, char *err, size_t errlen)
{
	struct est_coef_row *rows = xcalloc(r->n_groups + 1, sizeof *rows);
	size_t n = 0;
	int rc;

	calib_resolve(r, current);
	for (size_t i = 0; i < r->n_groups; i++) {
		struct calib_group *g = &r->groups[i];
		double v;

		if (g->status != CALIB_PROPOSED)
			continue;
		g->factor = r->opts.damping == CALIB_DAMP_SQRT ? sqrt(g->multiplier) :
		                                                 g->multiplier;
		g->old_overhead = est_overhead_lookup(current, g->row_category, g->row_complexity);
		v = round((double)g->old_overhead * g->factor);
		g->new_overhead = v < CALIB_OVERHEAD_MIN ? CALIB_OVERHEAD_MIN :
		    v > CALIB_OVERHEAD_MAX               ? CALIB_OVERHEAD_MAX :
		                                           (int)v;
		rows[n].category = g->row_category;
		rows[n].complexity = g->row_complexity;
		rows[n].overhead = g->new_overhead;
		n++;
	}
	*proposed = *current;
	rc = est_coefs_apply(proposed, rows, n, current->version, err, errlen);
	free(rows);
	if (rc != 0) {
		*proposed = *current;
		for (size_t i = 0; i < r->n_groups; i++)
			if (r->groups[i].status == CALIB_PROPOSED)
				r->groups[i].status = CALIB_LOW_CONFIDENCE;
		return -1;
	}
	r->n_proposed = n;
	return 0;
}

/* Find the integer marginal m >= 0 with int((overhead + m) × margin) == predicted;
 * -1 if there is none. */
static int64_t calib_marginal(int64_t predicted, int overhead, double margin)
{
	int64_t m0 = llround((double)predicted / margin) - overhead;

	for (int64_t m = m0 - 2; m <= m0 + 2; m++)
		if (m >= 0 && (int64_t)((double)(overhead + m) * margin) == predicted)
			return m;
	return -1;
}

/* Re-express a prediction made with `at` under `to` (see calib.h). */
int64_t calib_reexpress(const struct telem_sample *s, const struct est_coefs *at,
    const struct est_coefs *to, bool *moved)
{
	int64_t m;

	*moved = false;
	if (at == NULL || s->deliverable_count == 0 || calib_doc_model(s->category))
		return s->predicted;
	m = calib_marginal(
	    s->predicted, est_overhead_lookup(at, s->category, s->complexity), at->safety_margin);
	if (m < 0)
		return s->predicted;
	*moved = true;
	return (int64_t)((double)(est_overhead_lookup(to, s->category, s->complexity) + m) *
	    to->safety_margin);
}

/* Predict a sample under the proposal (see calib.h). */
int64_t calib_predict(const struct calib_result *r, const struct telem_sample *s,
    const struct est_coefs *proposed, const struct est_coefs *at, enum calib_pred_how *how)
{
	const struct calib_group *g = calib_group_find(r, s->category, s->complexity);
	int64_t v;
	bool moved;
	double x;

	*how = CALIB_PRED_UNCHANGED;
	if (g == NULL || g->status != CALIB_PROPOSED)
		return s->predicted;
	if (at != NULL && (s->deliverable_count == 0 || calib_doc_model(s->category)))
		return s->predicted;
	v = calib_reexpress(s, at, proposed, &moved);
	if (moved) {
		*how = CALIB_PRED_OVERHEAD;
		return v;
	}
	*how = CALIB_PRED_SCALED;
	x = round((double)s->predicted * g->factor);
	return x < 1.0 ? 1 : (int64_t)x;
}
