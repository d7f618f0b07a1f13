/*
 * Estimator calibration (docs/telemetry.md): group the clean samples by (category, complexity),
 * measure actual ÷ predicted per group, and propose a multiplier for the overhead row of
 * every group with enough samples and enough confidence. The proposal is a whole
 * coefficient set (struct est_coefs) that `calibrate --apply` stores as a new version.
 *
 * Conventions kept from the original: median ratio = sorted[n/2] (upper median),
 * confidence = 0.6 × min(1, n/12) + 0.4 / (1 + σ) with σ the population standard
 * deviation of the ratios, budget waste = (actual_max_tokens or selected_budget) ÷ actual
 * with p90 = sorted[int(0.9 n)].
 *
 * Pure: no database, no files, except the writers that take a FILE.
 */
#ifndef AUTOPACK_CALIB_H
#define AUTOPACK_CALIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/estimate/estimator.h"
#include "common/calib/telemetry.h"

#define CALIB_DEFAULT_MIN_SAMPLES 5
#define CALIB_DEFAULT_THRESHOLD 0.7
#define CALIB_SAMPLE_FULL 12 /* sample-count confidence saturates here */
#define CALIB_OVERHEAD_MIN 1 /* a new overhead is clamped to this range */
#define CALIB_OVERHEAD_MAX 1000000

/* How a group's multiplier reaches its overhead row. */
enum calib_damping {
	CALIB_DAMP_SQRT, /* new = round(old × sqrt(multiplier)), as the original did by hand */
	CALIB_DAMP_NONE, /* new = round(old × multiplier) */
};

struct calib_opts {
	int min_samples;
	double confidence_threshold;
	enum calib_damping damping;
};

/* What happens to a group. */
enum calib_status {
	CALIB_BELOW_MIN,      /* fewer samples than min_samples: no result */
	CALIB_LOW_CONFIDENCE, /* confidence below the threshold: reported, not proposed */
	CALIB_PROPOSED,       /* its overhead row changes */
	CALIB_NOT_OVERHEAD,   /* doc_synthesis / doc_sot_update: no overhead row to change */
	CALIB_SHARED_ROW,     /* its row is set by another group with more samples */
};

struct calib_group {
	char *category;
	char *complexity;
	size_t n;
	double avg_actual, avg_estimated, avg_ratio;
	double median_ratio, min_ratio, max_ratio, stdev_ratio;
	double confidence;
	double multiplier;   /* proposed_multiplier = median_ratio */
	double waste_median; /* (actual_max_tokens or selected_budget) ÷ actual */
	double waste_p90;
	double avg_selected_budget;
	enum calib_status status;
	/* Set by calib_propose for high-confidence groups. */
	char row_category[EST_NAME_MAX]; /* the overhead row the group's samples used */
	char row_complexity[EST_NAME_MAX];
	double factor; /* the multiplier after damping */
	int old_overhead, new_overhead;
};

struct calib_result {
	struct calib_opts opts;
	size_t n_clean;             /* samples calibrated on */
	size_t n_with_max_tokens;   /* of those, samples that carry actual_max_tokens */
	struct calib_group *groups; /* by sample count (most first), category, complexity */
	size_t n_groups;
	size_t n_eligible;        /* groups with at least min_samples */
	size_t n_high_confidence; /* eligible groups at or above the threshold */
	size_t n_proposed;        /* groups whose row changes */
};

/* --- common/calib/calib_group.c --- */

/* Name a damping ("sqrt"); calib_damping_parse returns -1 for an unknown name. */
const char *calib_damping_name(enum calib_damping d);
int calib_damping_parse(const char *name, enum calib_damping *d);
/* Name a group status ("proposed"). */
const char *calib_status_name(enum calib_status s);
/* The confidence of a group of n samples whose ratios have population stdev `sd`. */
double calib_confidence(size_t n, double sd);
/* Group the clean samples and compute every group's figures; statuses are BELOW_MIN,
 * LOW_CONFIDENCE or PROPOSED until calib_propose refines them. */
void calib_compute(const struct telem_sample *const *clean, size_t n, const struct calib_opts *o,
    struct calib_result *r);
/* The group of (category, complexity), or NULL. */
const struct calib_group *calib_group_find(
    const struct calib_result *r, const char *category, const char *complexity);
/* Free a result's groups. */
void calib_result_free(struct calib_result *r);

/* --- common/calib/calib_propose.c --- */

/* Turn the high-confidence groups into changes on top of `current`: each group's
 * overhead row (after the estimator's aliases) gets round(old × factor), clamped to
 * CALIB_OVERHEAD_MIN..MAX; groups without an overhead row and groups whose row another
 * group with more samples sets are marked so. Writes the whole proposed set (current
 * plus the changes, version unchanged) to `proposed`. Returns 0, or -1 with err if the
 * table would overflow (nothing proposed). */
int calib_propose(struct calib_result *r, const struct est_coefs *current,
    struct est_coefs *proposed, char *err, size_t errlen);

/* How calib_predict moved a sample. */
enum calib_pred_how {
	CALIB_PRED_UNCHANGED, /* its group is not in the proposal, or overhead plays no part */
	CALIB_PRED_OVERHEAD,  /* overhead part recovered: int((new overhead + marginal) × m) */
	CALIB_PRED_SCALED,    /* split unknown: predicted × the group's damped factor */
};

