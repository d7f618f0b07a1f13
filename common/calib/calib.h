/*
 * Estimator calibration (docs/calibration.md): select the clean samples, fit the model
 * (common/estimate/estimator_fit.c) with its conformal budget factor, score the active
 * set and the proposal on held-out samples, and write the report, the JSON proposal and
 * the plot. The per-group figures of the active set (actual ÷ predicted by category and
 * complexity) stay as diagnostics.
 *
 * Conventions kept from the original for the group figures: median ratio = sorted[n/2]
 * (upper median), confidence = 0.6 × min(1, n/12) + 0.4 / (1 + σ) with σ the population
 * standard deviation of the ratios, budget waste = (actual_max_tokens or selected_budget)
 * ÷ actual with p90 = sorted[int(0.9 n)].
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
#define CALIB_DEFAULT_FOLDS 5
#define CALIB_DEFAULT_REPEATS 20
#define CALIB_SAMPLE_FULL 12 /* sample-count confidence saturates here */

struct calib_opts {
	int min_samples;             /* a group with fewer is listed as short of samples */
	double confidence_threshold; /* a group at or above it is high-confidence */
};

/* How a group stands. */
enum calib_status {
	CALIB_BELOW_MIN,       /* fewer samples than min_samples: no figures shown */
	CALIB_LOW_CONFIDENCE,  /* confidence below the threshold */
	CALIB_HIGH_CONFIDENCE, /* at or above the threshold */
};

struct calib_group {
	char *category;
	char *complexity;
	size_t n;
	double avg_actual, avg_estimated, avg_ratio;
	double median_ratio, min_ratio, max_ratio, stdev_ratio;
	double confidence;
	double waste_median; /* (actual_max_tokens or selected_budget) ÷ actual */
	double waste_p90;
	double avg_selected_budget;
	enum calib_status status;
};

struct calib_result {
	struct calib_opts opts;
	size_t n_clean;             /* samples calibrated on */
	size_t n_with_max_tokens;   /* of those, samples that carry actual_max_tokens */
	struct calib_group *groups; /* by sample count (most first), category, complexity */
	size_t n_groups;
	size_t n_eligible;        /* groups with at least min_samples */
	size_t n_high_confidence; /* eligible groups at or above the threshold */
};

/* --- common/calib/calib_group.c --- */

/* Name a group status ("high_confidence"). */
const char *calib_status_name(enum calib_status s);
/* The confidence of a group of n samples whose ratios have population stdev `sd`. */
double calib_confidence(size_t n, double sd);
/* Group the clean samples and compute every group's figures and status. */
void calib_compute(const struct telem_sample *const *clean, size_t n, const struct calib_opts *o,
    struct calib_result *r);
/* Free a result's groups. */
void calib_result_free(struct calib_result *r);

/* --- common/calib/calib_reexpress.c --- */

/* The sample's prediction re-expressed under coefficient set `to`: its marginal part
 * recovered exactly with `at`, the set it was estimated with (the integer m with
 * int((overhead_at + m) × margin_at) == predicted), then int((overhead_to + m) ×
 * margin_to). Returns the recorded prediction, *moved false, when `at` is NULL, either
 * set has a fitted model, the sample has no deliverables or a documentation-model category (overhead plays no
 * part), or no such m exists. */
int64_t calib_reexpress(const struct telem_sample *s, const struct est_coefs *at,
    const struct est_coefs *to, bool *moved);

/* --- common/calib/calib_fit.c: the samples a fit uses, and the fit --- */

/* The samples of a calibration: the clean ones the model is fitted on, and the
 * recorded truncated events, which only count for truncation. */
struct calib_fitset {
	const struct telem_sample **clean; /* one per (phase, attempt), duplicates dropped */
	size_t n_clean;
	const struct telem_sample **truncated; /* truncated events (actual is a lower bound) */
	size_t n_truncated;
	size_t n_duplicates; /* clean events dropped as exact duplicates */
	size_t n_repeats;    /* clean events dropped: a later one of the same attempt is kept */
	const struct telem_sample **implausible; /* clean or truncated but for a count no
	                                          * call records (telem_plausible): excluded */
	size_t n_implausible;
};

