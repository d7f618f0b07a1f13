/* The estimator's coefficient table: defaults and calibrated overrides from the wire. */
#include "common/estimate/estimator.h"
#include "common/util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Overhead rows (category, low, medium, high) at the last calibration of the original
 * (implementation low/medium and testing low were recalibrated from 1120/1860/1500). */
static const struct {
	const char *category;
	int v[EST_CPLX_COUNT];
} est_default_overhead[] = {
	{ "implementation", { 634, 1176, 5000 } },
	{ "refactoring", { 2500, 3500, 5500 } },
	{ "configuration", { 800, 1500, 2500 } },
	{ "integration", { 3000, 4000, 6000 } },
	{ "testing", { 915, 2500, 4000 } },
	{ "documentation", { 1500, 2500, 3500 } },
	{ "backend", { 2000, 3000, 5000 } },
	{ "database", { 2000, 3000, 5000 } },
	{ "deployment", { 2000, 3000, 5000 } },
	{ "frontend", { 2500, 3500, 5500 } },
};

/* Categories that share another's overhead row. The original had no "tests" row, so
 * category "tests" (the one its seed run uses) always fell back to 2000. */
static const struct est_alias est_default_overhead_alias[] = {
	{ "tests", "testing" },
	{ "docs", "documentation" },
};

/* Categories normalised before budget selection. */
static const struct est_alias est_default_budget_alias[] = {
	{ "documentation", "docs" },
	{ "doc_write", "docs" },
	{ "doc", "docs" },
	{ "testing", "tests" },
	{ "implement_feature", "implementation" },
};

static const char *const est_cplx_names[EST_CPLX_COUNT] = { "low", "medium", "high" };

