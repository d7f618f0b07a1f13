/* The telemetry commands: telemetry report, telemetry import, telemetry export. */
#include "ctl/cmd.h"
#include "common/jsondump.h"
#include "common/store/store_telemetry.h"
#include "common/calib/calib.h"
#include "common/calib/telemetry.h"
#include "common/util.h"
#include "common/numarg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	CMD_OPT_RUN_ID = CMD_OPT_FIRST_OWN,
	CMD_OPT_SUCCESS_ONLY,
	CMD_OPT_STRATIFY,
	CMD_OPT_UNDER,
	CMD_OPT_OUT,
};

static const struct option cmd_telem_report_opts[] = {
	CMD_OPTS_COMMON,
	{ "run-id", required_argument, NULL, CMD_OPT_RUN_ID },
	{ "success-only", no_argument, NULL, CMD_OPT_SUCCESS_ONLY },
	{ "stratify", no_argument, NULL, CMD_OPT_STRATIFY },
	{ "under-multiplier", required_argument, NULL, CMD_OPT_UNDER },
	{ NULL, 0, NULL, 0 },
};

static const struct option cmd_telem_import_opts[] = {
	CMD_OPTS_COMMON,
	{ "run-id", required_argument, NULL, CMD_OPT_RUN_ID },
	{ NULL, 0, NULL, 0 },
};

static const struct option cmd_telem_export_opts[] = {
	CMD_OPTS_COMMON,
	{ "run-id", required_argument, NULL, CMD_OPT_RUN_ID },
	{ "out", required_argument, NULL, CMD_OPT_OUT },
	{ NULL, 0, NULL, 0 },
};

/* The run ids a command was given, as a JSON array (an id that is not UTF-8 with each
 * such byte as U+FFFD, cmd_json_text: never left out), or null for all runs. */
static json_t *cmd_telem_runs_json(const struct store_telem_filter *f)
{
	json_t *a;

	if (f->n_run_ids == 0)
		return json_null();
	a = json_array();
	for (size_t i = 0; i < f->n_run_ids; i++)
		json_array_append_new(a, cmd_json_text(f->run_ids[i]));
	return a;
}

/* One set of metrics as JSON. */
static json_t *cmd_telem_metrics_json(const struct telem_metrics *m)
{
	return json_pack("{s:I, s:{s:f, s:I, s:b}, s:{s:f, s:I, s:b}, s:{s:f, s:I}, "
	                 "s:{s:I, s:f, s:f, s:f, s:b}, s:{s:I, s:f, s:f, s:f, s:f}, "
	                 "s:{s:f, s:f, s:f, s:f}, s:{s:I, s:f, s:f, s:f}, s:b}",
	    "samples", (json_int_t)m->n, "underestimation", "pct", m->under_pct, "count",
	    (json_int_t)m->underestimated, "above_target", m->under_above_target, "truncation",
	    "pct", m->trunc_pct, "count", (json_int_t)m->truncated, "above_target",
	    m->trunc_above_target, "success", "pct", m->success_pct, "count",
	    (json_int_t)m->success, "waste", "samples", (json_int_t)m->n_waste, "median",
	    m->waste_median, "mean", m->waste_mean, "p90", m->waste_p90, "p90_above_target",
	    m->waste_above_target, "smape", "samples", (json_int_t)m->n_smape, "mean",
	    m->smape_mean, "median", m->smape_median, "min", m->smape_min, "max", m->smape_max,
	    "tokens", "predicted_mean", m->predicted_mean, "predicted_median", m->predicted_median,
	    "actual_mean", m->actual_mean, "actual_median", m->actual_median,
	    "truncated_lower_bounds", "samples", (json_int_t)m->truncated, "predicted_mean",
	    m->trunc_predicted_mean, "actual_mean_lower_bound", m->trunc_actual_mean,
	    "underestimated_pct", m->trunc_under_pct, "tuning_needed", m->tuning_needed);
}