/* Select from the samples: clean (telem_clean), the last of each (run, phase, attempt)
 * when the attempt is known, and no exact duplicate (every recorded field the same but
 * the time and the attempt); truncated events go to `truncated`. An event that would be
 * clean or truncated but records a count no call can (telem_plausible) goes to
 * `implausible` and counts for nothing else. Pointers into `s`. */
void calib_fitset_select(const struct telem_sample *const *s, size_t n, struct calib_fitset *fs);
/* Free the selection's arrays. */
void calib_fitset_free(struct calib_fitset *fs);
/* Fit the model on n clean samples with `coverage`. Refuses fewer than
 * EST_FIT_MIN_SAMPLES. Returns 0, or -1 with err. */
int calib_fit(const struct telem_sample *const *clean, size_t n, double coverage, struct est_fit *f,
    char *err, size_t errlen);
/* The estimate and the budget set `c` gives a sample: the fitted model's when c has one;
 * otherwise the recorded prediction (already expressed under c) and the max_tokens the
 * original's rules choose for it (floors included; confidence taken as high). */
void calib_set_budget(
    const struct est_coefs *c, const struct telem_sample *s, int64_t *estimate, int64_t *budget);

/* --- common/calib/calib_holdout.c: held-out evaluation --- */

enum calib_method {
	CALIB_LOO,   /* leave one sample out */
	CALIB_KFOLD, /* k folds, repeated with fixed seeds */
	CALIB_LORUN, /* leave one run out: runs of CALIB_LORUN_MIN samples, at least three */
	CALIB_METHOD_COUNT,
};

#define CALIB_LORUN_MIN 10
#define CALIB_LORUN_RUNS 3
#define CALIB_CURVE_POINTS 41 /* budget factors 1 to 8, log-spaced */

struct calib_eval_opts {
	double coverage; /* τ */
	int folds;
	int repeats;
};

/* The figures of one set under one method. */
struct calib_score {
	bool available;     /* false: the method could not run (see calib_eval.why) */
	size_t n;           /* distinct samples scored: clean and truncated */
	size_t predictions; /* held-out predictions pooled (k-fold: n × repeats) */
	size_t truncations;
	double smape_median, smape_mean; /* of the clean samples' predictions */
	double truncation_rate;          /* 0..1 */
	double waste_p50, waste_p90;     /* budget ÷ actual of the clean samples */
};

/* One point of a truncation-against-waste curve. */
struct calib_curve_point {
	double factor;
	double truncation_rate;
	double waste_p90;
};

struct calib_eval {
	struct calib_score current[CALIB_METHOD_COUNT];
	struct calib_score proposed[CALIB_METHOD_COUNT];
	char why[CALIB_METHOD_COUNT][160]; /* why a method is unavailable */
	size_t n_runs_eligible;            /* runs with CALIB_LORUN_MIN clean samples */
	/* Curves over budget factors of the held-out (leave-one-out) predictions of the
	 * proposal and of the current set's predictions; the chosen points are the budgets
	 * each set would really give. */
	struct calib_curve_point curve_current[CALIB_CURVE_POINTS];
	struct calib_curve_point curve_proposed[CALIB_CURVE_POINTS];
	struct calib_curve_point chosen_current, chosen_proposed;
	int64_t *loo_pred; /* per clean sample: the proposal's leave-one-out estimate */
};

/* Name a method as the JSON does: "loo", "kfold", "lorun". */
const char *calib_method_name(enum calib_method m);
/* Score the current set `current` (fixed) and the proposal (refitted on each training
 * part with o->coverage) on the samples of fs; `proposal`, the fit on all of them, gives
 * the chosen point of its curve. Returns 0, or -1 with err when a fit
 * fails. */
int calib_evaluate(const struct calib_fitset *fs, const struct est_coefs *current,
    const struct est_fit *proposal, const struct calib_eval_opts *o, struct calib_eval *e,
    char *err, size_t errlen);
/* Free an evaluation. */
void calib_eval_free(struct calib_eval *e);
/* Score budgets and estimates: SMAPE of the clean ones, truncation (clean: actual >
 * budget; truncated: budget <= recorded actual), waste budget ÷ actual (p50 the median,
 * p90 sorted[int(0.9 n)]). A sample marked truncated is a recorded truncated event. */
