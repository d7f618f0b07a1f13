/* Plan import: the database-side checks and the all-or-nothing write. */
#include "common/store/store_internal.h"
#include "common/store/store_original.h"
#include "common/store/store_plan.h"
#include "common/store/store_scope.h"
#include "common/joblimits.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
static void plan_bind_int(struct db_stmt *q, int i, const json_t *o, const char *key, int64_t def)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		db_bind_int64(q, i, json_integer_value(v));
	else if (def >= 0)
		db_bind_int64(q, i, def);
	else
		db_bind_null(q, i);
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

/* Return the absolute workspace of run entry `r`. */
static char *plan_workspace(const json_t *r, const char *base_dir)
{
	assert(base_dir != NULL || plan_str(r, "workspace")[0] == '/');
	return store_path_absolute(plan_str(r, "workspace"), base_dir);
}

/* Insert a new run row. */
static int plan_insert_run(
    struct store *st, const json_t *r, const char *base_dir, const char *now, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *ws = plan_workspace(r, base_dir);
	char *sql = store_original_insert_sql(st->db, "runs",
	    "id, state, goal_anchor, workspace, safety_profile, run_scope, token_cap, max_phases, "
	    "max_duration_minutes, created_at, updated_at",
	    "?1, 'RUN_CREATED', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9");
	const char *s;
	int rc;

	if (strlen(ws) > JOB_PATH_MAX) {
		rc = store_fail(err, STORE_EINVAL,
		    "run %s: workspace %.100s... is %zu bytes; a job carries at most %u",
		    plan_str(r, "run_id"), ws, strlen(ws), JOB_PATH_MAX);
		free(ws);
		free(sql);
		return rc;
	}
	rc = db_prepare(st->db, sql, &q);
	if (rc == DB_OK) {
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
	free(sql);
	free(ws);
	return rc;
}

/* Directories an import created, removed again if it fails. */
struct plan_dirs {
	char **made; /* pairs: a workspace created, then the outermost directory made for it */
	size_t n;
};

/* Return the outermost missing directory on the way to `dir` (heap), NULL if it exists. */
static char *plan_first_missing(const char *dir)
{
	char *p = xstrdup(dir), *missing = NULL, *slash;
	struct stat sb;

	while (stat(p, &sb) != 0) {
		free(missing);
		missing = xstrdup(p);
		slash = strrchr(p, '/');
		if (slash == NULL || slash == p)
			break;
		*slash = '\0';
	}
	free(p);
	return missing;
}

/* Create run `run_id`'s workspace `dir` and its missing parents, remembering which were
 * new; STORE_EINVAL when it cannot be made or exists as something else than a directory. */
static int plan_mkdir(
    struct plan_dirs *dirs, const char *dir, const char *run_id, struct store_err *err)
{
	char *top = plan_first_missing(dir);
	int rc = mkdir_p(dir, 0755);
	struct stat sb;

	if (rc != 0) {
		free(top);
		return store_fail(err, STORE_EINVAL, "cannot create workspace %s for run %s: %s",
		    dir, run_id, strerror(-rc));
	}
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		free(top);
		return store_fail(err, STORE_EINVAL,
		    "workspace %s for run %s exists and is not a directory", dir, run_id);
	}
	if (top != NULL) {
		dirs->made = xrealloc(dirs->made, (dirs->n + 2) * sizeof *dirs->made);
		dirs->made[dirs->n++] = xstrdup(dir);
		dirs->made[dirs->n++] = top;
	}
	return 0;
}

/* Remove the directories an import created (those still empty), then forget them. */
static void plan_dirs_undo(struct plan_dirs *dirs, bool remove)
{
	for (size_t i = 0; i + 1 < dirs->n; i += 2) {
		char *d = dirs->made[i], *slash;
		const char *top = dirs->made[i + 1];

		while (remove && rmdir(d) == 0 && strcmp(d, top) != 0 &&
		    (slash = strrchr(d, '/')) != NULL)
			*slash = '\0';
		free(dirs->made[i]);
		free(dirs->made[i + 1]);
	}
	free(dirs->made);
	memset(dirs, 0, sizeof *dirs);
}

/* Insert a tier row at `index`; its row id goes to *tier_row. */
static int plan_insert_tier(struct store *st, const char *run_id, const json_t *t, int64_t index,
    const char *now, int64_t *tier_row, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *ins = store_original_insert_sql(st->db, "tiers",
	    "tier_id, run_id, tier_index, name, description, state, token_cap, ci_run_cap, "
	    "created_at, updated_at",
	    "?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?7, ?8, ?8");
	char *sql = xasprintf("%s RETURNING id", ins);
	int rc = db_prepare(st->db, sql, &q);

	if (rc == DB_OK) {
		store_bind_text(q, 1, plan_str(t, "tier_id"));
		store_bind_text(q, 2, run_id);
		db_bind_int64(q, 3, index);
		store_bind_text(q, 4, plan_str(t, "name"));
		store_bind_text(q, 5, plan_str(t, "description"));
		plan_bind_int(q, 6, t, "token_cap", -1);
		plan_bind_int(q, 7, t, "ci_run_cap", -1);
		store_bind_text(q, 8, now);
	}
	rc = store_step_id(st->db, q, rc, tier_row, err, "%s: writing tier %s of run %s", st->path,
	    plan_str(t, "tier_id"), run_id);
	free(ins);
	free(sql);
	return rc;
}

