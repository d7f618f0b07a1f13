/* The database commands: db init, db check, db migrate, db reidentify. */
#include "ctl/cmd.h"
#include "common/store/schema.sql.h"
#include "common/store/store_lock.h"
#include "common/store/store_meta.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct option cmd_db_opts[] = {
	CMD_OPTS_COMMON,
	{ NULL, 0, NULL, 0 },
};

enum {
	CMD_OPT_ALLOW_EMPTY = CMD_OPT_FIRST_OWN
};

static const struct option cmd_db_check_opts[] = {
	CMD_OPTS_COMMON,
	{ "allow-empty-db", no_argument, NULL, CMD_OPT_ALLOW_EMPTY },
	{ NULL, 0, NULL, 0 },
};

/* Parse options that take no command-specific flags and no arguments; 0 to go on, or
 * CMD_OPT_DONE with the exit code in *rc. */
static int cmd_db_parse_plain(struct cmd_ctx *ctx, int argc, char **argv, int *rc)
{
	int c = cmd_getopt(ctx, argc, argv, cmd_db_opts, rc);

	if (c == CMD_OPT_DONE)
		return c;
	if (c != -1 || optind != argc) {
		*rc = cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		return CMD_OPT_DONE;
	}
	return 0;
}

/* Report an existing autopack database that init leaves alone. */
static int cmd_db_init_exists(struct cmd_ctx *ctx, struct store *st)
{
	fprintf(cmd_text_out(ctx),
	    "%s is already an autopack database (uuid %s), nothing "
	    "changed\n",
	    cmd_shown(st->url), st->uuid);
	if (ctx->json)
		cmd_json_print(json_pack(
		    "{s:b, s:b, s:o}", "ok", 1, "created", 0, "database", cmd_identity_json(st)));
	return CMD_EXIT_OK;
}

/* db init: create a new database, or say that it exists. */
static int cmd_db_init_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_err err;
	struct store st;
	struct stat sb;
	char *path = NULL, *url = NULL;
	int rc, ret;
	bool created;

	if (cmd_db_parse_plain(ctx, argc, argv, &ret) != 0)
		return ret;
	ret = cmd_db_resolve(ctx, &path, &url);
	if (ret != 0)
		return ret;
	if (lstat(path, &sb) == 0) {
		char target[PATH_MAX];
		ssize_t n;

		if (S_ISLNK(sb.st_mode) && stat(path, &sb) != 0) {
			int why = errno;

			n = readlink(path, target, sizeof target - 1);
			target[n >= 0 ? n : 0] = '\0';
			ret = cmd_fail(ctx, STORE_ENOTDB,
			    "refusing to initialise: %s is a symbolic link to %s, which %s; name "
			    "the file itself",
			    path, target,
			    why == ENOENT    ? "does not exist" :
			        why == ELOOP ? "leads back to itself (a loop of symbolic links)" :
			                       strerror(why));
			goto out;
		}
		rc = store_open(&st, path, url, STORE_READ, &err);
		if (rc == 0) {
			store_banner(&st, cmd_text_out(ctx));
			ret = cmd_db_init_exists(ctx, &st);
			store_close(&st);
		} else {
			ret = cmd_fail(
			    ctx, rc, "refusing to initialise over an existing file: %s", err.text);
		}
		goto out;
	}
	/* store_init builds the file under a private name and gives it its name in one step,
	 * never over an existing file: no lock is needed, and nobody sees it half-made. */
	rc = store_init(path, NULL, &err);
	if (rc != 0 && rc != STORE_EEXIST) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		goto out;
	}
	created = rc == 0;
	rc = store_open(&st, path, url, STORE_READ, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		goto out;
	}
	store_banner(&st, cmd_text_out(ctx));
	if (!created) {
		ret = cmd_db_init_exists(ctx, &st);
	} else {
		fprintf(cmd_text_out(ctx),
		    "created autopack database %s (uuid %s, schema "
		    "version %d)\n",
		    cmd_shown(st.url), st.uuid, st.schema_version);
		if (ctx->json)
			cmd_json_print(json_pack("{s:b, s:b, s:o}", "ok", 1, "created", 1,
			    "database", cmd_identity_json(&st)));
	}
	store_close(&st);
