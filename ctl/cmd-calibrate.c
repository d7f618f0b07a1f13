/* calibrate: propose estimator coefficients from the telemetry (a Markdown report, a
 * JSON proposal and a plot), and with --apply store them as a new active set. */
#include "ctl/cmd-calibrate.h"
#include "common/jsondump.h"
#include "common/store/store_coef.h"
#include "common/util.h"
#include "common/numarg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
	CMD_OPT_MIN_SAMPLES = CMD_OPT_FIRST_OWN,
	CMD_OPT_THRESHOLD,
	CMD_OPT_COVERAGE,
	CMD_OPT_FOLDS,
	CMD_OPT_REPEATS,
	CMD_OPT_FORCE,
	CMD_OPT_OUT,
	CMD_OPT_RUN_ID,
	CMD_OPT_APPLY,
	CMD_OPT_ROLLBACK,
	CMD_OPT_EVALUATE,
	CMD_OPT_LIST,
};

static const struct option cmd_calib_opts[] = {
	CMD_OPTS_COMMON,
	{ "min-samples", required_argument, NULL, CMD_OPT_MIN_SAMPLES },
	{ "confidence-threshold", required_argument, NULL, CMD_OPT_THRESHOLD },
	{ "coverage", required_argument, NULL, CMD_OPT_COVERAGE },
	{ "folds", required_argument, NULL, CMD_OPT_FOLDS },
	{ "repeats", required_argument, NULL, CMD_OPT_REPEATS },
	{ "force", no_argument, NULL, CMD_OPT_FORCE },
	{ "out", required_argument, NULL, CMD_OPT_OUT },
	{ "run-id", required_argument, NULL, CMD_OPT_RUN_ID },
	{ "apply", no_argument, NULL, CMD_OPT_APPLY },
	{ "rollback", no_argument, NULL, CMD_OPT_ROLLBACK },
	{ "evaluate", no_argument, NULL, CMD_OPT_EVALUATE },
	{ "list", no_argument, NULL, CMD_OPT_LIST },
	{ NULL, 0, NULL, 0 },
};

/* The files one calibration writes. */
struct cmd_calib_files {
	char *md, *json, *svg;
	char *svg_name;       /* the plot's name as the report links it */
	FILE *json_f, *svg_f; /* made with the report, until written */
};

/* Parse a whole number from lo to hi for option `name`; 0, or an exit code. */
static int cmd_calib_int(struct cmd_ctx *ctx, const char *name, long lo, long hi, int *out)
{
	long long v;

	if (numarg_ll(optarg, &v) != 0 || v < lo || v > hi)
		return cmd_usage_error(ctx, "--%s needs a whole number from %ld to %ld, got '%s'",
		    name, lo, hi, optarg);
	*out = (int)v;
	return 0;
}

/* Parse one option of calibrate into c; 0, or an exit code after a usage error. */
static int cmd_calib_option(
    struct cmd_ctx *ctx, struct cmd_calib *c, int opt, char **ids, int *modes)
{
	if (c->fit_opt == NULL && opt != CMD_OPT_OUT && opt != CMD_OPT_FORCE && opt < CMD_OPT_APPLY)
		c->fit_opt = opt == CMD_OPT_MIN_SAMPLES ? "--min-samples" :
		    opt == CMD_OPT_THRESHOLD            ? "--confidence-threshold" :
		    opt == CMD_OPT_COVERAGE             ? "--coverage" :
		    opt == CMD_OPT_FOLDS                ? "--folds" :
		    opt == CMD_OPT_REPEATS              ? "--repeats" :
		                                          "--run-id";
	switch (opt) {
	case CMD_OPT_MIN_SAMPLES:
		return cmd_calib_int(ctx, "min-samples", 1, 1000000, &c->opts.min_samples);
	case CMD_OPT_FOLDS: return cmd_calib_int(ctx, "folds", 2, 100, &c->eval.folds);
	case CMD_OPT_REPEATS: return cmd_calib_int(ctx, "repeats", 1, 1000, &c->eval.repeats);
	case CMD_OPT_COVERAGE:
		if (numarg_double(optarg, &c->eval.coverage) != 0 ||
		    !(c->eval.coverage > 0.0 && c->eval.coverage < 1.0))
			return cmd_usage_error(ctx,
			    "--coverage needs a number between 0 and 1 (exclusive), got '%s'",
			    optarg);
		return 0;
	case CMD_OPT_FORCE: c->force = true; return 0;
	case CMD_OPT_THRESHOLD:
		if (numarg_double(optarg, &c->opts.confidence_threshold) != 0 ||
		    !(c->opts.confidence_threshold >= 0.0 && c->opts.confidence_threshold <= 1.0))
			return cmd_usage_error(ctx,
			    "--confidence-threshold needs a number from 0 "
			    "to 1, got '%s'",
			    optarg);
		return 0;
	case CMD_OPT_OUT:
		c->out_dir = optarg;
		c->out_given = true;
		return 0;
	case CMD_OPT_RUN_ID:
		ids[c->filter.n_run_ids++] = optarg;
		c->filter.run_ids = ids;
		return 0;
	default:
		c->mode = opt == CMD_OPT_APPLY ? CMD_CALIB_APPLY :
		    opt == CMD_OPT_ROLLBACK    ? CMD_CALIB_ROLLBACK :
		    opt == CMD_OPT_EVALUATE    ? CMD_CALIB_EVALUATE :
		                                 CMD_CALIB_LIST;
		(*modes)++;
		return 0;
	}
}

