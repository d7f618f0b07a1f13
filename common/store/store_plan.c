/* Plan import: the database-side checks and the all-or-nothing write. */
#include "common/store/store_internal.h"
#include "common/store/store_plan.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Defaults of the data model for fields a plan leaves out. */
#define PLAN_DEFAULT_SAFETY "normal"
#define PLAN_DEFAULT_SCOPE "multi_tier"
#define PLAN_DEFAULT_TOKEN_CAP 5000000
#define PLAN_DEFAULT_MAX_PHASES 25
#define PLAN_DEFAULT_MAX_MINUTES 120

/* Return o[key] as a string, or NULL if absent or null. */
static const char *plan_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Bind o[key] (an integer or absent) to parameter i, defaulting to `def` (< 0: NULL). */
static void plan_bind_int(sqlite3_stmt *q, int i, const json_t *o, const char *key, int64_t def)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		sqlite3_bind_int64(q, i, json_integer_value(v));
	else if (def >= 0)
		sqlite3_bind_int64(q, i, def);
	else
		sqlite3_bind_null(q, i);
}

/* Collapse "." and ".." components of an absolute path, lexically. */
static char *plan_normalize(const char *abs)
{
	char *out = xmalloc(strlen(abs) + 2);
	size_t len = 0;
	const char *p = abs;

	while (*p != '\0') {
		const char *e;
		size_t n;

		while (*p == '/')
			p++;
		e = strchr(p, '/');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
		}
		p += n;
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

/* Make a path absolute and collapse . and .. lexically; NULL if the cwd is unreadable. */
char *store_path_absolute(const char *path, const char *base_dir)
{
	char cwd[PATH_MAX];
	char *joined, *out;

	if (path[0] == '/')
		return plan_normalize(path);
	if (base_dir == NULL) {
		if (getcwd(cwd, sizeof cwd) == NULL)
			return NULL;
		base_dir = cwd;
	}
	joined = xasprintf("%s/%s", base_dir, path);
	out = plan_normalize(joined);
	free(joined);
	return out;
}

/* Check the plan against the database: new runs must not exist, appended runs must,
 * and appended phases must not collide with the run's phases. */
static int plan_check_db(
    struct store *st, const json_t *doc, const char *source, struct store_err *err)
{
	json_t *r, *t, *ph;
	size_t i, j, k;
	int rc;

	json_array_foreach(json_object_get(doc, "runs"), i, r)
	{
		const char *run_id = plan_str(r, "run_id");
		bool append = json_is_true(json_object_get(r, "append"));

		rc = store_row_exists(st->db, err, "SELECT 1 FROM runs WHERE id = ?1",
		    (const char *const[]){ run_id, NULL }, "%s", st->path);
		if (rc < 0)
			return rc;
		if (rc == 1 && !append)
			return store_fail(err, STORE_EINVAL,
			    "%s: runs[%zu].run_id: run \"%s\" already exists in %s (to add tiers "
			    "to it, give the entry \"append\": true)",
			    source, i, run_id, st->url);
		if (rc == 0 && append)
			return store_fail(err, STORE_EINVAL,
			    "%s: runs[%zu].run_id: unknown run \"%s\": \"append\": true adds tiers "
			    "to an existing run, and %s has no such run",
			    source, i, run_id, st->url);
		if (!append)
			continue;
		json_array_foreach(json_object_get(r, "tiers"), j, t)
		{
			json_array_foreach(json_object_get(t, "phases"), k, ph)
			{
				const char *pid = plan_str(ph, "phase_id");

				rc = store_row_exists(st->db, err,
				    "SELECT 1 FROM phases WHERE run_id = ?1 AND phase_id = ?2",
				    (const char *const[]){ run_id, pid, NULL }, "%s", st->path);
				if (rc < 0)
					return rc;
				if (rc == 1)
					return store_fail(err, STORE_EINVAL,
					    "%s: runs[%zu].tiers[%zu].phases[%zu].phase_id: phase \"%s\" "
					    "already exists in run \"%s\"",
					    source, i, j, k, pid, run_id);
			}
		}
	}
	return 0;
}

/* Insert a new run row. */
static int plan_insert_run(
    struct store *st, const json_t *r, const char *base_dir, const char *now, struct store_err *err)
{
	sqlite3_stmt *q = NULL;
	char *ws;
	const char *s;
	int rc;

	assert(base_dir != NULL || plan_str(r, "workspace")[0] == '/');
	ws = store_path_absolute(plan_str(r, "workspace"), base_dir);
	if ((rc = mkdir_p(ws, 0755)) != 0) {
		store_fail(err, STORE_EINVAL, "cannot create workspace %s for run %s: %s", ws,
		    plan_str(r, "run_id"), strerror(-rc));
		free(ws);
		return STORE_EINVAL;
	}
	rc = sqlite3_prepare_v2(st->db,
	    "INSERT INTO runs (id, state, goal_anchor, workspace, safety_profile, run_scope, "
	    "token_cap, max_phases, max_duration_minutes, created_at, updated_at) "
	    "VALUES (?1, 'RUN_CREATED', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
	    -1, &q, NULL);

	if (rc == SQLITE_OK) {
		store_bind_text(q, 1, plan_str(r, "run_id"));
		store_bind_text(q, 2, plan_str(r, "goal"));
		store_bind_text(q, 3, ws);
		s = plan_str(r, "safety_profile");
		store_bind_text(q, 4, s != NULL ? s : PLAN_DEFAULT_SAFETY);
		s = plan_str(r, "run_scope");
		store_bind_text(q, 5, s != NULL ? s : PLAN_DEFAULT_SCOPE);
		plan_bind_int(q, 6, r, "token_cap", PLAN_DEFAULT_TOKEN_CAP);
		plan_bind_int(q, 7, r, "max_phases", PLAN_DEFAULT_MAX_PHASES);
		plan_bind_int(q, 8, r, "max_duration_minutes", PLAN_DEFAULT_MAX_MINUTES);
		store_bind_text(q, 9, now);
	}
	rc = store_step_done(
	    st->db, q, rc, err, "%s: writing run %s", st->path, plan_str(r, "run_id"));
	free(ws);
	return rc;
}

/* Insert a tier row at `index`; its row id goes to *tier_row. */
static int plan_insert_tier(struct store *st, const char *run_id, const json_t *t, int64_t index,
    const char *now, int64_t *tier_row, struct store_err *err)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(st->db,
	    "INSERT INTO tiers (tier_id, run_id, tier_index, name, description, state, "
	    "token_cap, ci_run_cap, created_at, updated_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?7, ?8, ?8)",
	    -1, &q, NULL);

	if (rc == SQLITE_OK) {
		store_bind_text(q, 1, plan_str(t, "tier_id"));
		store_bind_text(q, 2, run_id);
		sqlite3_bind_int64(q, 3, index);
		store_bind_text(q, 4, plan_str(t, "name"));
		store_bind_text(q, 5, plan_str(t, "description"));
		plan_bind_int(q, 6, t, "token_cap", -1);
		plan_bind_int(q, 7, t, "ci_run_cap", -1);
		store_bind_text(q, 8, now);
	}
	rc = store_step_done(st->db, q, rc, err, "%s: writing tier %s of run %s", st->path,
	    plan_str(t, "tier_id"), run_id);
	*tier_row = sqlite3_last_insert_rowid(st->db);
	return rc;
}

