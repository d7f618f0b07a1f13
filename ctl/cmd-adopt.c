/* db adopt: turn a Python-Autopack database into an autopack database, in place. */
#include "ctl/cmd.h"
#include "common/store/dburl.h"
#include "common/store/store_adopt.h"
#include "common/store/store_lock.h"
#include "common/store/store_scope.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	CMD_OPT_WORKSPACE = CMD_OPT_FIRST_OWN,
	CMD_OPT_DRY_RUN,
};

static const struct option cmd_adopt_opts[] = {
	CMD_OPTS_COMMON,
	{ "workspace", required_argument, NULL, CMD_OPT_WORKSPACE },
	{ "dry-run", no_argument, NULL, CMD_OPT_DRY_RUN },
	{ NULL, 0, NULL, 0 },
};

/* At most this many phases are named per list in the text report (--json has all). */
#define CMD_ADOPT_PHASES_SHOWN 50

/* Resolve the database from --db / the environment and an optional positional URL;
 * two that name different files are refused. 0, or an exit code after reporting. */
static int cmd_adopt_resolve(struct cmd_ctx *ctx, const char *positional, char **path, char **url)
{
	char err[1024], *ppath, *purl;
	int ret;

	if (positional == NULL)
		return cmd_db_resolve(ctx, path, url);
	if (dburl_parse(positional, &ppath, &purl, err, sizeof err) != 0) {
		cmd_fail(ctx, STORE_EINVAL, "%s", err);
		return CMD_EXIT_UNUSABLE;
	}
	if (ctx->db_flag == NULL)
		ctx->db_flag = positional;
	ret = cmd_db_resolve(ctx, path, url);
	if (ret == 0 && strcmp(*path, ppath) != 0) {
		cmd_fail(ctx, STORE_EINVAL,
		    "two databases named: %s (--db or the environment) "
		    "and %s (the argument); name one",
		    *url, purl);
		free(*path);
		free(*url);
		ret = CMD_EXIT_UNUSABLE;
	}
	free(ppath);
	free(purl);
	return ret;
}

/* Say that the file already is an autopack database; exit 0, nothing changed. */
static int cmd_adopt_exists(struct cmd_ctx *ctx, const char *path, const char *url)
{
	struct store_err err;
	struct store st;
	int rc = store_open(&st, path, url, STORE_READ, &err);

	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	store_banner(&st, cmd_text_out(ctx));
	fprintf(cmd_text_out(ctx),
	    "%s is already an autopack database (uuid %s), nothing "
	    "changed\n",
	    cmd_shown(st.url), st.uuid);
	if (ctx->json)
		cmd_json_print(json_pack(
		    "{s:b, s:b, s:o}", "ok", 1, "adopted", 0, "database", cmd_identity_json(&st)));
	store_close(&st);
	return CMD_EXIT_OK;
}

/* Print a string list on one line, or "(none)". */
static void cmd_adopt_print_list(FILE *out, const char *label, char **items, size_t n)
{
	fprintf(out, "%s:", label);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s %s", i ? "," : "", cmd_shown(items[i]));
	fprintf(out, "%s\n", n == 0 ? " (none)" : "");
}

/* Print the schema changes: planned (a survey) or made. */
static void cmd_adopt_print_schema(FILE *out, const struct store_adopt_report *r)
{
	bool relaxed = false;

	cmd_adopt_print_list(out, r->done ? "tables created" : "tables to create",
	    r->tables_created, r->n_tables_created);
	fprintf(out, "%s:", r->done ? "columns added" : "columns to add");
	for (size_t i = 0; i < r->n_columns_added; i++) {
		fprintf(out, "%s %s.%s", i ? "," : "", cmd_shown(r->columns_added[i].table),
		    cmd_shown(r->columns_added[i].column));
		relaxed |= r->columns_added[i].relaxed;
	}
	fprintf(out, "%s\n", r->n_columns_added == 0 ? " (none)" : "");
	if (relaxed) {
		fprintf(out,
		    "  added nullable (NOT NULL without a default in autopack's schema, "
		    "which cannot be added to a table with rows):");
		for (size_t i = 0, k = 0; i < r->n_columns_added; i++)
			if (r->columns_added[i].relaxed)
				fprintf(out, "%s %s.%s", k++ ? "," : "",
				    cmd_shown(r->columns_added[i].table),
				    cmd_shown(r->columns_added[i].column));
		fputc('\n', out);
	}
	cmd_adopt_print_list(out, r->done ? "indexes created" : "indexes to create",
	    r->indexes_created, r->n_indexes_created);
	for (size_t i = 0; i < r->n_indexes_skipped; i++)
		fprintf(out, "index not created: %s (%s)\n", cmd_shown(r->indexes_skipped[i].name),
		    cmd_shown(r->indexes_skipped[i].why));
}