out:
	free(path);
	free(url);
	return ret;
}

const struct cmd_entry cmd_db_init_entry = {
	.name = "db init",
	.args = "[--json]",
	.summary = "create a new autopack database",
	.help =
	    "Creates the database named by --db (or AUTOPACK_DB_URL / DATABASE_URL): the whole\n"
	    "schema and a meta row with a new uuid, in one transaction. This is the only command\n"
	    "that creates a database file. An existing autopack database is left alone (exit 0);\n"
	    "any other existing file is refused and left untouched (exit 2).\n"
	    "\n"
	    "  --db URL   sqlite:///relative/path.db, sqlite:////absolute/path.db or\n"
	    "             postgresql://user@host:port/dbname\n"
	    "  --json     print the result as JSON on stdout (the banner goes to stderr)\n",
	.exec = cmd_db_init_exec,
};

/* Percentage of n in total, 0 when total is 0. */
static double cmd_pct(int64_t n, int64_t total)
{
	return total > 0 ? 100.0 * (double)n / (double)total : 0.0;
}

/* Print a list of counts on one line: "a 3, b 1" or "(none)". */
static void cmd_print_counts(FILE *out, const char *label, const struct store_counts *c)
{
	fprintf(out, "  %s:", label);
	if (c->n == 0)
		fprintf(out, " (none)");
	for (size_t i = 0; i < c->n; i++)
		fprintf(out, "%s %s %lld", i ? "," : "", cmd_shown(c->items[i].key),
		    (long long)c->items[i].n);
	fputc('\n', out);
}

/* Print the statistics of db check as text. */
static void cmd_db_check_print(FILE *out, const struct store_stats *s)
{
	fprintf(out, "\nPhase states\n");
	for (size_t i = 0; i < s->phase_states.n; i++)
		fprintf(out, "  %-12s %8lld\n", cmd_shown(s->phase_states.items[i].key),
		    (long long)s->phase_states.items[i].n);
	fprintf(out, "  %-12s %8lld\n", "TOTAL", (long long)s->phases);
	fprintf(out, "\nRuns: %lld\n", (long long)s->runs);
	if (s->runs > 0)
		cmd_print_counts(out, "by state", &s->run_states);
	for (size_t i = 0; i < s->n_runs; i++) {
		const struct store_run_phases *r = &s->per_run[i];

		fprintf(out,
		    "  %s [%s]: %lld phases (%lld queued, %lld executing, %lld complete, "
		    "%lld failed)\n",
		    cmd_shown(r->run_id), cmd_shown(r->state), (long long)r->total,
		    (long long)r->queued, (long long)r->executing, (long long)r->complete,
		    (long long)r->failed);
	}
	fprintf(out, "\nTelemetry\n");
	fprintf(out,
	    "  token_estimation_v2_events: %lld (success %lld, %.1f%%; truncated "
	    "%lld, %.1f%%)\n",
	    (long long)s->v2_total, (long long)s->v2_success, cmd_pct(s->v2_success, s->v2_total),
	    (long long)s->v2_truncated, cmd_pct(s->v2_truncated, s->v2_total));
	cmd_print_counts(out, "successful events by category", &s->v2_by_category);
	cmd_print_counts(out, "successful events by complexity", &s->v2_by_complexity);
	fprintf(out, "  llm_usage_events: %lld (%lld failed calls, %lld lost with their worker",
	    (long long)s->usage_total, (long long)s->usage_failed, (long long)s->usage_lost);
	if (s->usage_sent > 0)
		fprintf(out, ", %lld sent with no outcome yet", (long long)s->usage_sent);
	fprintf(out, "), %lld tokens\n", (long long)s->usage_tokens);
	if (s->usage_excluded == 0)
		return;
	fprintf(out,
	    "  excluded from the tokens: %lld llm_usage_events row(s) recording a count no call "
	    "reports (not an integer, below 0, or above 10^9 prompt or completion tokens, 2 x "
	    "10^9 in all; written by another program)\n",
	    (long long)s->usage_excluded);
	for (size_t i = 0; i < s->n_usage_excluded_rows; i++) {
		const struct store_usage_row *u = &s->usage_excluded_rows[i];

		fprintf(out,
		    "    id %lld: total_tokens %s, prompt_tokens %s, completion_tokens %s\n",
		    (long long)u->id, u->total_tokens != NULL ? cmd_shown(u->total_tokens) : "NULL",
		    u->prompt_tokens != NULL ? cmd_shown(u->prompt_tokens) : "NULL",
		    u->completion_tokens != NULL ? cmd_shown(u->completion_tokens) : "NULL");
	}
	if (s->usage_excluded > (int64_t)s->n_usage_excluded_rows)
		fprintf(out, "    and %lld more (--json lists the first %d too)\n",
		    (long long)(s->usage_excluded - (int64_t)s->n_usage_excluded_rows),
		    STORE_STATS_NAMED);
}

