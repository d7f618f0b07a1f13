/* calibrate: propose estimator coefficients from the telemetry (a Markdown report, a
 * JSON proposal and a plot), and with --apply store them as a new active set. */
#include "ctl/cmd-calibrate.h"
#include "common/store/store_coef.h"
#include "common/util.h"

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
	CMD_OPT_DAMPING,
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
	{ "damping", required_argument, NULL, CMD_OPT_DAMPING },
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
	char *svg_name; /* the plot's name as the report links it */
};

/* Parse one option of calibrate into c; 0, or an exit code after a usage error. */
static int cmd_calib_option(
    struct cmd_ctx *ctx, struct cmd_calib *c, int opt, char **ids, int *modes)
{
	char *end;

	switch (opt) {
	case CMD_OPT_MIN_SAMPLES: {
		long v = strtol(optarg, &end, 10);

		if (*end != '\0' || end == optarg || v < 1 || v > 1000000)
			return cmd_usage_error(ctx,
			    "--min-samples needs a whole number from 1, "
			    "got '%s'",
			    optarg);
		c->opts.min_samples = (int)v;
		return 0;
	}
	case CMD_OPT_THRESHOLD:
		c->opts.confidence_threshold = strtod(optarg, &end);
		if (*end != '\0' || end == optarg ||
		    !(c->opts.confidence_threshold >= 0.0 && c->opts.confidence_threshold <= 1.0))
			return cmd_usage_error(ctx,
			    "--confidence-threshold needs a number from 0 "
			    "to 1, got '%s'",
			    optarg);
		return 0;
	case CMD_OPT_DAMPING:
		if (calib_damping_parse(optarg, &c->opts.damping) != 0)
			return cmd_usage_error(ctx, "--damping is sqrt or none, got '%s'", optarg);
		return 0;
	case CMD_OPT_OUT: c->out_dir = optarg; return 0;
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

/* Open "<dir>/<base>.md" exclusively, trying <base>_2, _3, ... when it exists; sets the
 * three paths. Returns the open report or NULL with errno set. */
static FILE *cmd_calib_open_report(
    const char *dir, const char *stamp, struct cmd_calib_files *files)
{
	for (int k = 1; k < 100; k++) {
		char *base = k == 1 ? xasprintf("token_estimator_calibration_%s", stamp) :
		                      xasprintf("token_estimator_calibration_%s_%d", stamp, k);
		int fd;

		files->md = xasprintf("%s/%s.md", dir, base);
		fd = open(files->md, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			files->json = xasprintf("%s/%s.json", dir, base);
			files->svg = xasprintf("%s/%s.svg", dir, base);
			files->svg_name = xasprintf("%s.svg", base);
			free(base);
			return fdopen(fd, "w");
		}
		free(base);
		free(files->md);
		files->md = NULL;
		if (errno != EEXIST)
			return NULL;
	}
	errno = EEXIST;
	return NULL;
}

/* Write the plot to files->svg; 0 or -1 with errno. */
static int cmd_calib_write_svg(
    const struct cmd_calib_files *files, const struct cmd_calib_data *d, const int64_t *after)
{
	FILE *f = fopen(files->svg, "w");
	int rc;

	if (f == NULL)
		return -1;
	rc = calib_svg_write(f, d->clean, after, d->n_clean,
	    "Token estimator calibration: predicted vs actual output tokens");
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

/* Write the report, the proposal and the plot into dir; 0 or an exit code. */
static int cmd_calib_write(const struct cmd_ctx *ctx, const char *dir, const struct calib_result *r,
    struct calib_meta *m, const struct cmd_calib_data *d, const int64_t *after,
    struct cmd_calib_files *files)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	json_t *j;
	FILE *f;
	int rc;

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
	calib_md_write(f, r, m);
	rc = fclose(f);
	j = calib_json_proposal(r, m);
	if (rc == 0 &&
	    json_dump_file(j, files->json,
	        JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) != 0)
		rc = -1;
	json_decref(j);
	if (rc == 0)
		rc = cmd_calib_write_svg(files, d, after);
	if (rc != 0)
		return cmd_fail(ctx, STORE_EINVAL,
		    "writing the calibration outputs in %s failed: "
		    "%s",
		    dir, strerror(errno));
	return 0;
}

/* Free the file names. */
static void cmd_calib_files_free(struct cmd_calib_files *files)
{
	free(files->md);
	free(files->json);
	free(files->svg);
	free(files->svg_name);
}

/* Print the groups, the cost table, the groups short of samples and the in-sample
 * effect. */
static void cmd_calib_print(FILE *out, const struct calib_result *r, const struct calib_meta *m)
{
	fprintf(out,
	    "\nCalibration on %zu clean samples (success, not truncated, actual >= %d) "
	    "of %zu read; %s\nactive coefficient set: version %llu%s\noptions: min samples %d, "
	    "confidence threshold %.2f, damping %s\n\n",
	    r->n_clean, TELEM_CLEAN_MIN_ACTUAL, m->n_read, m->runs,
	    (unsigned long long)m->current_version,
	    m->current_version == STORE_COEF_BUILTIN ? " (built-in defaults)" : "",
	    r->opts.min_samples, r->opts.confidence_threshold, calib_damping_name(r->opts.damping));
	fprintf(out, "  %-28s %4s %12s %10s  %-24s %s\n", "group", "n", "median ratio",
	    "confidence", "status", "overhead");
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];
		char name[96];

		if (g->status == CALIB_BELOW_MIN)
			continue;
		snprintf(name, sizeof name, "%s/%s", g->category, g->complexity);
		fprintf(out, "  %-28s %4zu %11.2fx %9.1f%%  %-24s", name, g->n, g->median_ratio,
		    g->confidence * 100, calib_status_name(g->status));
		if (g->status == CALIB_PROPOSED)
			fprintf(out, " %d -> %d", g->old_overhead, g->new_overhead);
		fputc('\n', out);
	}
	fprintf(out,
	    "\nCost: budget waste = (actual_max_tokens or selected_budget) / actual\n"
	    "  %-28s %7s %7s %11s %11s\n",
	    "group", "median", "p90", "avg budget", "avg actual");
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];
		char name[96];

		if (g->status == CALIB_BELOW_MIN)
			continue;
		snprintf(name, sizeof name, "%s/%s", g->category, g->complexity);
		fprintf(out, "  %-28s %6.2fx %6.2fx %11.0f %11.0f\n", name, g->waste_median,
		    g->waste_p90, g->avg_selected_budget, g->avg_actual);
	}
	if (m->n_reexpressed > 0)
		fprintf(out,
		    "%zu samples estimated with older coefficient sets were re-expressed "
		    "under set %llu (marginal part recovered, overhead replaced)\n",
		    m->n_reexpressed, (unsigned long long)m->current_version);
	if (m->n_unknown_version > 0)
		fprintf(out,
		    "%zu samples carry no known coefficient set (imported): their "
		    "recorded predictions are used as they are\n",
		    m->n_unknown_version);
	if (r->n_with_max_tokens * 5 < r->n_clean * 4)
		fprintf(out,
		    "warning: only %zu of %zu samples carry actual_max_tokens; their "
		    "budget waste uses selected_budget\n",
		    r->n_with_max_tokens, r->n_clean);
	fprintf(out, "\nGroups short of samples (fewer than %d):", r->opts.min_samples);
	for (size_t i = 0, k = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		if (g->status == CALIB_BELOW_MIN)
			fprintf(out, "%s %s/%s %zu (%zu more)", k++ ? "," : "", g->category,
			    g->complexity, g->n, (size_t)r->opts.min_samples - g->n);
	}
	if (r->n_eligible == r->n_groups)
		fprintf(out, " none");
	fputc('\n', out);
	if (m->in_before != NULL)
		fprintf(out,
		    "\nIn-sample effect (fitted and scored on the same samples; "
		    "--evaluate holds each one out): SMAPE mean %.1f %% -> %.1f %%, waste p90 "
		    "%.2fx -> %.2fx, underestimation %.1f %% -> %.1f %%\n",
		    m->in_before->smape_mean, m->in_after->smape_mean, m->in_before->waste_p90,
		    m->in_after->waste_p90, m->in_before->under_pct, m->in_after->under_pct);
}