/* Print the columns autopack fills on every insert, one line per table. */
static void cmd_adopt_print_inserts(FILE *out, const struct store_adopt_report *r)
{
	const char *table = NULL;

	fprintf(out,
	    "NOT NULL columns without an SQL default, which autopack fills on every insert with "
	    "the original's values:%s\n",
	    r->n_insert_cols == 0 ? " (none)" : "");
	for (size_t i = 0; i < r->n_insert_cols; i++) {
		const struct store_adopt_insert_col *c = &r->insert_cols[i];

		if (table == NULL || strcmp(table, c->table) != 0)
			fprintf(out, "%s  %s:", table != NULL ? "\n" : "", cmd_shown(c->table));
		else
			fputc(',', out);
		fprintf(out, " %s %s", cmd_shown(c->column), c->value != NULL ? c->value : "now");
		table = c->table;
	}
	if (table != NULL)
		fputc('\n', out);
}

/* Print the values rewritten into the original's formats and those left unreadable. */
static void cmd_adopt_print_values(FILE *out, const struct store_adopt_report *r)
{
	size_t rewritten = 0, unreadable = 0;

	for (size_t i = 0; i < r->values.n; i++) {
		rewritten += r->values.items[i].rewrite > 0;
		unreadable += r->values.items[i].unreadable > 0;
	}
	fprintf(out, "values %s into the original's formats:%s\n",
	    r->done ? "rewritten" : "to rewrite", rewritten == 0 ? " (none)" : "");
	for (size_t i = 0; i < r->values.n; i++) {
		const struct store_value_col *c = &r->values.items[i];

		if (c->rewrite > 0)
			fprintf(out, "  %s.%s: %lld %s value(s), e.g. \"%s\" -> \"%s\"\n",
			    cmd_shown(c->table), cmd_shown(c->column), (long long)c->rewrite,
			    store_value_kind_name(c->kind),
			    c->from != NULL ? cmd_shown(c->from) : "",
			    c->to != NULL ? cmd_shown(c->to) : "");
	}
	if (unreadable == 0)
		return;
	fprintf(out, "values left as they are (autopack cannot read them):\n");
	for (size_t i = 0; i < r->values.n; i++) {
		const struct store_value_col *c = &r->values.items[i];

		if (c->unreadable > 0)
			fprintf(out, "  %s.%s: %lld value(s) that are not %s %s, e.g. \"%s\"\n",
			    cmd_shown(c->table), cmd_shown(c->column), (long long)c->unreadable,
			    c->kind == STORE_VALUE_INT ? "an" : "a", store_value_kind_name(c->kind),
			    c->bad != NULL ? cmd_shown(c->bad) : "");
	}
}

/* Print a list of reported phases, at most CMD_ADOPT_PHASES_SHOWN of them. */
static void cmd_adopt_print_phases(
    FILE *out, const char *label, const struct store_adopt_phase *p, size_t n)
{
	if (n == 0)
		return;
	fprintf(out, "  %s: %zu\n", label, n);
	for (size_t i = 0; i < n && i < CMD_ADOPT_PHASES_SHOWN; i++)
		fprintf(out, "    %s/%s (%s)%s%s\n", cmd_shown(p[i].run_id),
		    cmd_shown(p[i].phase_id), cmd_shown(p[i].state), p[i].why != NULL ? ": " : "",
		    p[i].why != NULL ? cmd_shown(p[i].why) : "");
	if (n > CMD_ADOPT_PHASES_SHOWN)
		fprintf(out, "    ... and %zu more (--json lists them all)\n",
		    n - CMD_ADOPT_PHASES_SHOWN);
}