/* Return a list of counts as a JSON object. */
static json_t *cmd_counts_json(const struct store_counts *c)
{
	json_t *o = json_object();

	for (size_t i = 0; i < c->n; i++)
		json_object_set_new(o, c->items[i].key, json_integer(c->items[i].n));
	return o;
}

/* Return the statistics of db check as JSON. */
static json_t *cmd_db_check_json(const struct store_stats *s)
{
	json_t *per_run = json_array(), *excluded = json_array();

	for (size_t i = 0; i < s->n_usage_excluded_rows; i++) {
		const struct store_usage_row *u = &s->usage_excluded_rows[i];

		json_array_append_new(excluded,
		    json_pack("{s:I, s:o, s:o, s:o}", "id", (json_int_t)u->id, "total_tokens",
		        cmd_json_text(u->total_tokens), "prompt_tokens",
		        cmd_json_text(u->prompt_tokens), "completion_tokens",
		        cmd_json_text(u->completion_tokens)));
	}

	for (size_t i = 0; i < s->n_runs; i++) {
		const struct store_run_phases *r = &s->per_run[i];

		json_array_append_new(per_run,
		    json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:I}", "run_id",
		        cmd_json_text(r->run_id), "state", cmd_json_text(r->state), "phases",
		        (json_int_t)r->total, "queued", (json_int_t)r->queued, "executing",
		        (json_int_t)r->executing, "complete", (json_int_t)r->complete, "failed",
		        (json_int_t)r->failed));
	}
	return json_pack("{s:{s:o, s:I}, s:{s:I, s:o, s:o}, s:{s:{s:I, s:I, s:f, s:I, s:f, "
	                 "s:o, s:o}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:o}}}",
	    "phases", "by_state", cmd_counts_json(&s->phase_states), "total", (json_int_t)s->phases,
	    "runs", "total", (json_int_t)s->runs, "by_state", cmd_counts_json(&s->run_states),
	    "per_run", per_run, "telemetry", "token_estimation_v2", "total",
	    (json_int_t)s->v2_total, "success", (json_int_t)s->v2_success, "success_pct",
	    cmd_pct(s->v2_success, s->v2_total), "truncated", (json_int_t)s->v2_truncated,
	    "truncated_pct", cmd_pct(s->v2_truncated, s->v2_total), "success_by_category",
	    cmd_counts_json(&s->v2_by_category), "success_by_complexity",
	    cmd_counts_json(&s->v2_by_complexity), "llm_usage", "total", (json_int_t)s->usage_total,
	    "failed", (json_int_t)s->usage_failed, "lost", (json_int_t)s->usage_lost, "sent",
	    (json_int_t)s->usage_sent, "tokens", (json_int_t)s->usage_tokens, "excluded",
	    (json_int_t)s->usage_excluded, "excluded_rows", excluded);
}

/* Warn about an empty database (no runs and no phases) on stderr. */
static void cmd_db_check_warn_empty(struct store *st, bool allow)
{
	fprintf(stderr,
	    "\nWARNING: %s is empty: no runs and no phases.\n"
	    "Likely causes:\n"
	    "  - a fresh database that nothing has been added to yet;\n"
	    "  - the wrong database: check --db, AUTOPACK_DB_URL and DATABASE_URL (the URL\n"
	    "    above is the one in use);\n"
	    "  - the data was deleted, or the file was replaced.\n"
	    "Next steps: add work (autopack-ctl seed telemetry-run, autopack-ctl run import\n"
	    "PLAN.json) or restore a backup.\n",
	    cmd_shown(st->url));
	if (allow)
		fprintf(stderr, "Continuing because of --allow-empty-db.\n");
	else
		fprintf(stderr,
		    "Exit status 1; pass --allow-empty-db to accept an empty "
		    "database.\n");
}

