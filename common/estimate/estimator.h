/*
 * The token estimator (v2): predicts the output tokens of one builder call from the phase's
 * deliverables, category and complexity, and turns the prediction into a token budget and
 * the max_tokens sent to the provider.
 *
 * Every number the model uses lives in a struct est_coefs, a table of data: the supervisor
 * sends the overhead rows with every job (est_coefs_apply) and calibration can replace them.
 * est_coefs_default() holds the coefficients the Python original shipped at its last
 * calibration (version 1).
 *
 * A coefficient set is either the overhead table alone (the original's model, the
 * default) or that table plus a fitted model (struct est_fit, docs/calibration.md): with
 * a fitted model the estimate is exp(w·x) and the budget min(cap, ⌈estimate × F⌉), with
 * no floors; the truncation retry (× escalation_factor) stays.
 *
 * Models of the original, chosen in this order:
 *   no deliverables      flat budget by complexity, confidence 0.5
 *   pure-doc + SOT file  sot_context[q] + sot_write × max(1,n) + int(sot_consistency × write)
 *   pure-doc + synthesis investigate[q] + api + examples + write × n (+ coordination, n ≥ 5)
 *   otherwise            overhead(category, complexity) + Σ marginal(deliverable)
 * each total multiplied by safety_margin and truncated to an integer.
 *
 * All functions are pure except that est_estimate reads existing deliverables under the
 * workspace for the file multiplier.
 */
#ifndef AUTOPACK_ESTIMATOR_H
#define AUTOPACK_ESTIMATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vocab.h"

#define EST_NAME_MAX 32     /* bytes in a category or complexity name, NUL included */
#define EST_OVERHEAD_MAX 96 /* rows in the overhead table */
#define EST_ALIAS_MAX 16    /* rows in each alias table */
#define EST_SOT_NAMES_MAX 8

enum est_cplx {
	EST_LOW,
	EST_MEDIUM,
	EST_HIGH,
	EST_CPLX_COUNT
};

/* Deliverable classes of the marginal model, in the order they are tested. */
enum est_class {
	EST_CLASS_TEST,
	EST_CLASS_DOC,
	EST_CLASS_CONFIG, /* config files and migrations */
	EST_CLASS_FRONTEND,
	EST_CLASS_PYTHON, /* .py, .pyi */
	EST_CLASS_SQL,
	EST_CLASS_OTHER,
	EST_CLASS_COUNT,
};

enum est_model {
	EST_MODEL_FITTED,   /* the fitted model of a calibrated set */
	EST_MODEL_FLAT,     /* no deliverables */
	EST_MODEL_OVERHEAD, /* overhead + marginal */
	EST_MODEL_DOC_SYNTHESIS,
	EST_MODEL_DOC_SOT_UPDATE,
};

/* Context quality from the number of scope paths: none (0), some (1..strong_above),
 * strong (more). */
enum est_ctx {
	EST_CTX_NONE,
	EST_CTX_SOME,
	EST_CTX_STRONG,
	EST_CTX_COUNT
};

struct est_overhead_row {
	char category[EST_NAME_MAX];
	char complexity[EST_NAME_MAX];
	int overhead;
};

/* A category name that shares another's row ("tests" uses "testing"). */
struct est_alias {
	char from[EST_NAME_MAX];
	char to[EST_NAME_MAX];
};

/* One threshold step of the file multiplier: values below `below` get `factor`. */
struct est_step {
	int below;
	double factor;
};

#define EST_FIT_CATS_MAX 64
#define EST_FIT_MIN_SAMPLES 20 /* a fit refuses fewer clean samples */
#define EST_FIT_LAMBDA 1.0     /* ridge penalty, fixed in advance */
#define EST_FIT_COVERAGE 0.95  /* default coverage τ of the conformal factor */

/* The fitted model: ln(estimate) = intercept + w_cat[category] + w_cplx[complexity] +
 * w_deliverables × ln(1 + deliverable count); a category not in cats adds nothing. */
struct est_fit {
	bool active; /* false: the overhead model is in use */
	double lambda;
	double coverage; /* τ */
	double factor;   /* F: budget = min(cap, ⌈estimate × F⌉) */
	size_t n_samples;
	double intercept;
	double w_cplx[EST_CPLX_COUNT];
	double w_deliverables;
	size_t n_cats;
	char cats[EST_FIT_CATS_MAX][EST_NAME_MAX]; /* normalised (lowercased, trimmed), sorted */
	double w_cat[EST_FIT_CATS_MAX];
};

