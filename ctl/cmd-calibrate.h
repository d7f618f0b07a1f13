/* Shared by the calibrate command's files (cmd-calibrate*.c). */
#ifndef AUTOPACK_CTL_CMD_CALIBRATE_H
#define AUTOPACK_CTL_CMD_CALIBRATE_H

#include "common/calib/calib.h"
#include "common/store/store_telemetry.h"
#include "ctl/cmd.h"

enum cmd_calib_mode {
	CMD_CALIB_PROPOSE,
	CMD_CALIB_APPLY,
	CMD_CALIB_ROLLBACK,
	CMD_CALIB_EVALUATE,
	CMD_CALIB_LIST,
};

/* The command line of one calibrate invocation. */
struct cmd_calib {
	enum cmd_calib_mode mode;
	bool force;                  /* --apply even when the proposal scores worse */
	struct calib_opts opts;      /* the group table */
	struct calib_eval_opts eval; /* --coverage, --folds, --repeats */
	struct store_telem_filter filter;
	const char *out_dir;
	bool out_given;      /* --out was given */
	const char *fit_opt; /* the first option given that only reading samples uses */
};

/* What a calibration works from, read from the database. */
struct cmd_calib_data {
	struct est_coefs current;         /* the active set, or the built-in defaults */
	struct telem_samples samples;     /* every event the filter selects */
	struct telem_sample *work;        /* copies (strings shared), predictions re-expressed */
	const struct telem_sample **ptrs; /* pointers to the copies */
	struct calib_fitset fs;           /* the clean and truncated ones */
	struct calib_coef_sets sets;      /* the active set and those samples came from */
	size_t n_unknown_version;         /* samples whose set is unknown */
	size_t n_reexpressed;             /* samples moved onto the active set */
};

/* A calibration computed: the fit on every clean sample, its evaluation and the group
 * figures of the active set. */
struct cmd_calib_result {
	struct est_fit fit;
	struct calib_eval eval;
	struct calib_result groups;
};

/* Read the active set, the samples and the sets they were estimated with, and select the
 * clean and truncated ones; refuses (exit 1) when there is no clean sample. Samples
 * estimated with another known set are re-expressed under the active one
 * (calib_reexpress). 0 or an exit code. */
int cmd_calib_load(const struct cmd_ctx *ctx, struct store *st, const struct cmd_calib *c,
    struct cmd_calib_data *d);
/* Free what cmd_calib_load read. */
void cmd_calib_data_free(struct cmd_calib_data *d);
/* Fit, evaluate and group; refuses (exit 1) below EST_FIT_MIN_SAMPLES clean samples.
 * 0 or an exit code. */
int cmd_calib_compute(const struct cmd_ctx *ctx, const struct cmd_calib *c,
    const struct cmd_calib_data *d, struct cmd_calib_result *res);
/* Free a computed calibration. */
void cmd_calib_result_free(struct cmd_calib_result *res);
/* Print the held-out evaluation table. */
void cmd_calib_eval_print(FILE *out, const struct cmd_calib *c, const struct cmd_calib_data *d,
    const struct cmd_calib_result *res);
/* "all runs" or the --run-id values, each as cmd_shown shows it, joined with ", " (heap). */
char *cmd_calib_runs_text(const struct cmd_calib *c);

/* calibrate --evaluate, --rollback, --list (cmd-calibrate-eval.c, cmd-calibrate-sets.c). */
int cmd_calib_evaluate(struct cmd_ctx *ctx, const struct cmd_calib *c);
int cmd_calib_rollback(struct cmd_ctx *ctx);
int cmd_calib_list(struct cmd_ctx *ctx);

#endif