/* The whole report as JSON. */
static json_t *cmd_telem_report_json(const struct telem_report *r,
    const struct telem_report_opts *o, const struct store_telem_filter *f)
{
	json_t *strata = json_object();
	json_t *j = json_pack(
	    "{s:b, s:{s:b, s:o, s:f}, s:I, s:I, s:o, s:s, s:{s:f, s:f, s:f}, s:o, s:b}", "ok", 1,
	    "filter", "success_only", o->success_only, "run_ids", cmd_telem_runs_json(f),
	    "under_multiplier", r->under_multiplier, "samples_read", (json_int_t)r->n_read,
	    "implausible_excluded", (json_int_t)r->n_implausible, "implausible_events",
	    calib_json_implausible(r->implausible, r->n_implausible), "waste_definition",
	    "predicted / actual", "targets", "underestimation_pct_max", TELEM_TARGET_UNDER_PCT,
	    "truncation_pct_max", TELEM_TARGET_TRUNC_PCT, "waste_p90_below", TELEM_TARGET_WASTE_P90,
	    "metrics", cmd_telem_metrics_json(&r->all), "tuning_needed", r->all.tuning_needed);

	for (size_t i = 0; i < r->n_strata; i++) {
		const char *dim = telem_dim_name(r->strata[i].dim);
		json_t *a = json_object_get(strata, dim), *m;

		if (a == NULL) {
			a = json_array();
			json_object_set_new(strata, dim, a);
		}
		m = cmd_telem_metrics_json(&r->strata[i].m);
		json_object_set_new(m, "key", cmd_json_text(r->strata[i].key));
		json_array_append_new(a, m);
	}
	if (o->stratify)
		json_object_set_new(j, "strata", strata);
	else
		json_decref(strata);
	return j;
}

/* "ABOVE TARGET" or "within target". */
static const char *cmd_telem_status(bool above)
{
	return above ? "ABOVE TARGET" : "within target";
}

void cmd_print_implausible(FILE *out, const struct telem_sample *const *v, size_t n)
{
	if (n == 0)
		return;
	fprintf(out,
	    "excluded: %zu events recording a count no call can (a token or deliverable count "
	    "that is not an integer, below 0 or above %d, written by another program)\n",
	    n, TELEM_COUNT_MAX);
	for (size_t i = 0; i < n && i < CALIB_IMPLAUSIBLE_NAMED; i++) {
		char *t = calib_implausible_text(v[i]);

		fprintf(out, "  %s\n", cmd_shown(t));
		free(t);
	}
	if (n > CALIB_IMPLAUSIBLE_NAMED)
		fprintf(
		    out, "  and %zu more (--json lists them all)\n", n - CALIB_IMPLAUSIBLE_NAMED);
}

/* Print the overall metrics as text. */
static void cmd_telem_print_all(
    FILE *out, const struct telem_report *r, const struct telem_report_opts *o)
{
	const struct telem_metrics *m = &r->all;

	fprintf(out, "\nToken estimation telemetry (token_estimation_v2_events)\n");
	fprintf(out, "  filter:  %s\n",
	    o->success_only ? "successful builder calls only "
	                      "(for tuning decisions)" :
	                      "all samples (use --success-only for tuning decisions)");
	fprintf(out,
	    "  samples: %zu analysed of %zu read; under-predicted means actual > "
	    "predicted × %.2f\n",
	    m->n, r->n_read, r->under_multiplier);
	cmd_print_implausible(out, r->implausible, r->n_implausible);
	fprintf(out, "\nTier 1: risk\n");
	fprintf(out, "  under-predicted  %5.1f %%  (%4zu)   target <= %.0f %%   %s\n", m->under_pct,
	    m->underestimated, TELEM_TARGET_UNDER_PCT, cmd_telem_status(m->under_above_target));
	fprintf(out, "  truncation       %5.1f %%  (%4zu)   target <= %.0f %%   %s\n", m->trunc_pct,
	    m->truncated, TELEM_TARGET_TRUNC_PCT, cmd_telem_status(m->trunc_above_target));
	fprintf(out, "  success          %5.1f %%  (%4zu)\n", m->success_pct, m->success);
	fprintf(out,
	    "\nTier 2: over-prediction (predicted ÷ actual, over %zu samples; not the "
	    "budget: calibrate measures budget ÷ actual)\n",
	    m->n_waste);
	fprintf(out,
	    "  predicted/actual median %.2fx, mean %.2fx, p90 %.2fx   target p90 < %.0fx   %s\n",
	    m->waste_median, m->waste_mean, m->waste_p90, TELEM_TARGET_WASTE_P90,
	    cmd_telem_status(m->waste_above_target));
	fprintf(out, "\nDiagnostic: SMAPE over %zu non-truncated samples\n", m->n_smape);
	fprintf(out, "  mean %.1f %%, median %.1f %%, range %.1f %% .. %.1f %%\n", m->smape_mean,
	    m->smape_median, m->smape_min, m->smape_max);
	fprintf(out, "  predicted mean %.0f, median %.0f; actual mean %.0f, median %.0f\n",
	    m->predicted_mean, m->predicted_median, m->actual_mean, m->actual_median);
	fprintf(out, "Truncated samples (actual is only a lower bound): %zu\n", m->truncated);
	if (m->truncated > 0)
		fprintf(out,
		    "  predicted mean %.0f, actual mean >= %.0f, under-predicted %.1f %%\n",
		    m->trunc_predicted_mean, m->trunc_actual_mean, m->trunc_under_pct);
	fprintf(
	    out, "\nTuning decision: %s", m->tuning_needed ? "TUNING NEEDED" : "within targets");
	if (m->under_above_target)
		fprintf(out, "; under-predicted %.1f %% > %.0f %%", m->under_pct,
		    TELEM_TARGET_UNDER_PCT);
	if (m->trunc_above_target)
		fprintf(
		    out, "; truncation %.1f %% > %.0f %%", m->trunc_pct, TELEM_TARGET_TRUNC_PCT);
	fputc('\n', out);
}