/* One training sample of the fit. */
struct est_fit_obs {
	const char *category;
	const char *complexity;
	int64_t deliverables;
	int64_t actual; /* > 0 */
};

struct est_coefs {
	uint64_t version;
	struct est_fit fit;

	/* Overhead + marginal model. */
	struct est_overhead_row overhead[EST_OVERHEAD_MAX];
	size_t n_overhead;
	struct est_alias overhead_alias[EST_ALIAS_MAX]; /* applied before the row lookup */
	size_t n_overhead_alias;
	int overhead_fallback; /* no row for (category, complexity) */
	int marginal_new[EST_CLASS_COUNT];
	int marginal_existing[EST_CLASS_COUNT]; /* × file multiplier */
	double safety_margin;

	/* File multiplier of existing deliverables: factor of the first step whose `below`
	 * exceeds the value; the last step's `below` is INT32_MAX. */
	struct est_step loc_steps[4];    /* code lines (non-blank, not starting '#') */
	struct est_step import_steps[3]; /* code lines containing "import " */
	struct est_step indent_steps[3]; /* widest leading whitespace of a code line */
	double multiplier_min, multiplier_max;
	size_t multiplier_max_bytes; /* larger files are not read: multiplier 1.0 */

	/* No deliverables. */
	int flat[EST_CPLX_COUNT];
	double flat_confidence;

	/* Confidence of the overhead model. */
	double confidence_base, confidence_extension, confidence_verb;

	/* Context quality: strong when the scope has more than this many paths. */
	int context_strong_above;

	/* DOC_SOT_UPDATE. */
	char sot_names[EST_SOT_NAMES_MAX][EST_NAME_MAX]; /* lowercased basenames */
	size_t n_sot_names;
	int sot_context[EST_CTX_COUNT];
	int sot_write_per_entry;
	double sot_consistency;
	double sot_confidence;

	/* DOC_SYNTHESIS. */
	int syn_investigate[EST_CTX_COUNT];
	int syn_api;
	int syn_examples;
	int syn_write_per_doc;
	double syn_coordination;
	int syn_coordination_min_docs;
	double syn_confidence;

	/* Budget selection. Categories are first mapped through budget_alias. */
	struct est_alias budget_alias[EST_ALIAS_MAX];
	size_t n_budget_alias;
	int floor_docs[EST_CPLX_COUNT];
	int floor_tests[EST_CPLX_COUNT];
	int floor_other[EST_CPLX_COUNT];
	double buffer;                /* base buffer */
	double buffer_low_confidence; /* when confidence < low_confidence_below */
	double low_confidence_below;
	double buffer_many_deliverables; /* when deliverable_count >= many_deliverables */
	int many_deliverables;
	double buffer_high_risk;         /* a high_risk category at high complexity */
	char high_risk[4][EST_NAME_MAX]; /* after budget_alias */
	size_t n_high_risk;
	double buffer_doc_model; /* doc_synthesis and doc_sot_update: exactly this */
	int cap;                 /* no budget or max_tokens above this */

	/* Final max_tokens. */
	int full_file_floor;      /* floor for full-file output, docs exempt below it */
	int nonpositive_fallback; /* a max_tokens <= 0 becomes this */
	double escalation_factor; /* truncation retry: budget × this, capped */
};

struct est_input {
	char *const *deliverables;
	size_t n_deliverables;
	const char *category;   /* nullable: inferred from the deliverables */
	const char *complexity; /* nullable: "medium" */
	char *const *scope_paths;
	size_t n_scope_paths;
	const char *description; /* nullable */
};

/* What the estimate found at a deliverable's path under the workspace, so that later
 * readers of the same path (the v2 event, the prompt) need not look again. */
enum est_seen_state {
	EST_SEEN_NOT_LOOKED = 0, /* no look (not the overhead model, a blank text, a path that
	                            could leave the workspace, an index past EST_SEEN_MAX) */
	EST_SEEN_ABSENT,         /* the look failed with ENOENT or ENOTDIR */
	EST_SEEN_PRESENT,        /* something is there (est_open_under opened it) */
	EST_SEEN_ERROR,          /* the look failed otherwise (a link out of the workspace) */
};

struct est_seen {
	enum est_seen_state state;
	bool verbatim; /* the text is the path itself: the look was at "workspace/text" */
	int64_t bytes; /* the size of a regular file found there; else -1 */
	int cls;       /* the path's est_classify by the estimate that looked, or -1 */
};