/* Name the user, host and program for provenance: "user@host autopack-ctl 0.1.0". */
static char *cmd_calib_who(void)
{
	struct passwd *pw = getpwuid(geteuid());
	char host[256] = "unknown-host";

	if (gethostname(host, sizeof host) != 0)
		strlcpy_ap(host, "unknown-host", sizeof host);
	host[sizeof host - 1] = '\0';
	return xasprintf(
	    "%s@%s autopack-ctl %s", pw != NULL ? pw->pw_name : "unknown", host, AUTOPACK_VERSION);
}

/* Make "<dir>/<base>.md", ".json" and ".svg", each a new file (never through a name
 * that exists: a symbolic link another user put in a shared directory under a name to
 * come was followed, and the file it named overwritten), trying <base>_2, _3, ... when
 * one exists; sets the three paths and the last two streams. Returns the open report,
 * or NULL with errno set (nothing left made). */
static FILE *cmd_calib_open_report(
    const char *dir, const char *stamp, struct cmd_calib_files *files)
{
	for (int k = 1; k < 100; k++) {
		char *base = k == 1 ? xasprintf("token_estimator_calibration_%s", stamp) :
		                      xasprintf("token_estimator_calibration_%s_%d", stamp, k);
		char *path[3] = { xasprintf("%s/%s.md", dir, base),
			xasprintf("%s/%s.json", dir, base), xasprintf("%s/%s.svg", dir, base) };
		FILE *f[3] = { NULL, NULL, NULL };
		int made = 0, err = 0;

		for (; made < 3; made++) {
			int fd = open(path[made], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

			if (fd < 0 || (f[made] = fdopen(fd, "w")) == NULL) {
				err = errno;
				if (fd >= 0)
					close(fd);
				break;
			}
		}
		if (made == 3) {
			files->md = path[0];
			files->json = path[1];
			files->svg = path[2];
			files->json_f = f[1];
			files->svg_f = f[2];
			files->svg_name = xasprintf("%s.svg", base);
			free(base);
			return f[0];
		}
		for (int m = 0; m < made; m++) {
			fclose(f[m]);
			unlink(path[m]);
		}
		for (int m = 0; m < 3; m++)
			free(path[m]);
		free(base);
		if (err != EEXIST) {
			errno = err;
			return NULL;
		}
	}
	errno = EEXIST;
	return NULL;
}

/* Write the plot into files->svg, through the stream made with the report: the active
 * set's estimate of each clean sample against the proposal's held-out one, and the
 * curves. 0 or -1 with errno. */
static int cmd_calib_write_svg(struct cmd_calib_files *files, const struct cmd_calib_data *d,
    const struct cmd_calib_result *res)
{
	struct telem_sample *cur = xcalloc(d->fs.n_clean + 1, sizeof *cur);
	const struct telem_sample **rows = xcalloc(d->fs.n_clean + 1, sizeof *rows);
	FILE *f = files->svg_f;
	int64_t budget;
	int rc = -1;

	for (size_t i = 0; i < d->fs.n_clean; i++) {
		cur[i] = *d->fs.clean[i];
		calib_set_budget(&d->current, d->fs.clean[i], &cur[i].predicted, &budget);
		rows[i] = &cur[i];
	}
	files->svg_f = NULL;
	rc = calib_svg_write(f, rows, res->eval.loo_pred, d->fs.n_clean, &res->eval,
	    "Token estimator calibration: estimates, truncation and waste");
	if (fclose(f) != 0)
		rc = -1;
	free(cur);
	free(rows);
	return rc;
}

/* Write the report, the proposal and the plot into dir; 0 or an exit code. A write that
 * fails (a full disk) removes the three files made, so that no report, proposal or plot
 * cut short is left to be read as whole. */
static int cmd_calib_write(const struct cmd_ctx *ctx, const char *dir,
    const struct cmd_calib_result *res, struct calib_meta *m, const struct cmd_calib_data *d,
    struct cmd_calib_files *files)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	const char *failed = NULL;
	json_t *j;
	FILE *f;
	int err = 0;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", &tm);
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		return cmd_fail(ctx, STORE_EINVAL, "cannot create the output directory %s: %s", dir,
		    strerror(errno));
	f = cmd_calib_open_report(dir, stamp, files);
	if (f == NULL)
		return cmd_fail(
		    ctx, STORE_EINVAL, "cannot write the report in %s: %s", dir, strerror(errno));
	m->svg_name = files->svg_name;
	calib_md_write(f, &res->groups, m);
	errno = 0;
	if (fclose(f) != 0) {
		failed = files->md;
		err = errno; /* the cause, before other calls change errno */
	}
	j = calib_json_proposal(&res->groups, m);
	errno = 0;
	if (failed == NULL &&
	    (json_dumpf_short(j, files->json_f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
	        fflush(files->json_f) != 0)) {
		failed = files->json;
		err = errno;
	}
	errno = 0;
	if (fclose(files->json_f) != 0 && failed == NULL) {
		failed = files->json;
		err = errno;
	}
	files->json_f = NULL;
	json_decref(j);
	errno = 0;
	if (failed == NULL && cmd_calib_write_svg(files, d, res) != 0) {
		failed = files->svg;
		err = errno;
	}
	if (failed == NULL)
		return 0;
	unlink(files->md);
	unlink(files->json);
	unlink(files->svg);
	return cmd_fail(ctx, STORE_EINVAL,
	    "writing %s failed: %s; the report, the proposal and the plot were removed", failed,
	    strerror(err != 0 ? err : EIO));
}

/* Free the file names, closing a stream not written. */
static void cmd_calib_files_free(struct cmd_calib_files *files)
{
	if (files->json_f != NULL)
		fclose(files->json_f);
	if (files->svg_f != NULL)
		fclose(files->svg_f);
	free(files->md);
	free(files->json);
	free(files->svg);
	free(files->svg_name);
}

/* Print the proposal: the fitted model's terms. */
static void cmd_calib_fit_print(FILE *out, const struct est_fit *f, int cap)
{
	static const char *const cplx[EST_CPLX_COUNT] = { "low", "medium", "high" };

	fprintf(out,
	    "\nProposal: ln(estimate) = %.3f%+.3f x ln(1 + deliverables) + complexity + "
	    "category (ridge, lambda %g, %zu samples)\n  complexity:",
	    f->intercept, f->w_deliverables, f->lambda, f->n_samples);
	for (int k = 0; k < EST_CPLX_COUNT; k++)
		fprintf(out, " %s %+.3f", cplx[k], f->w_cplx[k]);
	fprintf(out, "\n  category:");
	for (size_t k = 0; k < f->n_cats; k++)
		fprintf(out, "%s %s %+.3f", k > 0 ? "," : "", cmd_shown(f->cats[k]), f->w_cat[k]);
	fprintf(out,
	    "\n  budget = min(%d, ceil(estimate x F)), F = %.3f (coverage %.2f of the "
	    "leave-one-out residuals); no floors\n",
	    cap, f->factor, f->coverage);
}

/* The method the apply check compares: k-fold when it ran, else leave-one-out. */
static enum calib_method cmd_calib_check_method(const struct calib_eval *e)
{
	return e->proposed[CALIB_KFOLD].available ? CALIB_KFOLD : CALIB_LOO;
}

/* Whether the proposal's held-out truncation or waste p90 is worse than the active set's. */
static bool cmd_calib_worse(const struct calib_eval *e)
{
	enum calib_method m = cmd_calib_check_method(e);

	return e->proposed[m].truncation_rate > e->current[m].truncation_rate + 1e-12 ||
	    e->proposed[m].waste_p90 > e->current[m].waste_p90 + 1e-12;
}

/* The provenance of a set about to be stored. */
static json_t *cmd_calib_provenance(const struct cmd_calib *c, const struct cmd_calib_result *res,
    const struct calib_meta *m, const struct cmd_calib_data *d, const struct cmd_calib_files *files)
{
	json_t *versions = json_object(), *runs;
	char *who = cmd_calib_who();
	json_t *p;

	for (size_t i = 0; i < d->fs.n_clean; i++) {
		char key[32];
		json_t *v;

		if (d->fs.clean[i]->estimator_version > 0)
			snprintf(
			    key, sizeof key, "%lld", (long long)d->fs.clean[i]->estimator_version);
		else
			strlcpy_ap(key, "unknown", sizeof key);
		v = json_object_get(versions, key);
		json_object_set_new(versions, key, json_integer(v ? json_integer_value(v) + 1 : 1));
	}
	runs = json_array();
	for (size_t i = 0; i < c->filter.n_run_ids; i++)
		json_array_append_new(runs, cmd_json_text(c->filter.run_ids[i]));
	p = json_pack("{s:s, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:f, s:i, "
	              "s:i, s:b, s:o, s:o, s:o, s:o}",
	    "created_at", m->generated_at, "created_by", cmd_json_text(who), "method",
	    "autopack-ctl calibrate --apply: ridge fit and conformal budget factor",
	    "based_on_version", (json_int_t)d->current.version, "samples_used",
	    (json_int_t)d->fs.n_clean, "samples_read", (json_int_t)m->n_read, "duplicates_dropped",
	    (json_int_t)d->fs.n_duplicates, "truncated_events", (json_int_t)d->fs.n_truncated,
	    "implausible_excluded", (json_int_t)d->fs.n_implausible, "runs", runs,
	    "sample_estimator_versions", versions, "coverage", c->eval.coverage, "factor",
	    res->fit.factor, "folds", c->eval.folds, "repeats", c->eval.repeats, "forced",
	    c->force && cmd_calib_worse(&res->eval), "evaluation",
	    calib_json_evaluation(&res->eval), "report", cmd_json_text(files->md), "proposal",
	    cmd_json_text(files->json), "plot", cmd_json_text(files->svg));
	free(who);
	return p;
}

/* Refuse a proposal that scores worse than the active set unless --force; 0 or an exit
 * code. */
static int cmd_calib_check(
    const struct cmd_ctx *ctx, const struct cmd_calib *c, const struct calib_eval *e)
{
	enum calib_method m = cmd_calib_check_method(e);
	const struct calib_score *p = &e->proposed[m], *a = &e->current[m];

	if (!cmd_calib_worse(e))
		return 0;
	if (c->force) {
		fprintf(cmd_text_out(ctx),
		    "\nwarning: the proposal's held-out (%s) figures are worse than the active "
		    "set's; applied anyway (--force)\n",
		    calib_method_name(m));
		return 0;
	}
	/* To four significant digits: a difference two decimals hide (waste p90 of budgets
	 * far below their calls, 0.00x against 0.00x) is still shown as one. */
	return cmd_fail(ctx, STORE_EINVAL,
	    "the proposal is worse than the active set on held-out samples (%s): truncation "
	    "%.4g %% against %.4g %%, waste p90 %.4gx against %.4gx; nothing was applied "
	    "(--force applies it anyway)",
	    calib_method_name(m), p->truncation_rate * 100.0, a->truncation_rate * 100.0,
	    p->waste_p90, a->waste_p90);
}

/* Store the proposal as the new active set and say so; 0 or an exit code. A fit the
 * supervisor would refuse to start with (est_fit_from_json: a factor or a weight out of
 * its range, as samples another program wrote can make) is not stored, --force or not. */
static int cmd_calib_store(const struct cmd_ctx *ctx, struct store *st, const struct cmd_calib *c,
    const struct cmd_calib_result *res, const struct calib_meta *m, const struct cmd_calib_data *d,
    const struct cmd_calib_files *files, json_t *out)
{
	char *model = est_fit_to_json(&res->fit), why[256];
	struct est_fit back;
	json_t *prov;
	char *prov_text, *overhead;
	struct store_err err;
	int64_t version = 0, parent = 0;
	int rc;

	if (est_fit_from_json(model, &back, why, sizeof why) != 0) {
		free(model);
		return cmd_fail(ctx, STORE_EINVAL,
		    "the proposal cannot be applied: %s, and the supervisor would refuse to start "
		    "with it; nothing was applied",
		    why);
	}
	prov = cmd_calib_provenance(c, res, m, d, files);
	prov_text = json_dumps(prov, JSON_COMPACT | JSON_PRESERVE_ORDER);
	overhead = calib_coefs_to_json(&d->current);
	rc = store_coef_activate_new(st, overhead, model, prov_text, &version, &parent, &err);

	free(overhead);
	free(model);
	free(prov_text);
	json_decref(prov);
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	fprintf(cmd_text_out(ctx),
	    "\nestimator coefficient set version %lld is now active (parent %lld%s): the fitted "
	    "model with F = %.3f; the supervisor sends it with every job from its next start\n"
	    "undo with: autopack-ctl calibrate --rollback\n",
	    (long long)version, (long long)parent,
	    parent == STORE_COEF_BUILTIN ? ", the built-in defaults" : "", res->fit.factor);
	json_object_set_new(out, "applied",
	    json_pack("{s:I, s:I, s:f}", "version", (json_int_t)version, "parent_version",
	        (json_int_t)parent, "factor", res->fit.factor));
	return 0;
}

/* Compute, write and print the proposal, and store it with --apply. The database is
 * open (for writing with --apply). */
static int cmd_calib_run(struct cmd_ctx *ctx, struct store *st, const struct cmd_calib *c)
{
	struct cmd_calib_files files = { 0 };
	struct cmd_calib_result res = { 0 };
	struct cmd_calib_data d;
	struct calib_meta m = { 0 };
	char now[32], *runs = cmd_calib_runs_text(c);
	json_t *out = NULL;
	int ret = cmd_calib_load(ctx, st, c, &d);

	if (ret != 0)
		goto out_free;
	ret = cmd_calib_compute(ctx, c, &d, &res);
	if (ret != 0)
		goto out;
	time_iso8601(clock_wall_ms(), now);
	m = (struct calib_meta){ .generated_at = now,
		.db_url = st->url,
		.runs = runs,
		.n_read = d.samples.n,
		.current = &d.current,
		.fs = &d.fs,
		.proposal = &res.fit,
		.eval = &res.eval,
		.eo = &c->eval,
		.n_reexpressed = d.n_reexpressed,
		.n_unknown_version = d.n_unknown_version };
	ret = cmd_calib_write(ctx, c->out_dir, &res, &m, &d, &files);
	if (ret != 0)
		goto out;
	cmd_calib_fit_print(cmd_text_out(ctx), &res.fit, d.current.cap);
	cmd_calib_eval_print(cmd_text_out(ctx), c, &d, &res);
	fprintf(cmd_text_out(ctx), "\nreport:   %s\nproposal: %s\nplot:     %s\n",
	    cmd_shown(files.md), cmd_shown(files.json), cmd_shown(files.svg));
	out = json_pack("{s:b, s:o, s:{s:o, s:o, s:o}, s:n}", "ok", 1, "proposal",
	    calib_json_proposal(&res.groups, &m), "files", "report", cmd_json_text(files.md),
	    "proposal", cmd_json_text(files.json), "plot", cmd_json_text(files.svg), "applied");
	json_object_set_new(out, "evaluation", calib_json_evaluation(&res.eval));
	if (c->mode == CMD_CALIB_APPLY)
		ret = cmd_calib_check(ctx, c, &res.eval);
	if (ret == 0 && c->mode == CMD_CALIB_APPLY)
		ret = cmd_calib_store(ctx, st, c, &res, &m, &d, &files, out);
	if (ret == 0 && ctx->json) {
		json_object_set_new(out, "database", cmd_identity_json(st));
		cmd_json_print(out);
		out = NULL;
	}
out:
	json_decref(out);
	cmd_calib_result_free(&res);
	cmd_calib_files_free(&files);
	cmd_calib_data_free(&d);
out_free:
	free(runs);
	return ret;
}

/* Open the database for the mode, run the proposal, close. */
static int cmd_calib_propose(struct cmd_ctx *ctx, const struct cmd_calib *c)
{
	struct store st;
	int lock_fd = -1, ret;

	ret = c->mode == CMD_CALIB_APPLY ? cmd_open_write(ctx, &st, &lock_fd) :
	                                   cmd_open_read(ctx, &st, true);
	if (ret != 0)
		return ret;
	ret = cmd_calib_run(ctx, &st, c);
	if (c->mode == CMD_CALIB_APPLY)
		cmd_close_write(&st, lock_fd);
	else
		store_close(&st);
	return ret;
}

/* The option naming calibrate's mode, for messages. */
static const char *cmd_calib_mode_opt(enum cmd_calib_mode mode)
{
	return mode == CMD_CALIB_LIST  ? "--list" :
	    mode == CMD_CALIB_ROLLBACK ? "--rollback" :
	    mode == CMD_CALIB_EVALUATE ? "--evaluate" :
	    mode == CMD_CALIB_APPLY    ? "--apply" :
	                                 "";
}

/* 0 when every option given is used by the mode, else a usage error (exit 2) naming the
 * option the mode would ignore: --out by the modes that write no file, the sample
 * options by those that read no sample. */
static int cmd_calib_mode_check(const struct cmd_ctx *ctx, const struct cmd_calib *c)
{
	bool no_samples = c->mode == CMD_CALIB_LIST || c->mode == CMD_CALIB_ROLLBACK;

	if (c->out_given && (no_samples || c->mode == CMD_CALIB_EVALUATE))
		return cmd_usage_error(ctx,
		    "--out does not go with %s, which writes no file: --out names the directory "
		    "of a proposal's report (calibrate, calibrate --apply)",
		    cmd_calib_mode_opt(c->mode));
	if (c->fit_opt != NULL && no_samples)
		return cmd_usage_error(ctx,
		    "%s does not go with %s, which reads no telemetry sample: it shapes a "
		    "proposal (calibrate, --apply, --evaluate)",
		    c->fit_opt, cmd_calib_mode_opt(c->mode));
	return 0;
}

/* calibrate: parse, then propose, apply, roll back, evaluate or list. */
static int cmd_calibrate_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_calib c = {
		.mode = CMD_CALIB_PROPOSE,
		.opts = { CALIB_DEFAULT_MIN_SAMPLES, CALIB_DEFAULT_THRESHOLD },
		.eval = { EST_FIT_COVERAGE, CALIB_DEFAULT_FOLDS, CALIB_DEFAULT_REPEATS },
		.out_dir = ".",
	};
	char **ids = xcalloc((size_t)argc + 1, sizeof *ids);
	int opt, modes = 0, ret = CMD_EXIT_OK;

	while ((opt = cmd_getopt(ctx, argc, argv, cmd_calib_opts, &ret)) != -1) {
		if (opt == CMD_OPT_DONE)
			goto out;
		ret = cmd_calib_option(ctx, &c, opt, ids, &modes);
		if (ret != 0)
			goto out;
	}
	if (optind != argc)
		ret = cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	else if (modes > 1)
		ret = cmd_usage_error(ctx,
		    "--apply, --rollback, --evaluate and --list exclude "
		    "one another");
	else if (c.force && c.mode != CMD_CALIB_APPLY)
		ret = cmd_usage_error(ctx, "--force goes with --apply");
	else if (c.out_dir[0] == '\0')
		ret = cmd_usage_error(ctx, "--out needs a directory");
	else
		ret = cmd_calib_mode_check(ctx, &c);
	if (ret != 0)
		goto out;
	if (c.mode == CMD_CALIB_ROLLBACK)
		ret = cmd_calib_rollback(ctx);
	else if (c.mode == CMD_CALIB_LIST)
		ret = cmd_calib_list(ctx);
	else if (c.mode == CMD_CALIB_EVALUATE)
		ret = cmd_calib_evaluate(ctx, &c);
	else
		ret = cmd_calib_propose(ctx, &c);
out:
	free(ids);
	return ret;
}