/* Print the strata as one table per dimension. */
static void cmd_telem_print_strata(FILE *out, const struct telem_report *r)
{
	int last = -1;

	for (size_t i = 0; i < r->n_strata; i++) {
		const struct telem_stratum *s = &r->strata[i];
		char smape[16] = "-";

		if ((int)s->dim != last) {
			fprintf(out, "\nBy %s\n  %-20s %5s %7s %7s %8s %9s %9s %10s  %s\n",
			    telem_dim_name(s->dim), telem_dim_name(s->dim), "n", "under%", "trunc%",
			    "success%", "p/a med", "p/a p90", "SMAPE mean", "flags");
			last = (int)s->dim;
		}
		if (s->m.n_smape > 0)
			snprintf(smape, sizeof smape, "%.1f%%", s->m.smape_mean);
		fprintf(out, "  %-20s %5zu %7.1f %7.1f %8.1f %8.2fx %8.2fx %10s  %s%s%s\n",
		    cmd_shown(s->key), s->m.n, s->m.under_pct, s->m.trunc_pct, s->m.success_pct,
		    s->m.waste_median, s->m.waste_p90, smape,
		    s->m.tuning_needed ? "TUNING NEEDED" : "",
		    s->m.tuning_needed && s->m.waste_above_target ? ", " : "",
		    s->m.waste_above_target ? "predicted/actual p90 >= 3x" : "");
	}
}

/* Add a --run-id value to the filter (the array has room for every argument). */
static void cmd_telem_add_run(struct store_telem_filter *f, char **ids, char *id)
{
	ids[f->n_run_ids++] = id;
	f->run_ids = ids;
}