/* db check: identity, state breakdown, telemetry statistics, empty-database warning. */
static int cmd_db_check_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_stats stats;
	struct store_err err;
	struct store st;
	bool allow_empty = false, empty, old;
	int c, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_db_check_opts, &ret)) != -1) {
		if (c == CMD_OPT_DONE)
			return ret;
		allow_empty = true;
	}
	if (optind != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	ret = cmd_open_read(ctx, &st, true);
	if (ret != 0)
		return ret;
	old = st.schema_version < SCHEMA_VERSION;
	if (old)
		fprintf(cmd_text_out(ctx),
		    "\nnote: schema version %d is older than this "
		    "program's (%d); `autopack-ctl db migrate` upgrades it after a backup (the "
		    "supervisor and the offline write commands do so too). Nothing was changed.\n",
		    st.schema_version, SCHEMA_VERSION);
	rc = store_stats_read(&st, &stats, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		store_close(&st);
		return ret;
	}
	empty = stats.runs == 0 && stats.phases == 0;
	if (!ctx->json)
		cmd_db_check_print(stdout, &stats);
	if (empty)
		cmd_db_check_warn_empty(&st, allow_empty);
	ret = empty && !allow_empty ? CMD_EXIT_REFUSED : CMD_EXIT_OK;
	if (ctx->json) {
		json_t *j = cmd_db_check_json(&stats);

		json_object_set_new(j, "database", cmd_identity_json(&st));
		json_object_set_new(j, "schema",
		    json_pack("{s:i, s:i, s:b}", "version", st.schema_version, "current",
		        SCHEMA_VERSION, "migration_needed", old));
		json_object_set_new(j, "empty", json_boolean(empty));
		json_object_set_new(j, "status", json_string(empty ? "empty" : "healthy"));
		json_object_set_new(j, "ok", json_boolean(ret == CMD_EXIT_OK));
		/* A refusal names itself as every other failure does. */
		if (ret != CMD_EXIT_OK) {
			char *text = xasprintf("%s is empty: no runs and no phases; pass "
			                       "--allow-empty-db to accept an empty database",
			    st.url);

			json_object_set_new(j, "error", json_string("EEMPTY"));
			json_object_set_new(j, "message", cmd_json_text(text));
			free(text);
		}
		cmd_json_print(j);
	}
	store_stats_free(&stats);
	store_close(&st);
	return ret;
}

const struct cmd_entry cmd_db_check_entry = {
	.name = "db check",
	.args = "[--json] [--allow-empty-db]",
	.summary = "show a database's identity, contents and telemetry statistics",
	.help =
	    "Opens the database read-only and prints its identity banner, the phase state\n"
	    "breakdown, run counts, telemetry statistics (token_estimation_v2 events: total,\n"
	    "success and truncation rates, successful events by category and complexity) and,\n"
	    "for a database with no runs and no phases, a warning with likely causes. An older\n"
	    "schema is reported, not changed.\n"
	    "\n"
	    "  --json            print the report as JSON on stdout (the banner goes to stderr);\n"
	    "                    an empty database's has \"ok\": false, \"error\": \"EEMPTY\"\n"
	    "  --allow-empty-db  exit 0 for an empty database\n"
	    "\n"
	    "Exit status: 0 healthy, 1 empty (unless --allow-empty-db), 2 unusable (bad URL,\n"
	    "missing file, not an autopack database, missing tables, newer schema).\n",
	.exec = cmd_db_check_exec,
};

