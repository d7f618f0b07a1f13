/*
 * Token-estimation telemetry: samples (one builder call each: predicted and actual output
 * tokens), the statistics conventions of the Python original, the report metrics of its
 * v3 analyser (docs/telemetry.md) and the TSV sample format.
 *
 * Pure: nothing here touches the database (common/store/store_telemetry.h reads and writes
 * samples) or the file system, except telem_tsv_read_file which reads the named file.
 */
#ifndef AUTOPACK_TELEMETRY_H
#define AUTOPACK_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One token_estimation_v2 event. */
struct telem_sample {
	char *run_id;   /* NULL for a sample parsed from a TSV file */
	char *phase_id; /* NULL for a sample parsed from a TSV file */
	char *timestamp;
	char *category;
	char *complexity;
	int64_t deliverable_count;
	int64_t predicted; /* predicted_output_tokens */
	int64_t actual;    /* actual_output_tokens */
	int64_t selected_budget;
	int64_t actual_max_tokens; /* -1 = unknown */
	bool success;
	bool truncated;
	char *stop_reason; /* nullable */
	char *model;
	int64_t estimator_version; /* 0 = unknown (samples recorded elsewhere) */
	int64_t attempt_id;        /* 0 = unknown */
	/* The first count stored as a text that is not wholly an integer ('12abc', another
	 * program's), by its column name (static), and that text; NULL when none. Such a
	 * count reads as 0 and the sample is not plausible (telem_plausible). */
	const char *unreadable_col;
	char *unreadable_text;
};

/* A growable list of samples that owns their strings. */
struct telem_samples {
	struct telem_sample *v;
	size_t n, cap;
};

/* Append a zeroed sample and return it (its strings are owned by the list). */
struct telem_sample *telem_samples_add(struct telem_samples *s);
/* Free every sample's strings and the list. */
void telem_samples_free(struct telem_samples *s);

/* --- common/calib/telemetry_stats.c: formulas and conventions (docs/telemetry.md) --- */

/* Smallest actual a clean sample may have (the original never recorded fewer). */
#define TELEM_CLEAN_MIN_ACTUAL 50
/* Largest token or deliverable count a call can record: the wire's limit on a count
 * (PROTO_TOKENS_MAX); the sample TSV refuses more too. */
#define TELEM_COUNT_MAX 1000000000

/* SMAPE in percent: 100·|p−a| / max(1, (|p|+|a|)/2). */
double telem_smape(int64_t predicted, int64_t actual);
/* True when SMAPE, waste and underestimation are defined for a row: actual > 0 and
 * predicted > 0 (otherwise the columns are NULL; docs/data-model.md). */
bool telem_scored(int64_t predicted, int64_t actual);
/* True when every count a sample records could have been recorded by a call: each one an
 * integer (unreadable_col NULL), the deliverables, predicted, actual and budget from 0 to
 * TELEM_COUNT_MAX, max_tokens too or unknown (-1). Another program's rows can hold
 * anything (2^63-1 output tokens, '12abc'). */
bool telem_plausible(const struct telem_sample *s);
/* The name of the first count of a sample no call can record ("actual_output_tokens",
 * as its column is named) and its value in *value (0 for one that is no integer:
 * unreadable_text holds it); NULL when the sample is plausible. */
const char *telem_implausible_count(const struct telem_sample *s, int64_t *value);
/* True for a calibration sample: success, not truncated, actual >= TELEM_CLEAN_MIN_ACTUAL,
 * and plausible (telem_plausible). */
bool telem_clean(const struct telem_sample *s);
/* Arithmetic mean; 0 for an empty list. */
double telem_mean(const double *v, size_t n);
/* Population standard deviation; 0 for an empty list. */
double telem_pstdev(const double *v, size_t n);
/* Sort ascending, in place. */
void telem_sort(double *v, size_t n);
/* Median of sorted values, averaging the middle two (Python statistics.median). */
double telem_median(const double *sorted, size_t n);
/* Upper median of sorted values: sorted[n / 2] (the calibration script's convention). */
double telem_upper_median(const double *sorted, size_t n);
/* p90 of sorted values as the v3 analyser takes it: statistics.quantiles(n=10)[8]
 * (exclusive method) when n >= 10, else the maximum. */
double telem_p90_decile(const double *sorted, size_t n);
/* p90 of sorted values as the calibration script takes it: sorted[int(0.9 n)], else the
 * last value. */
double telem_p90_index(const double *sorted, size_t n);