/* Serialise a phase's scope with all three lists present. */
static char *plan_scope_json(const json_t *scope)
{
	static const char *const keys[] = { "paths", "read_only_context", "deliverables" };
	json_t *out = json_object();
	char *text;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *v = json_object_get(scope, keys[i]);

		json_object_set_new(
		    out, keys[i], json_is_array(v) ? json_deep_copy(v) : json_array());
	}
	text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(out);
	if (text == NULL) {
		fprintf(stderr, "autopack: out of memory serialising a scope\n");
		abort();
	}
	return text;
}

/* Insert a phase row. */
static int plan_insert_phase(struct store *st, const char *run_id, int64_t tier_row,
    const json_t *ph, int64_t index, const char *now, struct store_err *err)
{
	sqlite3_stmt *q = NULL;
	char *scope = plan_scope_json(json_object_get(ph, "scope"));
	int rc = sqlite3_prepare_v2(st->db,
	    "INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name, description, "
	    "state, task_category, complexity, builder_mode, phase_type, scope, check_command, "
	    "max_builder_attempts, max_auditor_attempts, incident_token_cap, created_at, "
	    "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'QUEUED', ?7, ?8, ?9, ?10, ?11, ?12, "
	    "?13, ?14, ?15, ?16, ?16)",
	    -1, &q, NULL);

	if (rc == SQLITE_OK) {
		store_bind_text(q, 1, plan_str(ph, "phase_id"));
		store_bind_text(q, 2, run_id);
		sqlite3_bind_int64(q, 3, tier_row);
		sqlite3_bind_int64(q, 4, index);
		store_bind_text(q, 5, plan_str(ph, "name"));
		store_bind_text(q, 6, plan_str(ph, "description"));
		store_bind_text(q, 7, plan_str(ph, "task_category"));
		store_bind_text(q, 8, plan_str(ph, "complexity"));
		store_bind_text(q, 9, plan_str(ph, "builder_mode"));
		store_bind_text(q, 10, plan_str(ph, "phase_type"));
		store_bind_text(q, 11, scope);
		store_bind_text(q, 12, plan_str(ph, "check_command"));
		plan_bind_int(q, 13, ph, "max_builder_attempts", -1);
		plan_bind_int(q, 14, ph, "max_auditor_attempts", -1);
		plan_bind_int(q, 15, ph, "incident_token_cap", -1);
		store_bind_text(q, 16, now);
	}
	rc = store_step_done(st->db, q, rc, err, "%s: writing phase %s of run %s", st->path,
	    plan_str(ph, "phase_id"), run_id);
	free(scope);
	return rc;
}