const struct cmd_entry cmd_calibrate_entry = {
	.name = "calibrate",
	.args = "[--apply [--force] | --evaluate | --rollback | --list] [--coverage T]\n"
	        "       [--folds K] [--repeats R] [--min-samples N] [--confidence-threshold X]\n"
	        "       [--run-id R]... [--out DIR] [--json]",
	.summary = "fit the token estimator to the recorded telemetry and evaluate it held out",
	.help =
	    "Fits the token estimator to the clean token_estimation_v2 samples (success, not\n"
	    "truncated, actual >= 50; one per attempt; exact duplicates dropped; at least 20):\n"
	    "ln(actual) = w.x with x = [1, category one-hot, complexity one-hot,\n"
	    "ln(1 + deliverables)], ridge regression with lambda 1. The budget is\n"
	    "min(cap, ceil(estimate x F)) with F the conformal factor: the ceil((n+1) x T)-th\n"
	    "smallest leave-one-out residual, exponentiated, so about a fraction T of new calls\n"
	    "fit in their budget. The active set and the proposal are scored on held-out\n"
	    "samples: leave-one-out, --folds x --repeats k-fold with fixed seeds, and\n"
	    "leave-one-run-out when three runs have ten clean samples. Writes\n"
	    "token_estimator_calibration_<UTC stamp>.md (the report), .json (the proposal) and\n"
	    ".svg (estimates; truncation against waste by budget factor) in --out.\n"
	    "See docs/calibration.md.\n"
	    "\n"
	    "  --apply           also store the proposal as a new, versioned coefficient set and\n"
	    "                    make it active (with its provenance); refused when its k-fold\n"
	    "                    truncation rate or waste p90 is worse than the active set's.\n"
	    "                    Refused while a supervisor runs.\n"
	    "  --force           with --apply: store it even when it scores worse\n"
	    "  --rollback        make the active set's parent active again (version 1: the\n"
	    "                    built-in defaults)\n"
	    "  --evaluate        only the held-out figures of the active set and the proposal\n"
	    "  --list            the stored coefficient sets and which one is active\n"
	    "                    (--list and --rollback take no --out and no option of the\n"
	    "                    samples; --evaluate takes no --out: refused, exit 2)\n"
	    "  --coverage T      the share of calls the budget should hold, 0 < T < 1\n"
	    "                    (default 0.95)\n"
	    "  --folds K         k-fold folds (default 5)\n"
	    "  --repeats R       k-fold repeats, seeds 1..R (default 20)\n"
	    "  --min-samples N   samples a group needs in the group table (default 5)\n"
	    "  --confidence-threshold X  confidence a group needs to be high-confidence in the\n"
	    "                    group table (default 0.7)\n"
	    "  --run-id R        only samples of run R (repeatable)\n"
	    "  --out DIR         where the report, proposal and plot go (default .)\n"
	    "  --json            the result as JSON on stdout (the banner goes to stderr);\n"
	    "                    evaluation.<current|proposed>.<loo|kfold|lorun> holds\n"
	    "                    smape_median, smape_mean, truncation_rate, waste_p50,\n"
	    "                    waste_p90 and n (null when the method could not run)\n"
	    "\n"
	    "Exit status: 0 done; 1 refused (too few clean samples, a proposal worse than the\n"
	    "active set, nothing to roll back, database held by a supervisor); 2 unusable\n"
	    "database or usage.\n",
	.exec = cmd_calibrate_exec,
};
