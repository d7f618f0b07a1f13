/*
 * Budget selection and the max_tokens of a call.
 *
 * Of the original's max_tokens rules this program keeps: (1) start from a truncation
 * retry's value, else the selected budget; (4) the full-file floor, since every builder
 * call here asks for whole files (docs-like categories below the floor are exempt);
 * (5) a value <= 0 becomes the fallback; (6) never below the selected budget; (7) the
 * cap. The rules driven by builder_mode, change_size and scope contents (2, 3) belong to
 * machinery this program does not have. A fitted set has no floors: its budget is
 * min(cap, ⌈estimate × F⌉) and rule (4) does not apply.
 */
#include "common/estimate/estimator.h"
#include "common/util.h"

#include <string.h>

/* The budget category of an effective category (budget aliases applied). */
static const char *est_budget_category(const struct est_coefs *c, const char *cat)
{
	size_t i;

	for (i = 0; i < c->n_budget_alias; i++)
		if (strcmp(c->budget_alias[i].from, cat) == 0)
			return c->budget_alias[i].to;
	return cat;
}

int est_select_budget(const struct est_coefs *c, const struct est_output *est)
{
	const char *cat = est_budget_category(c, est->category);
	const int *floors = c->floor_other;
	double buffer = c->buffer;
	long budget;
	size_t i;

	if (c->fit.active)
		return est_fit_budget(&c->fit, est->estimate, c->cap);
	if (strcmp(cat, "docs") == 0)
		floors = c->floor_docs;
	else if (strcmp(cat, "tests") == 0)
		floors = c->floor_tests;

	if (est->confidence < c->low_confidence_below && buffer < c->buffer_low_confidence)
		buffer = c->buffer_low_confidence;
	if (est->deliverable_count >= c->many_deliverables && buffer < c->buffer_many_deliverables)
		buffer = c->buffer_many_deliverables;
	if (est->cplx == EST_HIGH && buffer < c->buffer_high_risk)
		for (i = 0; i < c->n_high_risk; i++)
			if (strcmp(cat, c->high_risk[i]) == 0)
				buffer = c->buffer_high_risk;
	if (strcmp(cat, "doc_synthesis") == 0 || strcmp(cat, "doc_sot_update") == 0)
		buffer = c->buffer_doc_model;

	budget = (long)(est->estimate * buffer);
	if (budget < floors[est->cplx])
		budget = floors[est->cplx];
	if (budget > c->cap)
		budget = c->cap;
	return (int)budget;
}

/* The smaller of the table's cap and a positive hard cap. */
static int est_cap(const struct est_coefs *c, int hard_cap)
{
	return hard_cap > 0 && hard_cap < c->cap ? hard_cap : c->cap;
}

int est_max_tokens(const struct est_coefs *c, const struct est_output *est, int selected_budget,
    int requested, int hard_cap)
{
	const char *cat = est->category;
	bool docs_like = strcmp(cat, "docs") == 0 || strcmp(cat, "documentation") == 0 ||
	    strcmp(cat, "doc_synthesis") == 0 || strcmp(cat, "doc_sot_update") == 0;
	int cap = est_cap(c, hard_cap);
	int m = requested > 0 ? requested : selected_budget;

	if (!c->fit.active && m < c->full_file_floor &&
	    !(docs_like && selected_budget < c->full_file_floor))
		m = c->full_file_floor;
	if (m <= 0)
		m = c->nonpositive_fallback;
	if (m < selected_budget)
		m = selected_budget;
	return m < cap ? m : cap;
}

int est_escalate(const struct est_coefs *c, int used, int hard_cap)
{
	int cap = est_cap(c, hard_cap);
	double next = used * c->escalation_factor;

	return next >= cap ? cap : (int)next;
}