void est_coefs_default(struct est_coefs *c)
{
	static const char *const sot[] = { "build_log.md", "build_history.md", "changelog.md",
		"history.md", "release_notes.md" };
	size_t i, k;

	memset(c, 0, sizeof *c);
	c->version = 1;
	for (i = 0; i < ARRAY_SIZE(est_default_overhead); i++) {
		for (k = 0; k < EST_CPLX_COUNT; k++) {
			struct est_overhead_row *r = &c->overhead[c->n_overhead++];
			strlcpy_ap(r->category, est_default_overhead[i].category, EST_NAME_MAX);
			strlcpy_ap(r->complexity, est_cplx_names[k], EST_NAME_MAX);
			r->overhead = est_default_overhead[i].v[k];
		}
	}
	for (i = 0; i < ARRAY_SIZE(est_default_overhead_alias); i++)
		c->overhead_alias[c->n_overhead_alias++] = est_default_overhead_alias[i];
	c->overhead_fallback = 2000;

	c->marginal_new[EST_CLASS_TEST] = 1400;
	c->marginal_new[EST_CLASS_DOC] = 500;
	c->marginal_new[EST_CLASS_CONFIG] = 1000;
	c->marginal_new[EST_CLASS_FRONTEND] = 2800;
	c->marginal_new[EST_CLASS_PYTHON] = 2000;
	c->marginal_new[EST_CLASS_SQL] = 1500;
	c->marginal_new[EST_CLASS_OTHER] = 2000;
	c->marginal_existing[EST_CLASS_TEST] = 600;
	c->marginal_existing[EST_CLASS_DOC] = 400;
	c->marginal_existing[EST_CLASS_CONFIG] = 500;
	c->marginal_existing[EST_CLASS_FRONTEND] = 1100;
	c->marginal_existing[EST_CLASS_PYTHON] = 700;
	c->marginal_existing[EST_CLASS_SQL] = 600;
	c->marginal_existing[EST_CLASS_OTHER] = 700;
	c->safety_margin = 1.3;

	c->loc_steps[0] = (struct est_step){ 50, 0.7 };
	c->loc_steps[1] = (struct est_step){ 200, 1.0 };
	c->loc_steps[2] = (struct est_step){ 500, 1.3 };
	c->loc_steps[3] = (struct est_step){ INT32_MAX, 1.5 };
	c->import_steps[0] = (struct est_step){ 5, 0.9 };
	c->import_steps[1] = (struct est_step){ 15, 1.0 };
	c->import_steps[2] = (struct est_step){ INT32_MAX, 1.2 };
	c->indent_steps[0] = (struct est_step){ 8, 0.9 };
	c->indent_steps[1] = (struct est_step){ 16, 1.0 };
	c->indent_steps[2] = (struct est_step){ INT32_MAX, 1.2 };
	c->multiplier_min = 0.5;
	c->multiplier_max = 2.0;
	c->multiplier_max_bytes = 4u << 20;

	c->flat[EST_LOW] = 8192;
	c->flat[EST_MEDIUM] = 12288;
	c->flat[EST_HIGH] = 16384;
	c->flat_confidence = 0.5;

	c->confidence_base = 0.5;
	c->confidence_extension = 0.3;
	c->confidence_verb = 0.2;
	c->context_strong_above = 10;

	for (i = 0; i < ARRAY_SIZE(sot); i++)
		strlcpy_ap(c->sot_names[c->n_sot_names++], sot[i], EST_NAME_MAX);
	c->sot_context[EST_CTX_NONE] = 3000;
	c->sot_context[EST_CTX_SOME] = 2200;
	c->sot_context[EST_CTX_STRONG] = 1500;
	c->sot_write_per_entry = 900;
	c->sot_consistency = 0.15;
	c->sot_confidence = 0.70;

	c->syn_investigate[EST_CTX_NONE] = 2500;
	c->syn_investigate[EST_CTX_SOME] = 2000;
	c->syn_investigate[EST_CTX_STRONG] = 1500;
	c->syn_api = 1200;
	c->syn_examples = 1400;
	c->syn_write_per_doc = 850;
	c->syn_coordination = 0.12;
	c->syn_coordination_min_docs = 5;
	c->syn_confidence = 0.75;

	for (i = 0; i < ARRAY_SIZE(est_default_budget_alias); i++)
		c->budget_alias[c->n_budget_alias++] = est_default_budget_alias[i];
	c->floor_docs[EST_LOW] = 4096;
	c->floor_docs[EST_MEDIUM] = 8192;
	c->floor_docs[EST_HIGH] = 12288;
	c->floor_tests[EST_LOW] = 6144;
	c->floor_tests[EST_MEDIUM] = 8192;
	c->floor_tests[EST_HIGH] = 12288;
	c->floor_other[EST_LOW] = 8192;
	c->floor_other[EST_MEDIUM] = 12288;
	c->floor_other[EST_HIGH] = 16384;
	c->buffer = 1.2;
	c->buffer_low_confidence = 1.4;
	c->low_confidence_below = 0.7;
	c->buffer_many_deliverables = 1.6;
	c->many_deliverables = 8;
	c->buffer_high_risk = 1.6;
	strlcpy_ap(c->high_risk[c->n_high_risk++], "implementation", EST_NAME_MAX);
	strlcpy_ap(c->high_risk[c->n_high_risk++], "integration", EST_NAME_MAX);
	c->buffer_doc_model = 2.2;
	c->cap = 64000;

	c->full_file_floor = 16384;
	c->nonpositive_fallback = 4096;
	c->escalation_factor = 1.25;
}

/* Whether c is white space in the C locale (isspace's set, without its table). */
static inline bool est_name_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Copy `s` lowercased and trimmed into out (size n): ASCII letters only, as tolower in
 * the C locale the programs run in. A name longer than out holds is cut
 * before the character that does not fit whole, never inside it, and trimmed again, so
 * that a name of valid UTF-8 stays valid UTF-8 and normalising it again changes nothing
 * (a category key of the fitted model is read back only so). */