/* telemetry report: the v3 analyser's metrics from the database. */
static int cmd_telem_report_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct telem_report_opts o = { .under_multiplier = 1.0 };
	struct store_telem_filter f = { 0 };
	char **ids = xcalloc((size_t)argc + 1, sizeof *ids);
	struct telem_samples s;
	struct telem_report r;
	struct store_err err;
	struct store st;
	int c, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_telem_report_opts, &ret)) != -1) {
		if (c == CMD_OPT_DONE)
			goto out;
		if (c == CMD_OPT_RUN_ID)
			cmd_telem_add_run(&f, ids, optarg);
		else if (c == CMD_OPT_SUCCESS_ONLY)
			o.success_only = true;
		else if (c == CMD_OPT_STRATIFY)
			o.stratify = true;
		else if (c == CMD_OPT_UNDER) {
			if (numarg_double(optarg, &o.under_multiplier) != 0 ||
			    !(o.under_multiplier >= 1.0 && o.under_multiplier <= 100.0)) {
				ret = cmd_usage_error(ctx,
				    "--under-multiplier needs a number from 1 "
				    "to 100, got '%s'",
				    optarg);
				goto out;
			}
		}
	}
	if (optind != argc) {
		ret = cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	ret = cmd_open_read(ctx, &st, true);
	if (ret != 0)
		goto out;
	rc = store_telemetry_read(&st, &f, &s, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		store_close(&st);
		goto out;
	}
	telem_report_build(&s, &o, &r);
	if (r.all.n == 0) {
		ret = cmd_fail(ctx, STORE_EINVAL,
		    "no %stoken_estimation_v2 events in %s%s%s; "
		    "nothing to report (record some with a drain, or `autopack-ctl telemetry "
		    "import FILE.tsv`)",
		    o.success_only ? "successful " : "", st.url,
		    f.n_run_ids > 0 ? " for the given --run-id" : "",
		    r.n_implausible > 0 ? " besides events recording a count no call can" : "");
		cmd_print_implausible(stderr, r.implausible, r.n_implausible);
	} else if (ctx->json) {
		json_t *j = cmd_telem_report_json(&r, &o, &f);

		json_object_set_new(j, "database", cmd_identity_json(&st));
		cmd_json_print(j);
	} else {
		cmd_telem_print_all(stdout, &r, &o);
		cmd_telem_print_strata(stdout, &r);
	}
	telem_report_free(&r);
	telem_samples_free(&s);
	store_close(&st);
out:
	free(ids);
	return ret;
}

const struct cmd_entry cmd_telemetry_report_entry = {
	.name = "telemetry report",
	.args = "[--success-only] [--stratify] [--run-id R]... [--under-multiplier X] [--json]",
	.summary = "token estimation accuracy, risk and cost from the database",
	.help = "Reads token_estimation_v2 events from the database and reports, as the original\n"
	        "analyser did from log files:\n"
	        "  tier 1 (risk): under-prediction rate (actual > predicted × X; target <= 5 %),\n"
	        "    truncation rate (target <= 2 %), success rate;\n"
	        "  tier 2: over-prediction, predicted ÷ actual: median, mean, p90 (target < 3x;\n"
	        "    the original called it waste; calibrate measures budget ÷ actual);\n"
	        "  diagnostic: SMAPE mean/median/min/max over non-truncated samples; truncated\n"
	        "    samples reported apart, their actuals being lower bounds;\n"
	        "  TUNING NEEDED when under-prediction > 5 % or truncation > 2 %.\n"
	        "Medians average the middle two; p90 is the ninth decile cut point\n"
	        "(statistics.quantiles) for 10 or more samples, else the maximum.\n"
	        "\n"
	        "  --success-only        only successful builder calls (for tuning decisions)\n"
	        "  --stratify            also by category, complexity, deliverable count (0-1,\n"
	        "                        2-5, 6+) and estimator version\n"
	        "  --run-id R            only events of run R (repeatable)\n"
	        "  --under-multiplier X  tolerance: under-predicted when actual > predicted × X\n"
	        "                        (default 1)\n"
	        "  --json                the report as JSON on stdout (the banner goes to stderr)\n"
	        "\n"
	        "Exit status: 0 reported, 1 no events to report, 2 unusable database or usage.\n",
	.exec = cmd_telem_report_exec,
};