/* The sample's prediction re-expressed under coefficient set `to`: its marginal part
 * recovered exactly with `at`, the set it was estimated with (the integer m with
 * int((overhead_at + m) × margin_at) == predicted), then int((overhead_to + m) ×
 * margin_to). Returns the recorded prediction, *moved false, when `at` is NULL, the
 * sample has no deliverables or a documentation-model category (overhead plays no
 * part), or no such m exists. */
int64_t calib_reexpress(const struct telem_sample *s, const struct est_coefs *at,
    const struct est_coefs *to, bool *moved);

/* The sample's prediction under the proposal. `at` holds the coefficients the sample
 * was estimated with (NULL when unknown, as for imported samples): with them the
 * marginal part is recovered exactly and the new overhead put in its place; without
 * them the whole prediction is scaled. */
int64_t calib_predict(const struct calib_result *r, const struct telem_sample *s,
    const struct est_coefs *proposed, const struct est_coefs *at, enum calib_pred_how *how);

/* --- common/calib/calib_coefs.c: coefficient sets as stored (overhead_json) --- */

/* Coefficient sets by version, to find what a sample was estimated with. */
struct calib_coef_sets {
	struct est_coefs *sets;
	size_t n;
};

/* Build a set from the built-in defaults plus an overhead_json array of
 * [category, complexity, overhead] triples. Returns 0, or -1 with err naming the first
 * bad element. */
int calib_coefs_from_json(
    const char *overhead_json, uint64_t version, struct est_coefs *c, char *err, size_t errlen);
/* The full overhead table of `c` as compact overhead_json text (heap). */
char *calib_coefs_to_json(const struct est_coefs *c);
/* Add a set (copied) to the catalogue. */
void calib_coef_sets_add(struct calib_coef_sets *cs, const struct est_coefs *c);
/* The set of `version`, or NULL. */
const struct est_coefs *calib_coef_sets_find(const struct calib_coef_sets *cs, int64_t version);
/* Free the catalogue. */
void calib_coef_sets_free(struct calib_coef_sets *cs);

/* --- common/calib/calib_eval.c --- */

struct calib_eval {
	size_t n;             /* clean samples, each held out once */
	size_t n_changed;     /* held-out predictions that moved */
	size_t n_overhead;    /* of those, moved by recovering the overhead part */
	size_t n_scaled;      /* of those, moved by scaling the whole prediction */
	size_t n_folds_empty; /* folds whose training part proposed nothing */
	struct telem_metrics before, after;
	int64_t *after_pred; /* per sample, in input order */
};

/* Leave-one-out: for each clean sample, calibrate on the others (same options, on top
 * of `current`) and predict the held-out sample; then score before and after. Returns
 * 0, or -1 with err. */
int calib_evaluate(const struct telem_sample *const *clean, size_t n, const struct calib_opts *o,
    const struct est_coefs *current, const struct calib_coef_sets *sets, struct calib_eval *e,
    char *err, size_t errlen);
/* Free an evaluation. */
void calib_eval_free(struct calib_eval *e);

/* --- common/calib/calib_svg.c --- */

/* Write an SVG scatter plot: predicted (x) against actual (y) output tokens on log
 * axes, one colour per category, the recorded prediction as a hollow circle and the
 * proposed one as a filled dot (joined when they differ), the y = x line, a legend and
 * `title`. `after` may be NULL (before only). Returns 0, or -1 on a write error. */
int calib_svg_write(FILE *f, const struct telem_sample *const *samples, const int64_t *after,
    size_t n, const char *title);

/* --- common/calib/calib_report.c: the Markdown report and the JSON proposal --- */

/* What the outputs say besides the result. */
struct calib_meta {
	const char *generated_at; /* UTC, ISO 8601 */
	const char *db_url;
	const char *runs;         /* "all runs" or the --run-id list */
	size_t n_read;            /* samples read before the clean filter */
	uint64_t current_version; /* the active coefficient set */
	size_t n_reexpressed;     /* samples moved onto the active set (calib_reexpress) */
	size_t n_unknown_version; /* samples whose coefficient set is unknown */
	const char *svg_name;     /* the plot's file name, linked from the report; nullable */
	const struct telem_metrics *in_before; /* in-sample metrics; nullable */
	const struct telem_metrics *in_after;
};

/* Write the Markdown report: summary, recommendations, detailed results, cost,
 * groups short of samples, the proposal, notes and the plot. */
void calib_md_write(FILE *f, const struct calib_result *r, const struct calib_meta *m);
/* The JSON proposal: metadata and proposed_changes (the original's fields plus the
 * overhead row, damping, old and new overhead and status). */
json_t *calib_json_proposal(const struct calib_result *r, const struct calib_meta *m);
/* The changes of the proposal alone, as stored in a set's provenance. */
json_t *calib_json_changes(const struct calib_result *r);
/* A metrics object: n, SMAPE mean/median, waste mean/median/p90, underestimation %. */
json_t *calib_json_metrics(const struct telem_metrics *m);

#endif