/* Print what the scopes hold. */
static void cmd_adopt_print_scopes(FILE *out, const struct store_adopt_report *r)
{
	fprintf(out,
	    "scopes: %lld object, %lld double-encoded, %lld single path, %lld none "
	    "(%lld with deliverables in buckets)\n",
	    (long long)r->scope_forms[STORE_SCOPE_OBJECT],
	    (long long)r->scope_forms[STORE_SCOPE_ENCODED],
	    (long long)r->scope_forms[STORE_SCOPE_PATH],
	    (long long)r->scope_forms[STORE_SCOPE_NONE], (long long)r->scope_buckets);
	cmd_adopt_print_phases(out,
	    "scopes that cannot be interpreted (a drain fails these phases with "
	    "NO_DELIVERABLES, no LLM call)",
	    r->bad_scopes, r->n_bad_scopes);
	cmd_adopt_print_phases(out,
	    "phases whose scope names no deliverable (a drain fails them with NO_DELIVERABLES, "
	    "no LLM call)",
	    r->no_deliverables, r->n_no_deliverables);
	cmd_adopt_print_phases(out,
	    "phases that cannot be sent to a worker (a drain fails them with INVALID_JOB, no "
	    "worker and no LLM call)",
	    r->unsendable, r->n_unsendable);
	cmd_adopt_print_phases(out,
	    "phases whose run or tier has no row (the original kept no foreign keys; a drain "
	    "never dispatches them)",
	    r->orphans, r->n_orphans);
}

/* Print the survey: everything the adoption will do, found before changing anything. */
static void cmd_adopt_print_survey(FILE *out, const char *url, const struct store_adopt_report *r)
{
	fprintf(out, "adoption of %s, surveyed before changing anything:\n", cmd_shown(url));
	if (r->dump_command != NULL)
		fprintf(out,
		    "copy the database first (the adoption is one transaction, but autopack takes "
		    "no copy on a server):\n  %s\n",
		    r->dump_command);
	fprintf(out,
	    "legacy rows kept: runs %lld, tiers %lld, phases %lld, llm_usage_events "
	    "%lld, token_estimation_v2_events %lld\n",
	    (long long)r->runs, (long long)r->tiers, (long long)r->phases,
	    (long long)r->usage_events, (long long)r->v2_events);
	cmd_adopt_print_schema(out, r);
	cmd_adopt_print_inserts(out, r);
	cmd_adopt_print_values(out, r);
	cmd_adopt_print_scopes(out, r);
	fprintf(out, "legacy data:\n");
	fprintf(out,
	    "  %lld phase(s) left EXECUTING, GATE or CI_RUNNING by the original to put back to "
	    "QUEUED (last_failure_reason kept)\n",
	    (long long)r->executing_requeued);
	fprintf(out, "  %lld run(s) without a workspace to get %s/<run id> (created)\n",
	    (long long)r->workspaces_set, r->workspace_base);
	fprintf(out,
	    "  %lld llm_usage_events row(s) without a prompt/completion split kept "
	    "(NULLs stay NULL)\n",
	    (long long)r->usage_without_split);
	for (size_t i = 0; i < r->n_fills; i++) {
		const struct store_adopt_fill *f = &r->fills[i];

		if (f->value != NULL)
			fprintf(out, "  %s.%s: %lld NULL value(s) to set to %s\n",
			    cmd_shown(f->table), cmd_shown(f->column), (long long)f->rows,
			    f->value);
		else
			fprintf(out, "  %s.%s: %lld NULL value(s) left (no default)\n",
			    cmd_shown(f->table), cmd_shown(f->column), (long long)f->rows);
	}
}

/* Print what the adoption did. */
static void cmd_adopt_print(FILE *out, const struct store *st, const struct store_adopt_report *r)
{
	fprintf(out, "adopted %s: new uuid %s, schema version %d\n", cmd_shown(st->url), r->uuid,
	    st->schema_version);
	if (r->backup_path != NULL)
		fprintf(out, "backup (taken first): %s\n", cmd_shown(r->backup_path));
	else
		fprintf(out,
		    "copy: none taken by autopack (one transaction; the copy is the "
		    "operator's: %s)\n",
		    r->dump_command);
	cmd_adopt_print_schema(out, r);
	cmd_adopt_print_values(out, r);
	fprintf(out,
	    "legacy data: %lld phase(s) put back to QUEUED, %lld run workspace(s) created under "
	    "%s\n",
	    (long long)r->executing_requeued, (long long)r->workspaces_set, r->workspace_base);
	for (size_t i = 0; i < r->n_fills; i++) {
		const struct store_adopt_fill *f = &r->fills[i];

		if (f->value != NULL)
			fprintf(out, "  %s.%s: %lld NULL value(s) set to %s\n", cmd_shown(f->table),
			    cmd_shown(f->column), (long long)f->rows, f->value);
	}
}