#define EST_SEEN_MAX 20 /* deliverables, by index, whose look est_output keeps */

struct est_output {
	int estimate; /* predicted output tokens */
	enum est_model model;
	char category[EST_NAME_MAX];   /* effective category (doc_synthesis, doc_sot_update, ...) */
	char complexity[EST_NAME_MAX]; /* normalised: low|medium|high */
	enum est_cplx cplx;
	double confidence;
	int deliverable_count;
	int overhead;                /* overhead row used (overhead model), else 0 */
	int marginal;                /* Σ marginal (overhead model), else 0 */
	int doc_features;            /* enum doc_feature bits; -1 when the phase is not pure doc */
	const char *context_quality; /* "none"|"some"|"strong"; NULL when not pure doc */
	char sot_file_name[128];     /* "" unless the SOT model was chosen */
	int sot_entry_count_hint;    /* -1 unless the SOT model was chosen */
	struct est_seen seen[EST_SEEN_MAX]; /* by deliverable index */
};

/* One calibrated overhead row, as a job or a stored coefficient set gives it. */
struct est_coef_row {
	const char *category;
	const char *complexity;
	int64_t overhead;
};

/* Fill `c` with the default coefficients (version 1). */
void est_coefs_default(struct est_coefs *c);

/* Apply calibrated overhead rows from the wire on top of `c` (names are matched after the
 * overhead aliases, so a "tests" row replaces the shared "testing" row) and set its
 * version. Returns 0, or -1 with `err` naming the first bad row (nothing is changed). */
int est_coefs_apply(struct est_coefs *c, const struct est_coef_row *rows, size_t n,
    uint64_t version, char *err, size_t errlen);

/* Copy `s` lowercased and trimmed into out (size n), as names are matched; a longer name
 * is cut before the first character that does not fit whole. */
void est_name_normalise(const char *s, char *out, size_t n);
/* Copy `s` into out (size n) as it is; a longer text is cut before the first character
 * that does not fit whole, so that text of valid UTF-8 stays valid UTF-8. */
void est_name_copy(char *out, const char *s, size_t n);
/* The complexity of a name: low, medium or high; anything else is medium. */
enum est_cplx est_cplx_of(const char *s);

/* --- estimator_fit.c --- */

/* Solve (A + λD)w = b for the p×p symmetric matrix a (row-major), D the identity but
 * 0 for the intercept (index 0), by Cholesky. Returns 0, or -1 when the matrix is not
 * positive definite (w unchanged). */
int est_ridge_solve(const double *a, const double *b, size_t p, double lambda, double *w);
/* The conformal factor exp(r_(k)) with k = ⌈(n + 1) × coverage⌉ clamped to 1..n, of n
 * residuals (reordered in place); 1 for none. */
double est_conformal_factor(double *residuals, size_t n, double coverage);
/* Fit the model on n samples: the ridge weights with `lambda`, then the conformal factor
 * of `coverage` from the leave-one-out residuals ln(actual) − ln(prediction without the
 * sample, each from the fit on all and the sample's leverage). Returns 0 with f active,
 * or -1 with err (fewer than two samples, a non-positive actual, singular equations). */
int est_fit_train(const struct est_fit_obs *obs, size_t n, double lambda, double coverage,
    struct est_fit *f, char *err, size_t errlen);
/* A fit kept to give each fit without one of its observations in O(n), for
 * leave-one-out evaluation. */
struct est_loo;
/* The fit on all n observations as est_fit_train makes it, kept; NULL with err when
 * est_fit_train would fail. */
struct est_loo *est_loo_new(const struct est_fit_obs *obs, size_t n, double lambda, double coverage,
    char *err, size_t errlen);
/* The fit on all observations. */
const struct est_fit *est_loo_fit(const struct est_loo *L);
/* Set f to the fit on every observation but i, as est_fit_train on the other n − 1 gives
 * it (to rounding: a category left without observations keeps a weight of about 0,
 * which predicts as no column). Returns 0, or -1 (f unchanged) when only est_fit_train
 * itself gives that fit: fewer than two would be left, another category would take a
 * column (more than EST_FIT_CATS_MAX), or its equations are near singular. */
int est_loo_without(struct est_loo *L, size_t i, struct est_fit *f);
/* How many distinct residuals est_loo_without has gathered on L, all calls together:
 * its work, at most about 2·EST_LOO_WINDOW a call when the quantile is found in the
 * first window. */