/* db migrate: upgrade an older schema after a backup. */
static int cmd_db_migrate_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store st;
	int lock_fd, ret;

	if (cmd_db_parse_plain(ctx, argc, argv, &ret) != 0)
		return ret;
	ret = cmd_open_read(ctx, &st, false);
	if (ret != 0)
		return ret;
	if (st.schema_version == SCHEMA_VERSION) {
		store_banner(&st, cmd_text_out(ctx));
		fprintf(cmd_text_out(ctx), "schema version %d is current; nothing changed\n",
		    st.schema_version);
		if (ctx->json)
			cmd_json_print(json_pack("{s:b, s:b, s:i, s:o}", "ok", 1, "migrated", 0,
			    "schema_version", st.schema_version, "database",
			    cmd_identity_json(&st)));
		store_close(&st);
		return CMD_EXIT_OK;
	}
	store_close(&st);
	ret = cmd_open_write(ctx, &st, &lock_fd);
	if (ret != 0)
		return ret;
	if (ctx->json)
		cmd_json_print(json_pack("{s:b, s:b, s:i, s:i, s:s?, s:o}", "ok", 1, "migrated",
		    st.migrated_from != 0, "from", st.migrated_from, "to", st.schema_version,
		    "backup", st.backup_path, "database", cmd_identity_json(&st)));
	cmd_close_write(&st, lock_fd);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_db_migrate_entry = {
	.name = "db migrate",
	.args = "[--json]",
	.summary = "upgrade an older database schema (after a backup)",
	.help =
	    "Upgrades a database whose schema is older than this program's: first a copy with\n"
	    "the sqlite3 backup API to <db>.v<old>-<UTC stamp>.bak, then every migration step in\n"
	    "one transaction. A current schema is left alone. Refused while a supervisor holds\n"
	    "the database.\n"
	    "\n"
	    "  --json     print the result as JSON on stdout (the banner goes to stderr)\n",
	.exec = cmd_db_migrate_exec,
};

/* db reidentify: give a copy of a database a fresh uuid, recording the one it came from. */
static int cmd_db_reidentify_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_err err;
	struct store st;
	char *path, *url, previous[37];
	int lock_fd, rc, ret;

	if (cmd_db_parse_plain(ctx, argc, argv, &ret) != 0)
		return ret;
	if ((ret = cmd_db_resolve(ctx, &path, &url)) != 0)
		return ret;
	ret = cmd_lock(ctx, path, &lock_fd);
	if (ret == 0) {
		rc = store_open(&st, path, url, STORE_WRITE_REIDENTIFY, &err);
		if (rc == 0 && (rc = store_lock_check(lock_fd, &st, &err)) != 0)
			store_close(&st);
		if (rc == 0 && (rc = store_meta_reidentify(&st, previous, &err)) != 0)
			store_close(&st);
		if (rc != 0) {
			ret = cmd_fail(ctx, rc, "%s", err.text);
			store_lock_release(lock_fd);
		}
	}
	free(path);
	free(url);
	if (ret != 0)
		return ret;
	store_banner(&st, cmd_text_out(ctx));
	fprintf(cmd_text_out(ctx),
	    "%s has the new uuid %s; its previous uuid %s is recorded in control_log\n",
	    cmd_shown(st.url), st.uuid, previous);
	if (ctx->json)
		cmd_json_print(json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "uuid", st.uuid,
		    "previous_uuid", previous, "database", cmd_identity_json(&st)));
	cmd_close_write(&st, lock_fd);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_db_reidentify_entry = {
	.name = "db reidentify",
	.args = "[--json]",
	.summary = "give a copied database its own identity (a fresh uuid)",
	.help =
	    "A byte copy of a database (cp, a restored backup) carries the uuid of the database\n"
	    "it was copied from; while a supervisor serves one of them, a supervisor of the\n"
	    "other refuses to start. A PostgreSQL dump restored into another database or onto\n"
	    "another server is refused by every command. This gives the database named by --db\n"
	    "a fresh random uuid (on PostgreSQL also records the server identity it now has),\n"
	    "clears the supervisor record it copied, and records the previous uuid in\n"
	    "control_log (command 'db reidentify'). It also repairs a meta.db_uuid that is not a\n"
	    "canonical UUID. Refused while a supervisor holds the database.\n"
	    "\n"
	    "  --json     print the result as JSON on stdout (the banner goes to stderr)\n",
	.exec = cmd_db_reidentify_exec,
};