/* Return a list of reported phases as JSON. */
static json_t *cmd_adopt_phases_json(const struct store_adopt_phase *p, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a,
		    json_pack("{s:s, s:s, s:s, s:s?}", "run_id", p[i].run_id, "phase_id",
		        p[i].phase_id, "state", p[i].state, "why", p[i].why));
	return a;
}

/* Return the value columns as JSON: rewritten ones and unreadable ones. */
static json_t *cmd_adopt_values_json(const struct store_value_cols *v)
{
	json_t *rw = json_array(), *bad = json_array();

	for (size_t i = 0; i < v->n; i++) {
		const struct store_value_col *c = &v->items[i];

		if (c->rewrite > 0)
			json_array_append_new(rw,
			    json_pack("{s:o, s:o, s:s, s:I, s:o, s:o}", "table",
			        cmd_json_text(c->table), "column", cmd_json_text(c->column), "kind",
			        store_value_kind_name(c->kind), "rows", (json_int_t)c->rewrite,
			        "example", cmd_json_text(c->from), "rewritten_as",
			        cmd_json_text(c->to)));
		if (c->unreadable > 0)
			json_array_append_new(bad,
			    json_pack("{s:o, s:o, s:s, s:I, s:o}", "table", cmd_json_text(c->table),
			        "column", cmd_json_text(c->column), "kind",
			        store_value_kind_name(c->kind), "rows", (json_int_t)c->unreadable,
			        "example", cmd_json_text(c->bad)));
	}
	return json_pack("{s:o, s:o}", "rewritten", rw, "left_unreadable", bad);
}

/* Return the survey's findings as JSON (the keys shared by a dry run and an adoption). */
static json_t *cmd_adopt_findings_json(const struct store_adopt_report *r)
{
	json_t *inserts = json_array();

	for (size_t i = 0; i < r->n_insert_cols; i++)
		json_array_append_new(inserts,
		    json_pack("{s:s, s:s, s:s?}", "table", r->insert_cols[i].table, "column",
		        r->insert_cols[i].column, "value", r->insert_cols[i].value));
	return json_pack("{s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}, s:o}",
	    "insert_columns", inserts, "values", cmd_adopt_values_json(&r->values), "scopes",
	    "object", (json_int_t)r->scope_forms[STORE_SCOPE_OBJECT], "encoded",
	    (json_int_t)r->scope_forms[STORE_SCOPE_ENCODED], "path",
	    (json_int_t)r->scope_forms[STORE_SCOPE_PATH], "none",
	    (json_int_t)r->scope_forms[STORE_SCOPE_NONE], "buckets", (json_int_t)r->scope_buckets,
	    "uninterpretable", cmd_adopt_phases_json(r->bad_scopes, r->n_bad_scopes),
	    "no_deliverables", cmd_adopt_phases_json(r->no_deliverables, r->n_no_deliverables),
	    "unsendable", cmd_adopt_phases_json(r->unsendable, r->n_unsendable), "orphans",
	    cmd_adopt_phases_json(r->orphans, r->n_orphans));
}