size_t est_loo_gathered(const struct est_loo *L);
/* Free a kept fit (NULL: nothing). */
void est_loo_free(struct est_loo *L);
/* w·x of a phase. */
double est_fit_log_predict(
    const struct est_fit *f, const char *category, const char *complexity, int64_t deliverables);
/* The estimate exp(w·x), rounded, at least 1. */
int est_fit_estimate(
    const struct est_fit *f, const char *category, const char *complexity, int64_t deliverables);
/* The budget min(cap, ⌈estimate × F⌉) (cap <= 0: none), at least 1. */
int est_fit_budget(const struct est_fit *f, int estimate, int cap);

/* --- estimator_json.c: the fitted model as stored and sent --- */

/* Parse a fitted model's JSON into f. Returns 0, or -1 with err naming what is wrong. */
int est_fit_from_json(const char *text, struct est_fit *f, char *err, size_t errlen);
/* The fitted model as compact JSON (heap). */
char *est_fit_to_json(const struct est_fit *f);

/* Overhead of (category, complexity) after aliasing, or the fallback. */
int est_overhead_lookup(const struct est_coefs *c, const char *category, const char *complexity);

/* Estimate one builder call. `workspace` (nullable) is where existing deliverables are
 * looked up; paths that are absolute or contain ".." are treated as not on disk. */
void est_estimate(const struct est_coefs *c, const struct est_input *in, const char *workspace,
    struct est_output *out);

/* The budget for an estimate: with a fitted model min(cap, ⌈estimate × F⌉); otherwise
 * max(floor, int(estimate × buffer)), capped. */
int est_select_budget(const struct est_coefs *c, const struct est_output *est);

/* The max_tokens for a call: `requested` (a truncation retry; 0 = none), else
 * `selected_budget`; without a fitted model raised to the full-file floor except for
 * docs-like categories below it; at least selected_budget; at most min(cap, hard_cap)
 * (hard_cap <= 0: none). */
int est_max_tokens(const struct est_coefs *c, const struct est_output *est, int selected_budget,
    int requested, int hard_cap);

/* The max_tokens for the retry after a truncated call that used `used`. */
int est_escalate(const struct est_coefs *c, int used, int hard_cap);

/* Open the relative `path` under the directory `workspace` with `flags` (O_CLOEXEC added),
 * resolving nothing out of it: a symbolic link on the way that leads out (absolute, or
 * through ".." above it) or a /proc magic link is refused (EXDEV, ELOOP), so a link a
 * check left at a deliverable's path tells nothing of the file it names. Returns the
 * descriptor, or -1 with errno. */
int est_open_under(const char *workspace, const char *path, int flags);

/* Lend est_open_under the directory `workspace` names, open as `fd`, to look under instead
 * of opening it again, until the next call (fd -1 lends none). The caller keeps `fd` and
 * `workspace` valid while lent. */
void est_workspace_lend(const char *workspace, int fd);

/* File multiplier of the file at `path` under `workspace` (est_open_under; 1.0 when it
 * cannot be read). */
double est_file_multiplier(const struct est_coefs *c, const char *workspace, const char *path);

/* What a deliverable is, for the telemetry of the next model. */
enum est_dlv_kind {
	EST_DLV_NEW,    /* a new file */
	EST_DLV_MODIFY, /* a change to an existing file */
	EST_DLV_TEST,
	EST_DLV_DOC,
};

/* The kind of a deliverable (tests and docs by path, else new or modification as the
 * marginal model decides) and the size in bytes of the file it names under the workspace
 * (-1 when there is none). */
enum est_dlv_kind est_deliverable_kind(
    const char *text, const char *category, const char *workspace, int64_t *bytes);
/* The same from what an estimate saw at the path (`seen`, not EST_SEEN_NOT_LOOKED),
 * without looking again. */
enum est_dlv_kind est_deliverable_kind_seen(
    const char *text, const char *category, const struct est_seen *seen, int64_t *bytes);
/* Name a kind: "new", "modify", "test", "doc". */
const char *est_dlv_kind_name(enum est_dlv_kind k);

/* Deliverable helpers shared with the worker. */
/* Copy the path named by a deliverable text ("Create src/a.py" → "src/a.py") into out. */
void est_deliverable_path(const char *text, char *out, size_t n);
/* True when a deliverable is documentation (under docs/ or a .md file). */
bool est_is_doc(const char *text);
/* Class of a deliverable path for the marginal model. */
enum est_class est_classify(const char *path, const char *category);

#endif