void calib_score_compute(const struct telem_sample *const *s, const int64_t *estimate,
    const int64_t *budget, size_t n, struct calib_score *out);
/* A score as the JSON object of the evaluation: smape_median, smape_mean,
 * truncation_rate, waste_p50, waste_p90, n. */
json_t *calib_json_score(const struct calib_score *s);

/* --- common/calib/calib_coefs.c: coefficient sets as stored, and a catalogue of them --- */

/* Build a set from the built-in defaults plus an overhead_json array of
 * [category, complexity, overhead] triples and the fitted model of model_json (nullable:
 * none). Returns 0, or -1 with err naming the first bad element (c then holds the
 * defaults). */
int calib_coefs_from_json(const char *overhead_json, const char *model_json, uint64_t version,
    struct est_coefs *c, char *err, size_t errlen);
/* The full overhead table of `c` as compact overhead_json text (heap). */
char *calib_coefs_to_json(const struct est_coefs *c);

/* Coefficient sets by version, to find what a sample was estimated with. */
struct calib_coef_sets {
	struct est_coefs *sets;
	size_t n;
};

/* Add a set (copied) to the catalogue. */
void calib_coef_sets_add(struct calib_coef_sets *cs, const struct est_coefs *c);
/* The set of `version`, or NULL. */
const struct est_coefs *calib_coef_sets_find(const struct calib_coef_sets *cs, int64_t version);
/* Free the catalogue. */
void calib_coef_sets_free(struct calib_coef_sets *cs);

/* --- common/calib/calib_svg.c --- */

/* Write the SVG plot: on the left predicted (x) against actual (y) output tokens on log
 * axes, one colour per category, the recorded prediction as a hollow circle and the
 * proposed one as a filled dot (joined when they differ), the y = x line and a legend;
 * on the right, when `e` is given, truncation rate against waste p90 over budget factors
 * for the current and the proposed set, each chosen point marked. `after` may be NULL
 * (before only). Returns 0, or -1 on a write error. */
int calib_svg_write(FILE *f, const struct telem_sample *const *samples, const int64_t *after,
    size_t n, const struct calib_eval *e, const char *title);

/* --- common/calib/calib_report.c: the Markdown report and the JSON proposal --- */

/* What the outputs say besides the group figures. */
struct calib_meta {
	const char *generated_at; /* UTC, ISO 8601 */
	const char *db_url;
	const char *runs;                 /* "all runs" or the --run-id list */
	size_t n_read;                    /* samples read before the clean filter */
	const struct est_coefs *current;  /* the active set */
	const struct calib_fitset *fs;    /* the samples used */
	const struct est_fit *proposal;   /* the fit on all of them */
	const struct calib_eval *eval;    /* its held-out evaluation */
	const struct calib_eval_opts *eo; /* coverage, folds, repeats */
	size_t n_reexpressed;             /* samples moved onto the active set (calib_reexpress) */
	size_t n_unknown_version;         /* samples whose coefficient set is unknown */
	const char *svg_name; /* the plot's file name, linked from the report; nullable */
};

/* Write the Markdown report: summary, the proposal, its held-out evaluation against the
 * active set, the active set's figures by group, the plot and notes. */
void calib_md_write(FILE *f, const struct calib_result *r, const struct calib_meta *m);
/* The JSON proposal: metadata, the fitted model, the evaluation and the groups. */
json_t *calib_json_proposal(const struct calib_result *r, const struct calib_meta *m);
/* The evaluation object: {current|proposed: {loo|kfold|lorun: score or null}}. */
json_t *calib_json_evaluation(const struct calib_eval *e);
/* The fitted model as a JSON object (as stored in model_json). */
json_t *calib_json_fit(const struct est_fit *f);
/* How many excluded events the text outputs name one by one (the JSON names all). */
#define CALIB_IMPLAUSIBLE_NAMED 10
/* One excluded event named for a person: "run R, phase P, at T: actual_output_tokens N"
 * (heap). */
char *calib_implausible_text(const struct telem_sample *s);
/* The n excluded events at `events` as a JSON array of {run_id, phase_id, timestamp,
 * column, value, text}. */
json_t *calib_json_implausible(const struct telem_sample *const *events, size_t n);

#endif