/* The provenance of a set about to be stored. */
static json_t *cmd_calib_provenance(const struct cmd_calib *c, const struct calib_result *r,
    const struct calib_meta *m, const struct cmd_calib_data *d, const struct cmd_calib_files *files)
{
	json_t *versions = json_object(), *runs;
	char *who = cmd_calib_who();
	json_t *p;

	for (size_t i = 0; i < d->n_clean; i++) {
		char key[32];
		json_t *v;

		if (d->clean[i]->estimator_version > 0)
			snprintf(
			    key, sizeof key, "%lld", (long long)d->clean[i]->estimator_version);
		else
			strlcpy_ap(key, "unknown", sizeof key);
		v = json_object_get(versions, key);
		json_object_set_new(versions, key, json_integer(v ? json_integer_value(v) + 1 : 1));
	}
	runs = json_array();
	for (size_t i = 0; i < c->filter.n_run_ids; i++)
		json_array_append_new(runs, json_string(c->filter.run_ids[i]));
	p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:i, s:f, s:s, s:o, s:s, "
	              "s:s, s:s}",
	    "created_at", m->generated_at, "created_by", who, "method",
	    "autopack-ctl calibrate --apply", "based_on_version", (json_int_t)m->current_version,
	    "samples_used", (json_int_t)r->n_clean, "samples_read", (json_int_t)m->n_read,
	    "samples_reexpressed", (json_int_t)m->n_reexpressed, "runs", runs,
	    "sample_estimator_versions", versions, "min_samples", r->opts.min_samples,
	    "confidence_threshold", r->opts.confidence_threshold, "damping",
	    calib_damping_name(r->opts.damping), "changes", calib_json_changes(r), "report",
	    files->md, "proposal", files->json, "plot", files->svg);
	free(who);
	return p;
}

