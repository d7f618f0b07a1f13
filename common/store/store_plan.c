/* Plan import: the database-side checks and the all-or-nothing write. */
#include "common/store/store_internal.h"
#include "common/store/store_original.h"
#include "common/store/store_plan.h"
#include "common/store/store_plan_overlap.h"
#include "common/store/store_plan_stream.h"
#include "common/store/store_scope.h"
#include "common/joblimits.h"
#include "common/relpath.h"
#include "common/strtab.h"
#include "common/sysdirs.h"
#include "common/util.h"
#include "common/utf8.h"

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

/* Bind `v` (an integer, or NULL or null) to parameter i, defaulting to `def` (< 0: NULL). */
static void plan_bind_value_int(struct db_stmt *q, int i, const json_t *v, int64_t def)
{
	if (json_is_integer(v))
		db_bind_int64(q, i, json_integer_value(v));
	else if (def >= 0)
		db_bind_int64(q, i, def);
	else
		db_bind_null(q, i);
}

/* Bind o[key] (an integer or absent) to parameter i, defaulting to `def` (< 0: NULL). */
static void plan_bind_int(struct db_stmt *q, int i, const json_t *o, const char *key, int64_t def)
{
	plan_bind_value_int(q, i, json_object_get(o, key), def);
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

/* Directories an import created, removed again if it fails. */
struct plan_dirs {
	char **made; /* pairs: a workspace created, then the outermost directory made for it */
	size_t n;
};

/* The most phases one statement inserts: a run's phases go in as few statements as this
 * allows (a statement's own cost, its cursors and checks, is most of a one-row insert's). */
#define PLAN_ROWS 16
/* The parameters of a phase row. */
#define PLAN_PHASE_PARAMS 16

/* A phase row waiting for its insert. */
struct plan_row {
	const struct store_plan_phase *ph;
	int64_t tier_row, index;
};

/* One import in progress: its transaction, its statements (prepared once, whatever the
 * plan's size), the run ids seen and the directories made. */
struct plan_writer {
	struct store *st;
	const char *base_dir;
	const char *source;
	char now[32];
	struct db_stmt *run, *tier;
	struct db_stmt *phases[PLAN_ROWS + 1]; /* phases[n] inserts n rows; prepared when needed */
	struct plan_row rows[PLAN_ROWS];
	size_t nrows;
	struct db_stmt *run_exists, *phase_exists, *tier_exists, *tier_next, *run_scopes;
	struct plan_overlap ov; /* the deliverables of the run entry being imported */
	struct plan_dirs dirs;
	struct store_plan_summary *sum;
	struct strtab ids; /* sum->run_ids: id k is sum->run_ids[k] */
	size_t runs_cap;
	char *last_ws; /* the workspace made last: runs often share one */
};

/* The run, tier and phase inserts bind their texts without a copy (db_bind_text_kept):
 * the run's values, the scope texts and pw->now outlive the step, after which plan_step
 * clears the bindings. */

/* Step a prepared statement of the import to its end (reading the id of its one row when
 * `id` is not NULL) and reset it; STORE_EIO naming `what` on failure. */
static int plan_step(struct plan_writer *pw, struct db_stmt *q, int64_t *id, const char *what,
    const char *run_id, struct store_err *err)
{
	int rc = db_step(q);

	if (rc == DB_ROW && id != NULL) {
		*id = db_column_int64(q, 0);
		rc = db_step(q);
	} else if (rc == DB_DONE && id != NULL) {
		*id = db_last_insert_id(pw->st->db);
	}
	if (rc != DB_DONE)
		rc = store_fail(err, STORE_EIO, "%s: writing %s of run %s: %s", pw->st->path, what,
		    run_id, db_errmsg(pw->st->db));
	else
		rc = 0;
	db_reset(q);
	db_clear_bindings(q);
	return rc;
}

/* Step a prepared query of the import with text parameters `a` and `b` (NULL: none) and
 * reset it: 1 with its first column in *v when it has a row, 0 when not, STORE_EIO. */
static int plan_query(struct plan_writer *pw, struct db_stmt *q, const char *a, const char *b,
    int64_t *v, struct store_err *err)
{
	int rc;

	store_bind_text(q, 1, a);
	if (b != NULL)
		store_bind_text(q, 2, b);
	rc = db_step(q);
	if (rc == DB_ROW && v != NULL)
		*v = db_column_int64(q, 0);
	if (rc == DB_ROW || rc == DB_DONE)
		rc = rc == DB_ROW;
	else
		rc = store_fail(err, STORE_EIO, "%s: reading run %s: %s", pw->st->path, a,
		    db_errmsg(pw->st->db));
	db_reset(q);
	db_clear_bindings(q);
	return rc;
}

/* The highest tier index an appended tier may get: the original's tier_index is a 32-bit
 * INTEGER on PostgreSQL. */
#define PLAN_TIER_INDEX_MAX INT32_MAX

/* Set *base to the index of the first of `ntiers` tiers appended to run `run_id`: one past
 * its highest. STORE_EINVAL, naming the tier, when that index is not an integer the
 * appended tiers can follow (text, a real or a blob another program wrote sorts after
 * every integer; 2^63-1 has no successor): they would not come after it. */
static int plan_tier_base(
    struct plan_writer *pw, const char *run_id, size_t ntiers, int64_t *base, struct store_err *err)
{
	struct db_stmt *q = pw->tier_next;
	int rc;

	*base = 0;
	store_bind_text(q, 1, run_id);
	rc = db_step(q);
	if (rc == DB_ROW && db_column_type(q, 2) == DB_INTEGER &&
	    db_column_int64(q, 2) <= PLAN_TIER_INDEX_MAX - (int64_t)ntiers) {
		*base = db_column_int64(q, 2) + 1;
		rc = 0;
	} else if (rc == DB_ROW) {
		char *v = utf8_clean(
		    db_column_type(q, 2) == DB_NULL ? "NULL" : db_column_text(q, 2), 40);

		rc = store_fail(err, STORE_EINVAL,
		    "%s: run \"%s\": its tier %s (tiers.id %lld) has tier_index %s, which the "
		    "appended tiers cannot follow (they need an integer index below %lld after it)",
		    pw->source, run_id, db_column_text(q, 0), (long long)db_column_int64(q, 1), v,
		    (long long)PLAN_TIER_INDEX_MAX - (long long)ntiers + 1);
		free(v);
	} else if (rc == DB_DONE) {
		rc = 0;
	} else {
		rc = store_fail(err, STORE_EIO, "%s: reading the tiers of run %s: %s", pw->st->path,
		    run_id, db_errmsg(pw->st->db));
	}
	db_reset(q);
	db_clear_bindings(q);
	return rc;
}

/* Check run entry `r` (runs[i]) against the database: a new run must not exist, an
 * appended one must, and appended tiers and phases must not collide with the run's tiers
 * and phases (a tier id the run has was appended again: two tiers of one id). */
static int plan_check_db(struct plan_writer *pw, const json_t *r, size_t i, struct store_err *err)
{
	struct store *st = pw->st;
	const char *run_id = plan_str(r, "run_id");
	bool append = json_is_true(json_object_get(r, "append"));
	json_t *t, *ph;
	size_t j, k;
	int rc;

	rc = plan_query(pw, pw->run_exists, run_id, NULL, NULL, err);
	if (rc < 0)
		return rc;
	if (rc == 1 && !append)
		return store_fail(err, STORE_EINVAL,
		    "%s: runs[%zu].run_id: run \"%s\" already exists in %s (to add tiers "
		    "to it, give the entry \"append\": true)",
		    pw->source, i, run_id, st->url);
	if (rc == 0 && append)
		return store_fail(err, STORE_EINVAL,
		    "%s: runs[%zu].run_id: unknown run \"%s\": \"append\": true adds tiers "
		    "to an existing run, and %s has no such run",
		    pw->source, i, run_id, st->url);
	if (!append)
		return 0;
	json_array_foreach(json_object_get(r, "tiers"), j, t)
	{
		const char *tid = plan_str(t, "tier_id");

		rc = plan_query(pw, pw->tier_exists, run_id, tid, NULL, err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return store_fail(err, STORE_EINVAL,
			    "%s: runs[%zu].tiers[%zu].tier_id: tier \"%s\" already exists in run "
			    "\"%s\"",
			    pw->source, i, j, tid, run_id);
		json_array_foreach(json_object_get(t, "phases"), k, ph)
		{
			const char *pid = plan_str(ph, "phase_id");

			rc = plan_query(pw, pw->phase_exists, run_id, pid, NULL, err);
			if (rc < 0)
				return rc;
			if (rc == 1)
				return store_fail(err, STORE_EINVAL,
				    "%s: runs[%zu].tiers[%zu].phases[%zu].phase_id: phase \"%s\" "
				    "already exists in run \"%s\"",
				    pw->source, i, j, k, pid, run_id);
		}
	}
	return 0;
}

/* Name phase number `k` of run entry `r` (runs[i]) into buf (n bytes): its id and where
 * it is in the plan. */
static void plan_phase_named(const json_t *r, size_t i, size_t k, char *buf, size_t n)
{
	const json_t *t, *phs;
	size_t j;

	json_array_foreach(json_object_get(r, "tiers"), j, t)
	{
		phs = json_object_get(t, "phases");
		if (k < json_array_size(phs)) {
			snprintf(buf, n, "phase \"%s\" (runs[%zu].tiers[%zu].phases[%zu])",
			    plan_str(json_array_get(phs, k), "phase_id"), i, j, k);
			return;
		}
		k -= json_array_size(phs);
	}
	snprintf(buf, n, "a phase");
}

/* Check the deliverables of the phases appended by run entry `r` (runs[i], recorded in
 * pw->ov) against those of the phases the run already has, whatever their state (a phase
 * that ran left its files; one queued, failed or cancelled may run yet): STORE_EINVAL
 * naming both phases and both paths when one lies under a file of the other. A row whose
 * scope cannot be read (another program's) is left to the worker. */
static int plan_check_appended(
    struct plan_writer *pw, const json_t *r, size_t i, struct store_err *err)
{
	struct db_stmt *q = pw->run_scopes;
	const char *run_id = plan_str(r, "run_id");
	char norm[JOB_PATH_MAX + 1], why[256], old[200], added[200], msg[700];
	struct plan_overlap_clash c;
	struct store_scope sc;
	int rc, found = 0;

	store_bind_text(q, 1, run_id);
	while (found == 0 && (rc = db_step(q)) == DB_ROW) {
		if (store_scope_parse_text(db_column_text(q, 1), &sc, why, sizeof why) != 0)
			continue;
		for (size_t k = 0; found == 0 && k < sc.deliverables.n; k++)
			found = relpath_norm(sc.deliverables.items[k], norm, sizeof norm) == NULL &&
			    plan_overlap_probe(&pw->ov, norm, &c) == 1;
		if (found) {
			snprintf(old, sizeof old, "phase \"%.128s\" (already in run \"%s\")",
			    db_column_text(q, 0), run_id);
			plan_phase_named(r, i,
			    c.file_phase != PLAN_OVERLAP_NONE ? c.file_phase : c.under_phase, added,
			    sizeof added);
			plan_overlap_say(msg, sizeof msg, &c,
			    c.file_phase != PLAN_OVERLAP_NONE ? added : old,
			    c.file_phase != PLAN_OVERLAP_NONE ? old : added);
		}
		store_scope_free(&sc);
	}
	if (found)
		rc = store_fail(err, STORE_EINVAL, "%s: runs[%zu]: %s", pw->source, i, msg);
	else if (rc != DB_DONE)
		rc = store_fail(err, STORE_EIO, "%s: reading the phases of run %s: %s",
		    pw->st->path, run_id, db_errmsg(pw->st->db));
	else
		rc = 0;
	db_reset(q);
	db_clear_bindings(q);
	return rc;
}

/* Return the absolute workspace of run entry `r`. */
static char *plan_workspace(const json_t *r, const char *base_dir)
{
	assert(base_dir != NULL || plan_str(r, "workspace")[0] == '/');
	return store_path_absolute(plan_str(r, "workspace"), base_dir);
}

/* Name run entry `r`'s phases into buf (n bytes): "phase p1", "phase p1 (and 3 more)". */
static void plan_run_phases(const json_t *r, char *buf, size_t n)
{
	const json_t *t, *first = NULL;
	size_t i, count = 0;

	json_array_foreach(json_object_get(r, "tiers"), i, t)
	{
		const json_t *ph = json_object_get(t, "phases");

		if (first == NULL && json_array_size(ph) > 0)
			first = json_array_get(ph, 0);
		count += json_array_size(ph);
	}
	if (first == NULL) {
		snprintf(buf, n, "none of its phases");
		return;
	}
	snprintf(buf, n, "phase %.64s", plan_str(first, "phase_id"));
	if (count > 1)
		snprintf(buf + strlen(buf), n - strlen(buf), " (and %zu more)", count - 1);
}

/* Insert a new run row. */
static int plan_insert_run(struct plan_writer *pw, const json_t *r, struct store_err *err)
{
	struct db_stmt *q = pw->run;
	char *ws = plan_workspace(r, pw->base_dir), what[PATH_MAX];
	const char *s;
	long bad;
	int rc;

	if (strlen(ws) > JOB_PATH_MAX) {
		rc = store_fail(err, STORE_EINVAL,
		    "run %s: workspace %.100s... is %zu bytes; a job carries at most %u",
		    plan_str(r, "run_id"), ws, strlen(ws), JOB_PATH_MAX);
		free(ws);
		return rc;
	}
	if ((bad = utf8_bad(ws)) >= 0) {
		rc = store_fail(err, STORE_EINVAL,
		    "run %s: workspace %s is not valid UTF-8 (byte %ld); a job carries only UTF-8 "
		    "text: name the workspace by an absolute path that is, or move the plan",
		    plan_str(r, "run_id"), ws, bad + 1);
		free(ws);
		return rc;
	}
	if (sysdirs_held(ws, false, what, sizeof what)) {
		rc = store_fail(err, STORE_EINVAL,
		    "run %s: workspace %s holds %s: the model's files and the check command could "
		    "replace a program the workers run with the API keys; give the run a workspace "
		    "of its own",
		    plan_str(r, "run_id"), ws, what);
		free(ws);
		return rc;
	}
	if (sysdirs_kernel(ws, what, sizeof what)) {
		char phases[160];

		plan_run_phases(r, phases, sizeof phases);
		rc = store_fail(err, STORE_EINVAL,
		    "run %s: workspace %s lies in %s, the kernel's file system, where no file can "
		    "be written: %s could not write its deliverables there; give the run a "
		    "workspace of its own",
		    plan_str(r, "run_id"), ws, what, phases);
		free(ws);
		return rc;
	}
	db_bind_text_kept(q, 1, plan_str(r, "run_id"));
	db_bind_text_kept(q, 2, plan_str(r, "goal"));
	db_bind_text_kept(q, 3, ws);
	s = plan_str(r, "safety_profile");
	db_bind_text_kept(q, 4, s != NULL ? s : PLAN_DEFAULT_SAFETY);
	s = plan_str(r, "run_scope");
	db_bind_text_kept(q, 5, s != NULL ? s : PLAN_DEFAULT_SCOPE);
	plan_bind_int(q, 6, r, "token_cap", PLAN_DEFAULT_TOKEN_CAP);
	plan_bind_int(q, 7, r, "max_phases", PLAN_DEFAULT_MAX_PHASES);
	plan_bind_int(q, 8, r, "max_duration_minutes", PLAN_DEFAULT_MAX_MINUTES);
	db_bind_text_kept(q, 9, pw->now);
	rc = plan_step(pw, q, NULL, "the run", plan_str(r, "run_id"), err);
	free(ws);
	return rc;
}

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
	if (stat(dir, &sb) != 0) {
		int e = errno;
		char target[PATH_MAX];
		ssize_t n = readlink(dir, target, sizeof target - 1);

		free(top);
		/* mkdir_p took the name as made: it is a link that leads nowhere */
		if (n >= 0) {
			target[n] = '\0';
			return store_fail(err, STORE_EINVAL,
			    "workspace %s for run %s is a symbolic link to %s, which cannot be "
			    "followed: %s",
			    dir, run_id, target, strerror(e));
		}
		return store_fail(err, STORE_EINVAL,
		    "workspace %s for run %s cannot be reached: %s", dir, run_id, strerror(e));
	}
	if (!S_ISDIR(sb.st_mode)) {
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
static int plan_insert_tier(struct plan_writer *pw, const char *run_id, const json_t *t,
    int64_t index, int64_t *tier_row, struct store_err *err)
{
	struct db_stmt *q = pw->tier;

	db_bind_text_kept(q, 1, plan_str(t, "tier_id"));
	db_bind_text_kept(q, 2, run_id);
	db_bind_int64(q, 3, index);
	db_bind_text_kept(q, 4, plan_str(t, "name"));
	db_bind_text_kept(q, 5, plan_str(t, "description"));
	plan_bind_int(q, 6, t, "token_cap", -1);
	plan_bind_int(q, 7, t, "ci_run_cap", -1);
	db_bind_text_kept(q, 8, pw->now);
	return plan_step(pw, q, tier_row, "a tier", run_id, err);
}

/* Return (heap) the INSERT of n phase rows. */
static char *plan_phases_sql(struct db *db, size_t n)
{
	const char *vals[PLAN_ROWS];
	char *sql;

	assert(n >= 1 && n <= PLAN_ROWS);
	for (size_t k = 0; k < n; k++) {
		int o = (int)k * PLAN_PHASE_PARAMS;

		vals[k] = xasprintf("?%d, ?%d, ?%d, ?%d, ?%d, ?%d, 'QUEUED', ?%d, ?%d, ?%d, ?%d, "
		                    "?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d",
		    o + 1, o + 2, o + 3, o + 4, o + 5, o + 6, o + 7, o + 8, o + 9, o + 10, o + 11,
		    o + 12, o + 13, o + 14, o + 15, o + 16, o + 16);
	}
	sql = store_original_insert_rows_sql(db, "phases",
	    "phase_id, run_id, tier_id, phase_index, name, description, state, task_category, "
	    "complexity, builder_mode, phase_type, scope, check_command, max_builder_attempts, "
	    "max_auditor_attempts, incident_token_cap, created_at, updated_at",
	    vals, n);
	for (size_t k = 0; k < n; k++)
		free((char *)vals[k]);
	return sql;
}

/* Insert the phase rows waiting (pw->rows) in one statement. */
static int plan_flush_phases(struct plan_writer *pw, const char *run_id, struct store_err *err)
{
	size_t n = pw->nrows;
	struct db_stmt *q;

	if (n == 0)
		return 0;
	pw->nrows = 0;
	if (pw->phases[n] == NULL) {
		char *sql = plan_phases_sql(pw->st->db, n);
		int prc = db_prepare(pw->st->db, sql, &pw->phases[n]);

		free(sql);
		if (prc != DB_OK)
			return store_fail(err, STORE_EIO, "%s: preparing the import: %s",
			    pw->st->path, db_errmsg(pw->st->db));
	}
	q = pw->phases[n];
	for (size_t k = 0; k < n; k++) {
		const struct plan_row *r = &pw->rows[k];
		const json_t *const *v = r->ph->v;
		int o = (int)k * PLAN_PHASE_PARAMS;

		db_bind_text_kept(q, o + 1, json_string_value(v[PLAN_F_PHASE_ID]));
		db_bind_text_kept(q, o + 2, run_id);
		db_bind_int64(q, o + 3, r->tier_row);
		db_bind_int64(q, o + 4, r->index);
		db_bind_text_kept(q, o + 5, json_string_value(v[PLAN_F_NAME]));
		db_bind_text_kept(q, o + 6, json_string_value(v[PLAN_F_DESCRIPTION]));
		db_bind_text_kept(q, o + 7, json_string_value(v[PLAN_F_TASK_CATEGORY]));
		db_bind_text_kept(q, o + 8, json_string_value(v[PLAN_F_COMPLEXITY]));
		db_bind_text_kept(q, o + 9, json_string_value(v[PLAN_F_BUILDER_MODE]));
		db_bind_text_kept(q, o + 10, json_string_value(v[PLAN_F_PHASE_TYPE]));
		db_bind_text_kept(q, o + 11, r->ph->scope);
		db_bind_text_kept(q, o + 12, json_string_value(v[PLAN_F_CHECK_COMMAND]));
		plan_bind_value_int(q, o + 13, v[PLAN_F_MAX_BUILDER_ATTEMPTS], -1);
		plan_bind_value_int(q, o + 14, v[PLAN_F_MAX_AUDITOR_ATTEMPTS], -1);
		plan_bind_value_int(q, o + 15, v[PLAN_F_INCIDENT_TOKEN_CAP], -1);
		db_bind_text_kept(q, o + 16, pw->now);
	}
	return plan_step(pw, q, NULL, "a phase", run_id, err);
}

/* Queue a phase row for its insert, inserting the rows waiting when they are
 * PLAN_ROWS. */
static int plan_insert_phase(struct plan_writer *pw, const char *run_id, int64_t tier_row,
    const struct store_plan_phase *ph, int64_t index, struct store_err *err)
{
	pw->rows[pw->nrows++] = (struct plan_row){ ph, tier_row, index };
	return pw->nrows == PLAN_ROWS ? plan_flush_phases(pw, run_id, err) : 0;
}

/* Write one run entry: the run (unless appending), its tiers, then its phases (`phases`:
 * what their check found, in order), in as few statements as PLAN_ROWS
 * allows. The rows and their ids are those of a tier, its phases, the next tier...: a
 * table's ids follow the plan's order either way. */
static int plan_write_run(struct plan_writer *pw, const json_t *r,
    const struct store_plan_phase *phases, struct store_err *err)
{
	struct store_plan_summary *sum = pw->sum;
	const json_t *tiers = json_object_get(r, "tiers");
	const char *run_id = plan_str(r, "run_id");
	size_t i, j, k = 0, ntiers = json_array_size(tiers);
	int64_t base = 0, *tier_rows = xcalloc(ntiers, sizeof *tier_rows);
	json_t *t, *ph;
	int rc = 0;

	if (json_is_true(json_object_get(r, "append"))) {
		rc = plan_tier_base(pw, run_id, ntiers, &base, err);
	} else {
		rc = plan_insert_run(pw, r, err);
	}
	json_array_foreach(tiers, i, t)
	{
		if (rc == 0)
			rc = plan_insert_tier(pw, run_id, t, base + (int64_t)i, &tier_rows[i], err);
	}
	json_array_foreach(tiers, i, t)
	{
		json_array_foreach(json_object_get(t, "phases"), j, ph)
		{
			if (rc == 0)
				rc = plan_insert_phase(
				    pw, run_id, tier_rows[i], &phases[k], (int64_t)j, err);
			k++;
		}
	}
	if (rc == 0)
		rc = plan_flush_phases(pw, run_id, err);
	pw->nrows = 0;
	if (rc == 0) {
		sum->tiers += ntiers;
		sum->phases += k;
	}
	free(tier_rows);
	return rc;
}

/* Record run_id as runs[n] of the plan; when an earlier entry has it, return that
 * entry's index + 1 instead (0: new). */
static size_t plan_id_add(struct plan_writer *pw, const char *run_id)
{
	struct store_plan_summary *sum = pw->sum;
	char *copy = xstrdup(run_id);
	bool added;
	size_t k = strtab_add(&pw->ids, copy, &added);

	if (!added) {
		free(copy);
		return k + 1;
	}
	if (sum->n_runs == pw->runs_cap) {
		pw->runs_cap = pw->runs_cap != 0 ? pw->runs_cap * 2 : 64;
		sum->run_ids = xrealloc(sum->run_ids, pw->runs_cap * sizeof *sum->run_ids);
	}
	sum->run_ids[sum->n_runs++] = copy;
	return 0;
}

/* Start an import: its transaction and statements. */
static int plan_writer_open(struct plan_writer *pw, struct store *st, const char *base_dir,
    const char *source, struct store_plan_summary *sum, struct store_err *err)
{
	char *run = store_original_insert_sql(st->db, "runs",
	    "id, state, goal_anchor, workspace, safety_profile, run_scope, token_cap, max_phases, "
	    "max_duration_minutes, created_at, updated_at",
	    "?1, 'RUN_CREATED', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9");
	char *tier = store_original_insert_sql(st->db, "tiers",
	    "tier_id, run_id, tier_index, name, description, state, token_cap, ci_run_cap, "
	    "created_at, updated_at",
	    "?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?7, ?8, ?8");
	/* The tier's row id: SQLite says it without RETURNING (which collects the statement's
	 * rows in a table of its own first), PostgreSQL only with it. */
	char *tier_id = db_last_insert_id(st->db) >= 0 ? xstrdup(tier) :
	                                                 xasprintf("%s RETURNING id", tier);
	int rc;

	assert(st->writable);
	memset(pw, 0, sizeof *pw);
	memset(sum, 0, sizeof *sum);
	pw->st = st;
	pw->base_dir = base_dir;
	pw->source = source;
	pw->sum = sum;
	db_now(st->db, pw->now);
	rc = store_begin(st->db, "starting the import", err);
	if (rc == 0 &&
	    (db_prepare(st->db, run, &pw->run) != DB_OK ||
	        db_prepare(st->db, tier_id, &pw->tier) != DB_OK ||
	        db_prepare(st->db, "SELECT 1 FROM runs WHERE id = ?1", &pw->run_exists) != DB_OK ||
	        db_prepare(st->db, "SELECT 1 FROM phases WHERE run_id = ?1 AND phase_id = ?2",
	            &pw->phase_exists) != DB_OK ||
	        db_prepare(st->db, "SELECT 1 FROM tiers WHERE run_id = ?1 AND tier_id = ?2",
	            &pw->tier_exists) != DB_OK ||
	        db_prepare(st->db,
	            "SELECT tier_id, id, tier_index FROM tiers WHERE run_id = ?1"
	            " ORDER BY tier_index DESC LIMIT 1",
	            &pw->tier_next) != DB_OK ||
	        db_prepare(st->db,
	            "SELECT phase_id, scope FROM phases WHERE run_id = ?1 ORDER BY id",
	            &pw->run_scopes) != DB_OK)) {
		rc = store_fail(
		    err, STORE_EIO, "%s: preparing the import: %s", st->path, db_errmsg(st->db));
		db_rollback(st->db);
	}
	if (rc == 0)
		strtab_init(&pw->ids, 128, false);
	free(run);
	free(tier);
	free(tier_id);
	return rc;
}

/* Check and write runs[i]: its shape, its id against the plan's other runs, the
 * database, then its rows and workspace. */
static int plan_writer_run(struct plan_writer *pw, const json_t *r, size_t i, struct store_err *err)
{
	struct store_plan_phase *phases;
	char path[32];
	size_t other;
	int rc;

	snprintf(path, sizeof path, "runs[%zu]", i);
	if ((rc = store_plan_check_run(r, pw->source, path, &pw->ov, &phases, err)) != 0)
		return rc;
	if ((other = plan_id_add(pw, plan_str(r, "run_id"))) != 0)
		rc = store_fail(err, STORE_EINVAL,
		    "%s: runs[%zu].run_id: duplicate run_id \"%s\" (also at runs[%zu])", pw->source,
		    i, plan_str(r, "run_id"), other - 1);
	if (rc == 0)
		rc = plan_check_db(pw, r, i, err);
	if (rc == 0 && json_is_true(json_object_get(r, "append")))
		rc = plan_check_appended(pw, r, i, err);
	if (rc == 0)
		rc = plan_write_run(pw, r, phases, err);
	store_plan_phases_free(phases);
	if (rc != 0)
		return rc;
	if (!json_is_true(json_object_get(r, "append"))) {
		char *ws = plan_workspace(r, pw->base_dir);

		if (pw->last_ws != NULL && strcmp(ws, pw->last_ws) == 0) {
			free(ws);
			return 0;
		}
		rc = plan_mkdir(&pw->dirs, ws, plan_str(r, "run_id"), err);
		free(pw->last_ws);
		pw->last_ws = ws;
	}
	return rc;
}

/* End an import: commit when rc is 0 and the top level checks out, else roll back
 * (removing the directories made). Returns the outcome. */
static int plan_writer_close(
    struct plan_writer *pw, const json_t *top, int rc, struct store_err *err)
{
	if (rc == 0 && top != NULL)
		rc = store_plan_check_top(top, pw->source, err);
	db_finalize(pw->run);
	db_finalize(pw->tier);
	for (size_t n = 1; n <= PLAN_ROWS; n++)
		db_finalize(pw->phases[n]);
	db_finalize(pw->run_exists);
	db_finalize(pw->phase_exists);
	db_finalize(pw->tier_exists);
	db_finalize(pw->tier_next);
	db_finalize(pw->run_scopes);
	plan_overlap_free(&pw->ov);
	if (rc == 0)
		rc = store_commit(pw->st->db, "committing the import", err);
	plan_dirs_undo(&pw->dirs, rc != 0);
	if (rc != 0) {
		db_rollback(pw->st->db);
		store_plan_summary_free(pw->sum);
	}
	strtab_free(&pw->ids);
	free(pw->last_ws);
	return rc;
}

/* Check the plan (shape, then database), then write it in one transaction. */
int store_plan_import_json(struct store *st, json_t *doc, const char *base_dir, const char *source,
    struct store_plan_summary *sum, struct store_err *err)
{
	struct plan_writer pw;
	json_t *r;
	size_t i;
	int rc = store_plan_check_top(doc, source, err);

	memset(sum, 0, sizeof *sum);
	if (rc != 0)
		return rc;
	if ((rc = plan_writer_open(&pw, st, base_dir, source, sum, err)) != 0)
		return rc;
	json_array_foreach(json_object_get(doc, "runs"), i, r)
	{
		if ((rc = plan_writer_run(&pw, r, i, err)) != 0)
			break;
	}
	return plan_writer_close(&pw, NULL, rc, err);
}

/* Import a plan read as a stream, one run at a time. */
static int plan_import_stream(struct store *st, struct plan_stream *ps, const char *base_dir,
    struct store_plan_summary *sum, struct store_err *err)
{
	struct plan_writer pw;
	json_t *r;
	size_t i = 0;
	int rc = plan_writer_open(&pw, st, base_dir, ps->source, sum, err);

	if (rc != 0)
		return rc;
	while ((rc = plan_stream_next(ps, &r, err)) == 0 && r != NULL) {
		rc = plan_writer_run(&pw, r, i++, err);
		if (rc != 0)
			break;
	}
	return plan_writer_close(&pw, rc == 0 ? ps->top : NULL, rc, err);
}

/* Parse plan text and import it; invalid JSON is STORE_EINVAL with line and column. */
int store_plan_import(struct store *st, const char *text, size_t len, const char *base_dir,
    const char *source, struct store_plan_summary *sum, struct store_err *err)
{
	size_t bom = utf8_bom_len(text, len);
	struct plan_stream ps;
	int rc;

	memset(sum, 0, sizeof *sum);
	if (len == bom)
		return store_fail(
		    err, STORE_EINVAL, "%s: empty file, expected a JSON plan", source);
	plan_stream_init(&ps, text + bom, len - bom, source);
	rc = plan_import_stream(st, &ps, base_dir, sum, err);
	plan_stream_free(&ps);
	return rc;
}

/* Read a plan file whole (a pipe too), up to STORE_PLAN_MAX bytes. */
int store_plan_read(
    const char *path, bool regular_only, struct store_plan_text *pt, struct store_err *err)
{
	char real[PATH_MAX], *slash;
	int rc;

	memset(pt, 0, sizeof *pt);
	rc = file_read_all(path, STORE_PLAN_MAX, regular_only, &pt->text, &pt->len, &pt->regular);
	if (rc == -EFBIG)
		return store_fail(err, STORE_EINVAL, "%s: the plan is larger than %d MiB", path,
		    STORE_PLAN_MAX >> 20);
	if (rc != 0)
		return store_fail(
		    err, STORE_EINVAL, "%s: cannot read the plan: %s", path, strerror(-rc));
	if (regular_only && !pt->regular)
		return store_fail(err, STORE_EINVAL,
		    "%s: not a regular file; a running supervisor reads a plan only from a file "
		    "(write the plan to one and import that)",
		    path);
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

/* Read a plan from an open descriptor (standard input) whole, as a stream. */
int store_plan_read_fd(
    int fd, const char *source, struct store_plan_text *pt, struct store_err *err)
{
	int rc;

	memset(pt, 0, sizeof *pt);
	rc = fd_read_all(fd, STORE_PLAN_MAX, &pt->text, &pt->len);
	if (rc == -EFBIG)
		return store_fail(err, STORE_EINVAL, "%s: the plan is larger than %d MiB", source,
		    STORE_PLAN_MAX >> 20);
	if (rc != 0)
		return store_fail(
		    err, STORE_EINVAL, "%s: cannot read the plan: %s", source, strerror(-rc));
	pt->base_dir = store_path_absolute(".", NULL);
	if (pt->base_dir == NULL) {
		store_plan_text_free(pt);
		return store_fail(err, STORE_EINVAL,
		    "%s: cannot resolve the plan's workspaces: the current directory cannot be "
		    "read",
		    source);
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
	/* Opening a FIFO would wait for its writer, and reading a terminal for its user:
	 * whoever calls this (the supervisor's loop) would hang meanwhile. Only a regular file
	 * is read, checked on the descriptor read. */
	rc = store_plan_read(path, true, &pt, err);
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