void est_name_normalise(const char *s, char *out, size_t n)
{
	size_t len, k = 0;

	while (est_name_space(*s))
		s++;
	len = strlen(s);
	while (len > 0 && est_name_space(s[len - 1]))
		len--;
	for (; k < len && k + 1 < n; k++)
		out[k] = s[k] >= 'A' && s[k] <= 'Z' ? (char)(s[k] + ('a' - 'A')) : s[k];
	if (k < len) {
		while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
		while (k > 0 && est_name_space(out[k - 1]))
			k--;
	}
	out[k] = '\0';
}

void est_name_copy(char *out, const char *s, size_t n)
{
	size_t k = strlen(s);

	if (n == 0)
		return;
	if (k >= n) {
		k = n - 1;
		while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
	}
	memcpy(out, s, k);
	out[k] = '\0';
}

/* The row name `category` stands for after the overhead aliases. */
static const char *est_overhead_name(const struct est_coefs *c, const char *category)
{
	size_t i;

	for (i = 0; i < c->n_overhead_alias; i++)
		if (strcmp(c->overhead_alias[i].from, category) == 0)
			return c->overhead_alias[i].to;
	return category;
}

/* Index of the overhead row of (category, complexity) after aliasing, or -1. */
static int est_row_index(const struct est_coefs *c, const char *category, const char *complexity)
{
	char cat[EST_NAME_MAX], cplx[EST_NAME_MAX];
	const char *name;
	size_t i;

	est_name_normalise(category, cat, sizeof cat);
	est_name_normalise(complexity, cplx, sizeof cplx);
	name = est_overhead_name(c, cat);
	for (i = 0; i < c->n_overhead; i++) {
		const struct est_overhead_row *r = &c->overhead[i];
		if (strcmp(r->category, name) == 0 && strcmp(r->complexity, cplx) == 0)
			return (int)i;
	}
	return -1;
}

int est_overhead_lookup(const struct est_coefs *c, const char *category, const char *complexity)
{
	int i = est_row_index(c, category, complexity);

	return i >= 0 ? c->overhead[i].overhead : c->overhead_fallback;
}

int est_coefs_apply(struct est_coefs *c, const struct est_coef_row *rows, size_t n,
    uint64_t version, char *err, size_t errlen)
{
	size_t i, extra = 0;

	for (i = 0; i < n; i++) {
		const struct est_coef_row *p = &rows[i];
		if (p->category == NULL || p->category[0] == '\0' || p->complexity == NULL ||
		    p->complexity[0] == '\0') {
			snprintf(err, errlen, "estimator row %zu: empty category or complexity", i);
			return -1;
		}
		if (strlen(p->category) >= EST_NAME_MAX || strlen(p->complexity) >= EST_NAME_MAX) {
			snprintf(err, errlen, "estimator row %zu: name longer than %d bytes", i,
			    EST_NAME_MAX - 1);
			return -1;
		}
		if (p->overhead <= 0 || p->overhead > 1000000) {
			snprintf(err, errlen,
			    "estimator row %zu (%s/%s): overhead %lld outside 1..1000000", i,
			    p->category, p->complexity, (long long)p->overhead);
			return -1;
		}
		if (est_row_index(c, p->category, p->complexity) < 0)
			extra++;
	}
	if (c->n_overhead + extra > EST_OVERHEAD_MAX) {
		snprintf(err, errlen, "estimator table: %zu rows exceed the limit of %d",
		    c->n_overhead + extra, EST_OVERHEAD_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		int k = est_row_index(c, rows[i].category, rows[i].complexity);
		struct est_overhead_row *r;
		if (k >= 0) {
			r = &c->overhead[k];
		} else {
			char cat[EST_NAME_MAX];
			r = &c->overhead[c->n_overhead++];
			est_name_normalise(rows[i].category, cat, sizeof cat);
			strlcpy_ap(r->category, est_overhead_name(c, cat), EST_NAME_MAX);
			est_name_normalise(rows[i].complexity, r->complexity, EST_NAME_MAX);
		}
		r->overhead = (int)rows[i].overhead;
	}
	c->version = version;
	return 0;
}
