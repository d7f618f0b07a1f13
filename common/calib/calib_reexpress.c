/* A recorded prediction re-expressed under another coefficient set: its marginal part
 * recovered and the overhead replaced. */
#include "common/calib/calib.h"
#include "common/util.h"

#include <math.h>
#include <string.h>

/* Categories whose estimate comes from a documentation model, not an overhead row. */
static bool calib_doc_model(const char *category)
{
	return strcmp(category, "doc_synthesis") == 0 || strcmp(category, "doc_sot_update") == 0;
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
	if (at == NULL || at->fit.active || to->fit.active || s->deliverable_count == 0 ||
	    calib_doc_model(s->category))
		return s->predicted;
	m = calib_marginal(
	    s->predicted, est_overhead_lookup(at, s->category, s->complexity), at->safety_margin);
	if (m < 0)
		return s->predicted;
	*moved = true;
	return (int64_t)((double)(est_overhead_lookup(to, s->category, s->complexity) + m) *
	    to->safety_margin);
}