/* telemetry import: samples recorded elsewhere, as a run of their own. */
static int cmd_telem_import_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_telem_import sum;
	struct telem_samples s = { 0 };
	struct store_err err;
	struct store st;
	char msg[512], *run_id = NULL;
	const char *run_arg = NULL, *file;
	bool from_stdin;
	int c, lock_fd, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_telem_import_opts, &ret)) != -1) {
		if (c == CMD_OPT_DONE)
			return ret;
		if (run_arg != NULL)
			return cmd_usage_error(ctx,
			    "--run-id given twice ('%s', '%s'): an import makes one run", run_arg,
			    optarg);
		run_arg = optarg;
	}
	if (optind + 1 != argc)
		return cmd_usage_error(ctx,
		    optind == argc ? "which file? give one TSV file" : "unexpected argument '%s'",
		    argv[optind + (optind < argc)]);
	file = argv[optind];
	if ((ret = cmd_path_given(ctx, "the TSV file's name", file)) != 0)
		return ret;
	from_stdin = strcmp(file, "-") == 0;
	if (from_stdin)
		file = "standard input";
	run_id = run_arg != NULL ? xstrdup(run_arg) :
	    from_stdin           ? xstrdup("imported-stdin") :
	                           telem_import_run_id(file);
	if (!telem_id_valid(run_id)) {
		ret = cmd_usage_error(ctx,
		    "run id '%s' is not valid: 1-128 of A-Z a-z 0-9 . _ -, "
		    "not starting with . or -",
		    run_id);
		goto out;
	}
	if ((from_stdin ? telem_tsv_read_fd(STDIN_FILENO, file, &s, msg, sizeof msg) :
	                  telem_tsv_read_file(file, &s, msg, sizeof msg)) != 0) {
		ret = cmd_fail(ctx, STORE_EINVAL, "%s; nothing was imported", msg);
		goto out;
	}
	ret = cmd_open_write(ctx, &st, &lock_fd);
	if (ret != 0)
		goto out;
	rc = store_telemetry_import(&st, run_id, file, &s, &sum, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
	} else {
		fprintf(cmd_text_out(ctx),
		    "imported %zu samples (%zu clean: success, not "
		    "truncated, actual >= %d) from %s into run %s: 1 tier, %zu phases (one per "
		    "category and complexity, COMPLETE)\n",
		    sum.samples, sum.clean, TELEM_CLEAN_MIN_ACTUAL, cmd_shown(file), run_id,
		    sum.phases);
		if (ctx->json)
			cmd_json_print(json_pack("{s:b, s:s, s:o, s:I, s:I, s:I, s:o}", "ok", 1,
			    "run_id", run_id, "file", cmd_json_text(file), "samples",
			    (json_int_t)sum.samples, "clean", (json_int_t)sum.clean, "phases",
			    (json_int_t)sum.phases, "database", cmd_identity_json(&st)));
	}
	cmd_close_write(&st, lock_fd);
out:
	telem_samples_free(&s);
	free(run_id);
	return ret;
}

const struct cmd_entry cmd_telemetry_import_entry = {
	.name = "telemetry import",
	.args = "FILE.tsv [--run-id R] [--json]",
	.summary = "import token estimation samples recorded elsewhere (TSV)",
	.help =
	    "Reads a TSV file whose header names the columns timestamp, category, complexity,\n"
	    "deliverables, predicted_output, actual_output, selected_budget, success,\n"
	    "truncated, stop_reason, model (any order; actual_max_tokens optional) and writes,\n"
	    "in one transaction, a run (default imported-<file name>) with one COMPLETE phase\n"
	    "per category and complexity and one token_estimation_v2 event per line. SMAPE,\n"
	    "waste and underestimation are derived as for recorded events; the estimator\n"
	    "version is left unknown. The first malformed line is refused with its line number\n"
	    "and column, and nothing is written. Refused while a supervisor holds the database.\n"
	    "A FILE named - is standard input (its run imported-stdin unless --run-id says).\n"
	    "\n"
	    "  --run-id R  the run to create (refused if it exists)\n"
	    "  --json      the result as JSON on stdout (the banner goes to stderr)\n",
	.exec = cmd_telem_import_exec,
};

/* Where exported rows go, how many went, and why a write failed (an errno). */
struct cmd_telem_export_state {
	FILE *out;
	size_t rows;
	int cause;
};

/* Write one row as a line of NDJSON and count it; 1, with its errno kept, on a write
 * error. */