/* Return what the adoption did (or, for a survey, would do) as JSON. */
static json_t *cmd_adopt_json(const struct store_adopt_report *r, json_t *database)
{
	json_t *cols = json_array(), *skipped = json_array(), *fills = json_array();
	json_t *tables = json_array(), *indexes = json_array();
	json_t *out, *findings;

	for (size_t i = 0; i < r->n_tables_created; i++)
		json_array_append_new(tables, json_string(r->tables_created[i]));
	for (size_t i = 0; i < r->n_indexes_created; i++)
		json_array_append_new(indexes, json_string(r->indexes_created[i]));
	for (size_t i = 0; i < r->n_columns_added; i++)
		json_array_append_new(cols,
		    json_pack("{s:s, s:s, s:s, s:b}", "table", r->columns_added[i].table, "column",
		        r->columns_added[i].column, "declared", r->columns_added[i].decl,
		        "added_nullable", r->columns_added[i].relaxed));
	for (size_t i = 0; i < r->n_indexes_skipped; i++)
		json_array_append_new(skipped,
		    json_pack("{s:s, s:s}", "name", r->indexes_skipped[i].name, "reason",
		        r->indexes_skipped[i].why));
	for (size_t i = 0; i < r->n_fills; i++)
		json_array_append_new(fills,
		    json_pack("{s:s, s:s, s:I, s:s?}", "table", r->fills[i].table, "column",
		        r->fills[i].column, "rows", (json_int_t)r->fills[i].rows, "value",
		        r->fills[i].value));
	out = json_pack("{s:b, s:b, s:b, s:s?, s:s?, s:s?, s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:o, "
	                "s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:o}, s:o?}",
	    "ok", 1, "adopted", r->done, "dry_run", !r->done, "uuid", r->done ? r->uuid : NULL,
	    "backup", r->backup_path, "dump_command", r->dump_command, "workspace_base",
	    r->workspace_base, "legacy_rows", "runs", (json_int_t)r->runs, "tiers",
	    (json_int_t)r->tiers, "phases", (json_int_t)r->phases, "llm_usage_events",
	    (json_int_t)r->usage_events, "token_estimation_v2_events", (json_int_t)r->v2_events,
	    "tables_created", tables, "columns_added", cols, "indexes_created", indexes,
	    "indexes_skipped", skipped, "legacy_data", "executing_requeued",
	    (json_int_t)r->executing_requeued, "workspaces_set", (json_int_t)r->workspaces_set,
	    "bare_string_scopes", (json_int_t)r->bare_scopes, "usage_without_split",
	    (json_int_t)r->usage_without_split, "nulls_filled", fills, "database", database);
	findings = cmd_adopt_findings_json(r);
	json_object_update(out, findings);
	json_decref(findings);
	return out;
}

/* Survey without the lock and print it; nothing is written. */
static int cmd_adopt_dry_run(struct cmd_ctx *ctx, const char *path, const char *url, const char *ws)
{
	struct store_adopt_report rep;
	struct store_err err;
	int rc = store_adopt_survey(path, ws, &rep, &err);

	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	cmd_adopt_print_survey(cmd_text_out(ctx), url, &rep);
	fprintf(cmd_text_out(ctx), "dry run: nothing was changed\n");
	if (ctx->json)
		cmd_json_print(cmd_adopt_json(&rep, NULL));
	store_adopt_report_free(&rep);
	return CMD_EXIT_OK;
}

/* Adopt under the lock (on PostgreSQL the adoption's transaction takes the offline
 * writers' lock itself), then report from a fresh read-only open. */
static int cmd_adopt_run(struct cmd_ctx *ctx, const char *path, const char *url, const char *ws)
{
	struct store_adopt_report rep;
	struct store_err err;
	struct store st;
	int lock_fd, rc, ret;

	ret = cmd_lock(ctx, path, &lock_fd);
	if (ret != 0)
		return ret;
	rc = store_adopt_survey(path, ws, &rep, &err);
	if (rc == 0) {
		cmd_adopt_print_survey(cmd_text_out(ctx), url, &rep);
		fflush(cmd_text_out(ctx));
		store_adopt_report_free(&rep);
		rc = store_adopt(path, ws, &rep, &err);
	}
	if (rc == STORE_EEXIST) {
		store_lock_release(lock_fd);
		return cmd_adopt_exists(ctx, path, url);
	}
	if (rc != 0) {
		store_lock_release(lock_fd);
		return cmd_fail(ctx, rc, "%s", err.text);
	}
	/* The lock is released after the connection closes: closing a descriptor of the
	 * file would drop SQLite's own locks on it. */
	rc = store_open(&st, path, url, STORE_READ, &err);
	if (rc != 0) {
		store_lock_release(lock_fd);
		store_adopt_report_free(&rep);
		return cmd_fail(ctx, rc, "adopted, but reopening failed: %s", err.text);
	}
	store_banner(&st, cmd_text_out(ctx));
	cmd_adopt_print(cmd_text_out(ctx), &st, &rep);
	if (ctx->json)
		cmd_json_print(cmd_adopt_json(&rep, cmd_identity_json(&st)));
	store_adopt_report_free(&rep);
	store_close(&st);
	store_lock_release(lock_fd);
	return CMD_EXIT_OK;
}