/* --- common/calib/telemetry_report.c: the metrics of `telemetry report` --- */

#define TELEM_TARGET_UNDER_PCT 5.0 /* underestimation above this: tuning needed */
#define TELEM_TARGET_TRUNC_PCT 2.0 /* truncation above this: tuning needed */
#define TELEM_TARGET_WASTE_P90 3.0 /* waste p90 at or above this: cost worth a look */

/* The metrics of one set of samples. Waste is predicted ÷ actual. */
struct telem_metrics {
	size_t n;
	size_t underestimated; /* actual > predicted × under_multiplier */
	size_t truncated;
	size_t success;
	double under_pct, trunc_pct, success_pct;
	size_t n_waste; /* samples with a waste ratio (telem_scored) */
	double waste_median, waste_mean, waste_p90;
	size_t n_smape; /* non-truncated scored samples */
	double smape_mean, smape_median, smape_min, smape_max;
	double predicted_mean, predicted_median, actual_mean, actual_median; /* non-truncated */
	double trunc_predicted_mean;
	double trunc_actual_mean; /* a lower bound: truncated output was cut off */
	double trunc_under_pct;   /* truncated samples with actual > predicted */
	bool under_above_target, trunc_above_target, waste_above_target;
	bool tuning_needed; /* underestimation > 5 % or truncation > 2 % */
};

/* Compute the metrics of `rows`. */
void telem_metrics_compute(const struct telem_sample *const *rows, size_t n,
    double under_multiplier, struct telem_metrics *m);

/* Dimensions of the stratified breakdown. */
enum telem_dim {
	TELEM_DIM_CATEGORY,
	TELEM_DIM_COMPLEXITY,
	TELEM_DIM_DELIVERABLES, /* buckets 0-1, 2-5, 6+ */
	TELEM_DIM_VERSION,      /* estimator version; "unknown" for imported samples */
	TELEM_DIM_COUNT,
};

struct telem_stratum {
	enum telem_dim dim;
	char *key;
	struct telem_metrics m;
};

struct telem_report_opts {
	bool success_only;
	bool stratify;
	double under_multiplier; /* >= 1 is tolerance; <= 0 means 1 */
};

struct telem_report {
	size_t n_read; /* samples before --success-only */
	/* samples left out of every figure: a count no call can record (telem_plausible) */
	const struct telem_sample **implausible;
	size_t n_implausible;
	struct telem_metrics all;
	struct telem_stratum *strata; /* by dimension, then key */
	size_t n_strata;
	double under_multiplier;
};

/* Name of a dimension ("category"). */
const char *telem_dim_name(enum telem_dim d);
/* Bucket label of a deliverable count: "0-1", "2-5" or "6+". */
const char *telem_deliverable_bucket(int64_t count);
/* Build the report of `s` under `o`, from its plausible samples (telem_plausible); the
 * others are listed in r->implausible. */
void telem_report_build(
    const struct telem_samples *s, const struct telem_report_opts *o, struct telem_report *r);
/* Free what telem_report_build allocated. */
void telem_report_free(struct telem_report *r);

/* --- common/calib/telemetry_tsv.c: the sample TSV (tests/data/autopack-v2-telemetry-samples.tsv) --- */

/* Parse TSV text: a header naming the columns timestamp, category, complexity,
 * deliverables, predicted_output, actual_output, selected_budget, success, truncated,
 * stop_reason, model (any order; actual_max_tokens optional), then one sample a line.
 * All or nothing: on the first bad line returns -1 with "SOURCE:LINE: column NAME: what
 * was wrong" in err and leaves `out` empty. */
int telem_tsv_parse(const char *text, size_t len, const char *source, struct telem_samples *out,
    char *err, size_t errlen);
/* Read and parse the TSV file at `path`; -1 with a message on failure. */
int telem_tsv_read_file(const char *path, struct telem_samples *out, char *err, size_t errlen);
/* Read the open descriptor `fd` (standard input) to its end and parse it as
 * telem_tsv_read_file does a file; `source` names it in messages. */
int telem_tsv_read_fd(
    int fd, const char *source, struct telem_samples *out, char *err, size_t errlen);
/* The run id an import of `path` gets: "imported-<file name without extension>", with
 * characters an id may not hold replaced by '-' (heap). */
char *telem_import_run_id(const char *path);
/* True for a valid run or phase id: 1-128 of A-Z a-z 0-9 . _ -, not starting with . or -. */
bool telem_id_valid(const char *id);

#endif