/* Store the proposal as the new active set and say so; 0 or an exit code. */
static int cmd_calib_store(const struct cmd_ctx *ctx, struct store *st, const struct cmd_calib *c,
    const struct calib_result *r, const struct calib_meta *m, const struct cmd_calib_data *d,
    const struct est_coefs *proposed, const struct cmd_calib_files *files, json_t *out)
{
	json_t *prov = cmd_calib_provenance(c, r, m, d, files);
	char *prov_text = json_dumps(prov, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *overhead = calib_coefs_to_json(proposed);
	struct store_err err;
	int64_t version = 0, parent = 0;
	int rc = store_coef_activate_new(st, overhead, prov_text, &version, &parent, &err);

	free(overhead);
	free(prov_text);
	json_decref(prov);
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	fprintf(cmd_text_out(ctx),
	    "\nestimator coefficient set version %lld is now active "
	    "(parent %lld%s); the supervisor sends it with every job from its next start:\n",
	    (long long)version, (long long)parent,
	    parent == STORE_COEF_BUILTIN ? ", the built-in defaults" : "");
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		if (g->status == CALIB_PROPOSED)
			fprintf(cmd_text_out(ctx),
			    "  overhead %s/%s: %d -> %d (%zu samples, "
			    "median ratio %.2f, %s damping)\n",
			    g->row_category, g->row_complexity, g->old_overhead, g->new_overhead,
			    g->n, g->median_ratio, calib_damping_name(r->opts.damping));
	}
	fprintf(cmd_text_out(ctx), "undo with: autopack-ctl calibrate --rollback\n");
	json_object_set_new(out, "applied",
	    json_pack("{s:I, s:I}", "version", (json_int_t)version, "parent_version",
	        (json_int_t)parent));
	return 0;
}

/* Score the clean samples before and after the proposal, in sample. */
static int64_t *cmd_calib_in_sample(const struct calib_result *r, const struct cmd_calib_data *d,
    const struct est_coefs *proposed, struct telem_metrics *before, struct telem_metrics *after)
{
	int64_t *pred = xcalloc(d->n_clean + 1, sizeof *pred);
	struct telem_sample *moved = xcalloc(d->n_clean + 1, sizeof *moved);
	const struct telem_sample **rows = xcalloc(d->n_clean + 1, sizeof *rows);
	enum calib_pred_how how;

	for (size_t i = 0; i < d->n_clean; i++) {
		pred[i] = calib_predict(r, d->clean[i], proposed,
		    calib_coef_sets_find(&d->sets, d->clean[i]->estimator_version), &how);
		moved[i] = *d->clean[i];
		moved[i].predicted = pred[i];
		rows[i] = &moved[i];
	}
	telem_metrics_compute(d->clean, d->n_clean, 1.0, before);
	telem_metrics_compute(rows, d->n_clean, 1.0, after);
	free(moved);
	free(rows);
	return pred;
}

/* Compute, write and print the proposal, and store it with --apply. The database is
 * open (for writing with --apply). */