/* db adopt: check, lock, back up, migrate; report. */
static int cmd_db_adopt_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	const char *ws_arg = NULL, *positional = NULL;
	struct store_err err;
	char *path, *url, *ws = NULL;
	bool dry_run = false;
	int c, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_adopt_opts, &ret)) != -1) {
		if (c == CMD_OPT_DONE)
			return ret;
		if (c == CMD_OPT_DRY_RUN)
			dry_run = true;
		else
			ws_arg = optarg;
	}
	if (optind < argc)
		positional = argv[optind++];
	if (optind != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (ws_arg != NULL && ws_arg[0] == '\0')
		return cmd_usage_error(ctx, "--workspace needs a directory");
	ret = cmd_adopt_resolve(ctx, positional, &path, &url);
	if (ret != 0)
		return ret;
	rc = store_adopt_check(path, &err);
	if (rc == STORE_EEXIST) {
		ret = cmd_adopt_exists(ctx, path, url);
	} else if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
	} else {
		if (ws_arg != NULL && (ws = store_path_absolute(ws_arg, NULL)) == NULL)
			ret = cmd_fail(ctx, STORE_EIO, "cannot read the current directory");
		else if (dry_run)
			ret = cmd_adopt_dry_run(ctx, path, url, ws);
		else
			ret = cmd_adopt_run(ctx, path, url, ws);
	}
	free(ws);
	free(path);
	free(url);
	return ret;
}

const struct cmd_entry cmd_db_adopt_entry = {
	.name = "db adopt",
	.args = "[URL] [--workspace DIR] [--dry-run] [--json]",
	.summary = "make a Python-Autopack database an autopack database, in place",
	.help =
	    "Adopts a database created by the Python Autopack project (its runs, tiers, phases,\n"
	    "llm_usage_events and token_estimation_v2_events tables), on SQLite or PostgreSQL,\n"
	    "named by --db (or AUTOPACK_DB_URL / DATABASE_URL, or a URL argument; two that\n"
	    "disagree are refused).\n"
	    "\n"
	    "First it surveys the database, reading only, and prints what it will do: the\n"
	    "tables, columns and indexes to add; the NOT NULL columns without an SQL default\n"
	    "that autopack fills on every insert, with the original's values; every value it\n"
	    "will rewrite into the original's formats (timestamps \"YYYY-MM-DD HH:MM:SS.ffffff\",\n"
	    "booleans 0/1, state names) and those it cannot read; every scope it cannot\n"
	    "interpret and every phase naming no deliverable (run/phase ids; a drain fails them\n"
	    "with NO_DELIVERABLES without calling the LLM). On PostgreSQL it first prints the\n"
	    "pg_dump command that copies the database (host, port, database; never a\n"
	    "password): run it before adopting. --dry-run stops there.\n"
	    "\n"
	    "Then, in one transaction: every missing autopack table is created, every missing\n"
	    "column added (NOT NULL columns without a default are added nullable and listed),\n"
	    "the autopack indexes that can be created are created, the values are rewritten,\n"
	    "and a meta row with a new uuid (and on PostgreSQL the server's identity) is\n"
	    "written. An SQLite file is copied first with the sqlite3 backup API to\n"
	    "<db>.pre-adopt-<UTC stamp>.bak. A failure at any step rolls all of it back. Every\n"
	    "original row stays readable by the Python code. docs/adoption.md says what is\n"
	    "converted and how to check it.\n"
	    "\n"
	    "Legacy data: phases left EXECUTING go back to QUEUED (last_failure_reason kept);\n"
	    "runs without a workspace get DIR/<run id>; NULL timestamps in runs, tiers and phases\n"
	    "get the adoption time and other NULLs in NOT NULL columns their default; scopes\n"
	    "and usage rows without a token split are kept as they are and counted.\n"
	    "\n"
	    "Refused, leaving the database untouched (exit 2): a missing file or PostgreSQL\n"
	    "database, a file that is not SQLite, a database without the original's runs, tiers\n"
	    "and phases (or whose tables lack the original's key columns; the message names\n"
	    "them), phases whose (run_id, phase_id) repeat. An autopack database is reported\n"
	    "and left alone (exit 0). Refused while the database lock is held (exit 1).\n"
	    "\n"
	    "  --workspace DIR  where run workspaces go (default: autopack-workspace beside the\n"
	    "                   SQLite file, or in the current directory for PostgreSQL; each run\n"
	    "                   gets DIR/<run id>, created)\n"
	    "  --dry-run        print the survey and change nothing (no lock, no backup)\n"
	    "  --json           print the result as JSON on stdout (the text goes to stderr)\n",
	.exec = cmd_db_adopt_exec,
};
