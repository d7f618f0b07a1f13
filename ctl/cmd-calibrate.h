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
	struct calib_opts opts;
	struct store_telem_filter filter;
	const char *out_dir;
};

/* What a calibration works from, read from the database. */
struct cmd_calib_data {
	struct est_coefs current;          /* the active set, or the built-in defaults */
	struct telem_samples samples;      /* every event the filter selects */
	struct telem_sample *work;         /* copies of the clean ones (strings shared) */
	const struct telem_sample **clean; /* pointers to the copies */
	size_t n_clean;
	struct calib_coef_sets sets; /* the active set and those samples came from */
	size_t n_unknown_version;    /* clean samples whose set is unknown */
	size_t n_reexpressed;        /* clean samples moved onto the active set */
};

/* Read the active set, the samples and the sets they were estimated with; refuses
 * (exit 1) when there is no clean sample. Clean samples estimated with another known
 * set are re-expressed under the active one (calib_reexpress), so every ratio is
 * measured against what the active set predicts. 0 or an exit code. */
int cmd_calib_load(const struct cmd_ctx *ctx, struct store *st, const struct cmd_calib *c,
    struct cmd_calib_data *d);
/* Free what cmd_calib_load read. */
void cmd_calib_data_free(struct cmd_calib_data *d);
/* "all runs" or the --run-id values joined with ", " (heap). */
char *cmd_calib_runs_text(const struct cmd_calib *c);

/* calibrate --evaluate, --rollback, --list (cmd-calibrate-eval.c, cmd-calibrate-sets.c). */
int cmd_calib_evaluate(struct cmd_ctx *ctx, const struct cmd_calib *c);
int cmd_calib_rollback(struct cmd_ctx *ctx);
int cmd_calib_list(struct cmd_ctx *ctx);

#endif