/* Return a JSON array of the list's paths. */
static json_t *plan_list_json(const struct store_scope_list *l)
{
	json_t *a = json_array();

	for (size_t i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

/* Serialise a phase's scope (any shape, already checked) as the usual object: paths,
 * read_only_context as given, deliverables as one list. */
static char *plan_scope_json(const json_t *scope)
{
	json_t *out = json_object(), *inner = NULL, *ctx;
	const json_t *obj = scope;
	struct store_scope sc;
	char why[256], *text;

	if (store_scope_parse_json(scope, &sc, why, sizeof why) != 0)
		abort(); /* store_plan_check accepted it */
	if (json_is_string(scope) &&
	    (inner = json_loads(json_string_value(scope), 0, NULL)) != NULL)
		obj = inner;
	ctx = json_object_get(obj, "read_only_context");
	json_object_set_new(out, "paths", plan_list_json(&sc.paths));
	json_object_set_new(out, "read_only_context",
	    json_is_array(ctx) ? json_deep_copy(ctx) : plan_list_json(&sc.context));
	json_object_set_new(out, "deliverables", plan_list_json(&sc.deliverables));
	text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(out);
	json_decref(inner);
	store_scope_free(&sc);
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
	struct db_stmt *q = NULL;
	char *scope = plan_scope_json(json_object_get(ph, "scope"));
	char *sql = store_original_insert_sql(st->db, "phases",
	    "phase_id, run_id, tier_id, phase_index, name, description, state, task_category, "
	    "complexity, builder_mode, phase_type, scope, check_command, max_builder_attempts, "
	    "max_auditor_attempts, incident_token_cap, created_at, updated_at",
	    "?1, ?2, ?3, ?4, ?5, ?6, 'QUEUED', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16");
	int rc = db_prepare(st->db, sql, &q);

	if (rc == DB_OK) {
		store_bind_text(q, 1, plan_str(ph, "phase_id"));
		store_bind_text(q, 2, run_id);
		db_bind_int64(q, 3, tier_row);
		db_bind_int64(q, 4, index);
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
	free(sql);
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
		sql = db_sqlf("SELECT coalesce(max(tier_index) + 1, 0) FROM tiers "
		              "WHERE run_id = %Q",
		    run_id);
		rc = store_query_int(st->db, sql, &base, err);
		free(sql);
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
	struct plan_dirs dirs = { 0 };
	char now[32];
	json_t *r;
	size_t i;
	int rc;

	assert(st->writable);
	memset(sum, 0, sizeof *sum);
	rc = store_plan_check(doc, source, err);
	if (rc != 0)
		return rc;
	rc = store_begin(st->db, "starting the import", err);
	if (rc != 0)
		return rc;
	rc = plan_check_db(st, doc, source, err);
	time_db_now(now);
	json_array_foreach(json_object_get(doc, "runs"), i, r)
	{
		if (rc != 0)
			break;
		rc = plan_write_run(st, r, base_dir, now, sum, err);
	}
	json_array_foreach(json_object_get(doc, "runs"), i, r)
	{
		char *ws;

		if (rc != 0 || json_is_true(json_object_get(r, "append")))
			continue;
		ws = plan_workspace(r, base_dir);
		rc = plan_mkdir(&dirs, ws, plan_str(r, "run_id"), err);
		free(ws);
	}
	if (rc == 0)
		rc = store_commit(st->db, "committing the import", err);
	plan_dirs_undo(&dirs, rc != 0);
	if (rc != 0) {
		db_rollback(st->db);
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
	size_t bom = utf8_bom_len(text, len);
	json_error_t jerr;
	json_t *doc;
	int rc;

	memset(sum, 0, sizeof *sum);
	if (len == bom)
		return store_fail(
		    err, STORE_EINVAL, "%s: empty file, expected a JSON plan", source);
	doc = json_loadb(text + bom, len - bom, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		return store_fail(err, STORE_EINVAL, "%s:%d:%d: invalid JSON: %s", source,
		    jerr.line, jerr.column, jerr.text);
	rc = store_plan_import_json(st, doc, base_dir, source, sum, err);
	json_decref(doc);
	return rc;
}

/* Read a plan file whole (a pipe too), up to STORE_PLAN_MAX bytes. */
int store_plan_read(const char *path, struct store_plan_text *pt, struct store_err *err)
{
	char real[PATH_MAX], *slash;
	int rc;

	memset(pt, 0, sizeof *pt);
	rc = file_read_all(path, STORE_PLAN_MAX, &pt->text, &pt->len, &pt->regular);
	if (rc == -EFBIG)
		return store_fail(err, STORE_EINVAL, "%s: the plan is larger than %d MiB", path,
		    STORE_PLAN_MAX >> 20);
	if (rc != 0)
		return store_fail(
		    err, STORE_EINVAL, "%s: cannot read the plan: %s", path, strerror(-rc));
	if (pt->regular && realpath(path, real) != NULL) {
		slash = strrchr(real, '/');
		pt->base_dir = slash == real ? xstrdup("/") :
		                               xstrndup(real, (size_t)(slash - real));
	} else {
		pt->base_dir = store_path_absolute(".", NULL);
		if (pt->base_dir == NULL) {
			store_plan_text_free(pt);
			return store_fail(err, STORE_EINVAL,
			    "%s: cannot resolve the plan's workspaces: the current directory "
			    "cannot be read",
			    path);
		}
	}
	return 0;
}

/* Free what store_plan_read filled in. */
void store_plan_text_free(struct store_plan_text *pt)
{
	free(pt->text);
	free(pt->base_dir);
	memset(pt, 0, sizeof *pt);
}

/* Read a plan file and import it relative to its directory. */
int store_plan_import_file(
    struct store *st, const char *path, struct store_plan_summary *sum, struct store_err *err)
{
	struct store_plan_text pt;
	int rc;

	memset(sum, 0, sizeof *sum);
	rc = store_plan_read(path, &pt, err);
	if (rc == 0)
		rc = store_plan_import(st, pt.text, pt.len, pt.base_dir, path, sum, err);
	store_plan_text_free(&pt);
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