/* Write one run entry: the run (unless appending), then its tiers and phases. */
static int plan_write_run(struct store *st, const json_t *r, const char *base_dir, const char *now,
    struct store_plan_summary *sum, struct store_err *err)
{
	const char *run_id = plan_str(r, "run_id");
	int64_t base = 0, tier_row = 0;
	json_t *t, *ph;
	size_t i, j;
	int rc = 0;
	char *sql;

	if (json_is_true(json_object_get(r, "append"))) {
		sql = sqlite3_mprintf("SELECT coalesce(max(tier_index) + 1, 0) FROM tiers "
		                      "WHERE run_id = %Q",
		    run_id);
		rc = store_query_int(st->db, sql, &base, err);
		sqlite3_free(sql);
	} else {
		rc = plan_insert_run(st, r, base_dir, now, err);
	}
	json_array_foreach(json_object_get(r, "tiers"), i, t)
	{
		if (rc == 0)
			rc = plan_insert_tier(
			    st, run_id, t, base + (int64_t)i, now, &tier_row, err);
		json_array_foreach(json_object_get(t, "phases"), j, ph)
		{
			if (rc == 0)
				rc = plan_insert_phase(
				    st, run_id, tier_row, ph, (int64_t)j, now, err);
			sum->phases += rc == 0;
		}
		sum->tiers += rc == 0;
	}
	return rc;
}

/* Check the plan (shape, then database), then write it in one transaction. */
int store_plan_import_json(struct store *st, json_t *doc, const char *base_dir, const char *source,
    struct store_plan_summary *sum, struct store_err *err)
{
	char now[32];
	json_t *r;
	size_t i;
	int rc;

	assert(st->writable);
	memset(sum, 0, sizeof *sum);
	rc = store_plan_check(doc, source, err);
	if (rc != 0)
		return rc;
	rc = store_exec(st->db, "BEGIN IMMEDIATE", "starting the import", err);
	if (rc != 0)
		return rc;
	rc = plan_check_db(st, doc, source, err);
	time_iso8601(clock_wall_ms(), now);
	json_array_foreach(json_object_get(doc, "runs"), i, r)
	{
		if (rc != 0)
			break;
		rc = plan_write_run(st, r, base_dir, now, sum, err);
	}
	if (rc == 0)
		rc = store_exec(st->db, "COMMIT", "committing the import", err);
	if (rc != 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		store_plan_summary_free(sum);
		return rc;
	}
	sum->n_runs = json_array_size(json_object_get(doc, "runs"));
	sum->run_ids = xcalloc(sum->n_runs, sizeof *sum->run_ids);
	json_array_foreach(json_object_get(doc, "runs"), i, r)
	    sum->run_ids[i] = xstrdup(plan_str(r, "run_id"));
	return 0;
}

/* Parse plan text and import it; invalid JSON is STORE_EINVAL with line and column. */
int store_plan_import(struct store *st, const char *text, size_t len, const char *base_dir,
    const char *source, struct store_plan_summary *sum, struct store_err *err)
{
	json_error_t jerr;
	json_t *doc;
	int rc;

	memset(sum, 0, sizeof *sum);
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		return store_fail(err, STORE_EINVAL, "%s:%d:%d: invalid JSON: %s", source,
		    jerr.line, jerr.column, jerr.text);
	rc = store_plan_import_json(st, doc, base_dir, source, sum, err);
	json_decref(doc);
	return rc;
}

/* Read a plan file and import it relative to its directory. */
int store_plan_import_file(
    struct store *st, const char *path, struct store_plan_summary *sum, struct store_err *err)
{
	char real[PATH_MAX];
	char *dir, *slash, *text = NULL;
	size_t len = 0, cap = 0;
	FILE *f;
	int rc;

	memset(sum, 0, sizeof *sum);
	if (realpath(path, real) == NULL || (f = fopen(real, "r")) == NULL)
		return store_fail(
		    err, STORE_EINVAL, "%s: cannot read the plan: %s", path, strerror(errno));
	for (;;) {
		size_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			text = xrealloc(text, cap);
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	rc = ferror(f) ?
	    store_fail(err, STORE_EINVAL, "%s: cannot read the plan: %s", path, strerror(errno)) :
	    0;
	fclose(f);
	slash = strrchr(real, '/');
	dir = slash == real ? xstrdup("/") : xstrndup(real, (size_t)(slash - real));
	if (rc == 0)
		rc = store_plan_import(st, text, len, dir, path, sum, err);
	free(dir);
	free(text);
	return rc;
}

/* Free an import summary. */
void store_plan_summary_free(struct store_plan_summary *sum)
{
	for (size_t i = 0; i < sum->n_runs; i++)
		free(sum->run_ids[i]);
	free(sum->run_ids);
	memset(sum, 0, sizeof *sum);
}