static int cmd_telem_export_row(json_t *obj, void *arg)
{
	struct cmd_telem_export_state *s = arg;

	errno = 0;
	if (json_dumpf_short(obj, s->out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
	    fputc('\n', s->out) == EOF) {
		s->cause = errno != 0 ? errno : EIO;
		return 1;
	}
	s->rows++;
	return 0;
}

/* telemetry export: every selected event as NDJSON. */
static int cmd_telem_export_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_telem_export_state state = { .out = stdout };
	struct store_telem_filter f = { 0 };
	char msg[1024];
	char **ids = xcalloc((size_t)argc + 1, sizeof *ids);
	const char *out_path = NULL;
	struct cmd_out out;
	struct store_err err;
	struct store st;
	int c, rc, ret = CMD_EXIT_OK;

	cmd_json_lines = true;
	while ((c = cmd_getopt(ctx, argc, argv, cmd_telem_export_opts, &ret)) != -1) {
		if (c == CMD_OPT_DONE)
			goto out;
		if (c == CMD_OPT_RUN_ID)
			cmd_telem_add_run(&f, ids, optarg);
		else if ((ret = cmd_path_given(ctx, "--out", optarg)) != 0)
			goto out;
		else
			out_path = cmd_out_is_stdout(optarg) ? NULL : optarg;
	}
	if (optind != argc) {
		ret = cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	ret = cmd_open_read(ctx, &st, false);
	if (ret != 0)
		goto out;
	store_banner(&st, stderr);
	if (out_path != NULL) {
		if (cmd_out_open(&st, out_path, &out, msg, sizeof msg) != 0) {
			ret = cmd_fail(ctx, STORE_EINVAL, "%s", msg);
			store_close(&st);
			goto out;
		}
		state.out = out.f;
	}
	rc = store_telemetry_export(&st, &f, cmd_telem_export_row, &state, &err);
	if (out_path == NULL) {
		/* standard output's failure is said once, at exit, with its cause */
		if (rc > 0 && cmd_stdout_errno == 0)
			cmd_stdout_errno = state.cause;
		if (!cmd_stdout_flush() && rc == 0)
			rc = 1;
	} else {
		bool whole = out.tmp != NULL;
		int cause = cmd_out_close(&out, rc == 0);

		if (rc == 0 && cause != 0) {
			rc = 1;
			state.cause = cause;
		}
		if (rc != 0 && whole)
			snprintf(msg, sizeof msg, "; %s is as it was", cmd_shown(out_path));
		else
			msg[0] = '\0';
	}
	if (rc > 0 && out_path == NULL)
		ret = cmd_exit_code(STORE_EIO);
	else if (rc > 0)
		ret = cmd_fail(ctx, STORE_EIO, "writing %s failed: %s (%s)%s", out_path,
		    strerror(state.cause), cmd_errno_name(state.cause), msg);
	else if (rc != 0)
		ret = cmd_fail(ctx, rc, "%s%s", err.text, out_path != NULL ? msg : "");
	else
		fprintf(stderr, "exported %zu token_estimation_v2 events%s%s\n", state.rows,
		    out_path ? " to " : "", out_path ? cmd_shown(out_path) : "");
	store_close(&st);
out:
	free(ids);
	return ret;
}

const struct cmd_entry cmd_telemetry_export_entry = {
	.name = "telemetry export",
	.args = "[--run-id R]... [--out FILE] [--json]",
	.summary = "write token estimation events as NDJSON",
	.help =
	    "Writes every token_estimation_v2 event (all columns; flags as true/false) as one\n"
	    "JSON object a line, in event order, to standard output or FILE. The banner and the\n"
	    "count go to standard error. The output is already JSON: --json changes nothing.\n"
	    "\n"
	    "  --run-id R  only events of run R (repeatable)\n"
	    "  --out FILE  write to FILE instead of standard output, whole or not at all: a\n"
	    "              regular file through a temporary beside it (.FILE.XXXXXX.partial)\n"
	    "              renamed over it when complete, so a failure (a full disk) leaves\n"
	    "              FILE as it was; a FIFO or a device is written as it comes (one\n"
	    "              that no process reads is refused: start its reader first); - or\n"
	    "              /dev/stdout is standard output as it is open (appended to, after\n"
	    "              >>)\n"
	    "\n"
	    "A BLOB value (which another program may have stored in any column on SQLite) is\n"
	    "written as {\"blob_hex\": \"<its bytes in hex>\"}, a text that is not UTF-8 as\n"
	    "{\"text_hex\": \"<its bytes in hex>\"}: JSON holds neither as a string.\n",
	.exec = cmd_telem_export_exec,
};