static int cmd_calib_run(struct cmd_ctx *ctx, struct store *st, const struct cmd_calib *c)
{
	struct cmd_calib_files files = { 0 };
	struct telem_metrics before, after;
	struct est_coefs *proposed = xmalloc(sizeof *proposed);
	struct cmd_calib_data d;
	struct calib_result r = { 0 };
	struct calib_meta m = { 0 };
	char now[32], msg[256], *runs = cmd_calib_runs_text(c);
	int64_t *pred = NULL;
	json_t *out = NULL;
	int ret = cmd_calib_load(ctx, st, c, &d);

	if (ret != 0)
		goto out_free;
	time_iso8601(clock_wall_ms(), now);
	m = (struct calib_meta){ .generated_at = now,
		.db_url = st->url,
		.runs = runs,
		.n_read = d.samples.n,
		.current_version = d.current.version,
		.n_reexpressed = d.n_reexpressed,
		.n_unknown_version = d.n_unknown_version,
		.in_before = &before,
		.in_after = &after };
	calib_compute(d.clean, d.n_clean, &c->opts, &r);
	if (r.n_eligible == 0) {
		m.in_before = NULL;
		cmd_calib_print(cmd_text_out(ctx), &r, &m);
		ret = cmd_fail(ctx, STORE_EINVAL,
		    "no (category, complexity) group has %d clean "
		    "samples (--min-samples); nothing to calibrate",
		    c->opts.min_samples);
		goto out;
	}
	if (calib_propose(&r, &d.current, proposed, msg, sizeof msg) != 0) {
		ret = cmd_fail(ctx, STORE_EINVAL, "cannot build the proposal: %s", msg);
		goto out;
	}
	pred = cmd_calib_in_sample(&r, &d, proposed, &before, &after);
	ret = cmd_calib_write(ctx, c->out_dir, &r, &m, &d, pred, &files);
	if (ret != 0)
		goto out;
	cmd_calib_print(cmd_text_out(ctx), &r, &m);
	fprintf(cmd_text_out(ctx), "\nreport:   %s\nproposal: %s\nplot:     %s\n", files.md,
	    files.json, files.svg);
	out = json_pack("{s:b, s:o, s:{s:s, s:s, s:s}, s:n}", "ok", 1, "proposal",
	    calib_json_proposal(&r, &m), "files", "report", files.md, "proposal", files.json,
	    "plot", files.svg, "applied");
	if (c->mode == CMD_CALIB_APPLY && r.n_proposed == 0)
		ret = cmd_fail(ctx, STORE_EINVAL,
		    "no group reached confidence %.2f with an "
		    "overhead row to change; nothing was applied (the report says why)",
		    c->opts.confidence_threshold);
	else if (c->mode == CMD_CALIB_APPLY)
		ret = cmd_calib_store(ctx, st, c, &r, &m, &d, proposed, &files, out);
	if (ret == 0 && ctx->json) {
		json_object_set_new(out, "database", cmd_identity_json(st));
		cmd_json_print(out);
		out = NULL;
	}
out:
	json_decref(out);
	free(pred);
	calib_result_free(&r);
	cmd_calib_files_free(&files);
	cmd_calib_data_free(&d);
out_free:
	free(runs);
	free(proposed);
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

/* calibrate: parse, then propose, apply, roll back, evaluate or list. */
static int cmd_calibrate_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_calib c = {
		.mode = CMD_CALIB_PROPOSE,
		.opts = { CALIB_DEFAULT_MIN_SAMPLES, CALIB_DEFAULT_THRESHOLD, CALIB_DAMP_SQRT },
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
	else if (c.out_dir[0] == '\0')
		ret = cmd_usage_error(ctx, "--out needs a directory");
	else if (c.mode == CMD_CALIB_ROLLBACK)
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
	.args = "[--apply [--damping sqrt|none] | --evaluate | --rollback | --list]\n"
	        "       [--min-samples N] [--confidence-threshold X] [--run-id R]... [--out DIR] "
	        "[--json]",
	.summary = "calibrate the token estimator from the recorded telemetry",
	.help =
	    "Groups the clean token_estimation_v2 samples (success, not truncated, actual >= 50)\n"
	    "by category and complexity. For each group with --min-samples samples: the ratio\n"
	    "actual ÷ predicted (median = upper median), confidence = 0.6 × min(1, n/12) +\n"
	    "0.4 / (1 + σ), budget waste = (actual_max_tokens or selected_budget) ÷ actual.\n"
	    "Groups at or above --confidence-threshold propose multiplying their overhead row\n"
	    "by the median ratio (damped: --damping sqrt, the default, multiplies by its square\n"
	    "root). Writes token_estimator_calibration_<UTC stamp>.md (the report), .json (the\n"
	    "proposal) and .svg (predicted vs actual per category, before and after) in --out.\n"
	    "\n"
	    "  --apply           also store the proposal as a new, versioned coefficient set and\n"
	    "                    make it active (with its provenance); the supervisor sends the\n"
	    "                    active set with every job. Refused while a supervisor runs.\n"
	    "  --rollback        make the active set's parent active again (version 1: the\n"
	    "                    built-in defaults)\n"
	    "  --evaluate        leave-one-out: predict each clean sample from a proposal\n"
	    "                    fitted on the others; SMAPE, waste and underestimation before\n"
	    "                    and after\n"
	    "  --list            the stored coefficient sets and which one is active\n"
	    "  --min-samples N   samples a group needs (default 5)\n"
	    "  --confidence-threshold X  confidence a group needs to change (default 0.7)\n"
	    "  --damping D       sqrt (default) or none\n"
	    "  --run-id R        only samples of run R (repeatable)\n"
	    "  --out DIR         where the report, proposal and plot go (default .)\n"
	    "  --json            the result as JSON on stdout (the banner goes to stderr)\n"
	    "\n"
	    "Exit status: 0 done; 1 refused (no clean samples, no group with enough samples,\n"
	    "nothing to apply or roll back, database held by a supervisor); 2 unusable database\n"
	    "or usage.\n",
	.exec = cmd_calibrate_exec,
};
