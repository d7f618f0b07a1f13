/* The legacy data handling of an adoption: what the autopack code needs that legacy rows
 * may lack, changed as little as possible and reported. */
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The tables whose NOT NULL columns the drain code reads. */
static const char *const adopt_fill_tables[] = { "runs", "tiers", "phases" };

/* Record one fill in the report. */
static void adopt_fill_push(struct store_adopt_report *rep, const char *table, const char *column,
    int64_t rows, const char *value)
{
	struct store_adopt_fill *f;

	rep->fills = xrealloc(rep->fills, (rep->n_fills + 1) * sizeof *rep->fills);
	f = &rep->fills[rep->n_fills++];
	f->table = xstrdup(table);
	f->column = xstrdup(column);
	f->rows = rows;
	f->value = value != NULL ? xstrdup(value) : NULL;
}

/* Count the NULLs of one column; a column the adoption has yet to add holds a NULL in
 * every row unless it gets a default. */
static int adopt_count_nulls(struct db *db, const char *table, const char *column, const char *dflt,
    int64_t *n, struct store_err *err)
{
	int rc = adopt_has_column(db, table, column, err);
	char *sql;

	*n = 0;
	if (rc < 0 || (rc == 0 && dflt != NULL))
		return rc < 0 ? rc : 0;
	sql = rc == 1 ? db_sqlf("SELECT count(*) FROM \"%w\" WHERE \"%w\" IS NULL", table, column) :
	                db_sqlf("SELECT count(*) FROM \"%w\"", table);
	rc = store_query_int(db, sql, n, err);
	free(sql);
	return rc;
}

/* Fill the NULLs of one column: timestamps get `now`, others their default `dflt` (SQL
 * text from the reference schema); without a default they are left and reported.
 * Without `apply` they are only counted. */
static int adopt_fill_column(struct db *db, const char *table, const char *column, const char *dflt,
    const char *now, struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	bool stamp = strcmp(column, "created_at") == 0 || strcmp(column, "updated_at") == 0;
	struct db_stmt *q = NULL;
	int64_t n = 0;
	char *sql;
	int rc;

	rc = adopt_count_nulls(db, table, column, dflt, &n, err);
	if (rc != 0 || n == 0)
		return rc;
	if ((!stamp && dflt == NULL) || !apply) {
		adopt_fill_push(rep, table, column, n, stamp ? now : dflt);
		return 0;
	}
	sql = db_sqlf("UPDATE \"%w\" SET \"%w\" = %s WHERE \"%w\" IS NULL", table, column,
	    stamp ? "?1" : dflt, column);
	rc = db_prepare(db, sql, &q);
	if (rc == DB_OK && stamp)
		store_bind_text(q, 1, now);
	rc = store_step_done(db, q, rc, err, "filling %s.%s", table, column);
	free(sql);
	if (rc == 0)
		adopt_fill_push(rep, table, column, n, stamp ? now : dflt);
	return rc;
}

/* Fill (or count) the NULLs of every column the reference declares NOT NULL in `table`. */
static int adopt_fill_table(struct db *db, const struct adopt_ref *ref, const char *table,
    const char *now, struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	const struct adopt_ref_table *t = adopt_ref_find(ref, table);
	int rc = 0;

	for (size_t i = 0; t != NULL && rc == 0 && i < t->cols.n; i++) {
		const struct adopt_col *c = &t->cols.items[i];

		if (c->notnull && c->pk == 0)
			rc = adopt_fill_column(db, table, c->name, c->dflt, now, rep, apply, err);
	}
	return rc;
}

/* Put phases the original left in flight (EXECUTING, GATE, CI_RUNNING; no open autopack
 * attempt) back to QUEUED; their last_failure_reason stays. Without `apply`, count them. */
static int adopt_requeue_executing(struct db *db, const char *now, struct store_adopt_report *rep,
    bool apply, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc;

#ifdef AUTOPACK_MUTANT_adopt_leaves_phases_in_flight
	apply = false;
#endif
	if (!apply)
		return store_query_int(db,
		    "SELECT count(*) FROM phases WHERE state IN ('EXECUTING', 'GATE', 'CI_RUNNING')",
		    &rep->executing_requeued, err);
	rc = db_prepare(db,
	    "UPDATE phases SET state = 'QUEUED', updated_at = ?1 WHERE state IN ('EXECUTING', 'GATE', "
	    "'CI_RUNNING') AND "
	    "(current_attempt_id IS NULL OR current_attempt_id NOT IN "
	    " (SELECT attempt_id FROM attempts WHERE ended_at IS NULL))",
	    &q);

	if (rc == DB_OK)
		store_bind_text(q, 1, now);
	rc = store_step_done(db, q, rc, err, "requeueing EXECUTING phases");
	if (rc == 0)
		rep->executing_requeued = db_changes(db);
	return rc;
}

/* The longest run id kept whole as a directory name (NAME_MAX is 255 bytes). */
#define ADOPT_DIRNAME_MAX 200

/* Return a directory name for run `id`: the id itself when it is a plain name of at most
 * ADOPT_DIRNAME_MAX bytes, else the id with other characters replaced, cut to that length,
 * and `n` appended so that it stays unique. */
static char *adopt_run_dirname(const char *id, size_t n)
{
	char *s = xstrdup(id);
	bool changed = s[0] == '\0' || s[0] == '.' || s[0] == '-' || strlen(s) > ADOPT_DIRNAME_MAX;

	if (strlen(s) > ADOPT_DIRNAME_MAX)
		s[ADOPT_DIRNAME_MAX] = '\0';

	for (char *p = s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')
			continue;
		*p = '_';
		changed = true;
	}
	if (changed) {
		char *t = xasprintf("run_%s-%zu", s, n);
		free(s);
		s = t;
	}
	return s;
}

/* Record directory `dir`, just made, in the report `arg`. */
static void adopt_dir_made(void *arg, const char *dir)
{
	struct store_adopt_report *rep = arg;

	adopt_list_push(&rep->dirs_made, &rep->n_dirs_made, dir);
}

/* Create directory `dir` and its missing parents, recording each one made in the report
 * (a failed adoption removes them). Returns 0, or a negative errno: ENOTDIR when `dir` is
 * there but is not a directory. */
static int adopt_mkdir(const char *dir, struct store_adopt_report *rep)
{
	struct stat st;
	int rc = mkdir_p_noting(dir, 0755, adopt_dir_made, rep);

	if (rc == 0 && stat(dir, &st) != 0)
		rc = -errno;
	else if (rc == 0 && !S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
	return rc;
}

/* Give every run without a workspace the directory <ws_base>/<run id>, created. */
static int adopt_workspaces(
    struct db *db, const char *ws_base, struct store_adopt_report *rep, struct store_err *err)
{
	struct db_stmt *sel = NULL, *upd = NULL;
	size_t n = 0;
	int rc, step = DB_DONE;

	rc = db_prepare(db,
	    "SELECT id FROM runs WHERE workspace IS NULL OR "
	    "workspace = '' ORDER BY id",
	    &sel);
	if (rc == DB_OK)
		rc = db_prepare(db, "UPDATE runs SET workspace = ?1 WHERE id = ?2", &upd);
	if (rc != DB_OK) {
		rc = store_fail(err, STORE_EIO, "setting workspaces: %s", db_errmsg(db));
		goto out;
	}
	while (rc == 0 && (step = db_step(sel)) == DB_ROW) {
		const char *id = db_column_text(sel, 0);
		char *name = adopt_run_dirname(id, ++n);
		char *dir = xasprintf("%s/%s", ws_base, name);
		int e = adopt_mkdir(dir, rep);

		free(name);
		if (e != 0) {
			rc = store_fail(err, STORE_EIO, "cannot create workspace %s for run %s: %s",
			    dir, id, strerror(-e));
			free(dir);
			break;
		}
		db_reset(upd);
		db_bind_text(upd, 1, dir);
		db_bind_text(upd, 2, id);
		free(dir);
		if (db_step(upd) != DB_DONE)
			rc = store_fail(err, STORE_EIO, "setting the workspace of run %s: %s", id,
			    db_errmsg(db));
		else
			rep->workspaces_set++;
	}
	if (rc == 0 && step != DB_DONE)
		rc = store_fail(err, STORE_EIO, "setting workspaces: %s", db_errmsg(db));
out:
	db_finalize(sel);
	db_finalize(upd);
	return rc;
}

/* Count the legacy rows and the rows kept as they are (tables the adoption has yet to
 * create have none); runs without a workspace are all of them while the column is still
 * to be added. */
static int adopt_count(struct db *db, struct store_adopt_report *rep, struct store_err *err)
{
	const struct {
		const char *table, *sql;
		int64_t *out;
	} q[] = {
		{ "runs", "SELECT count(*) FROM runs", &rep->runs },
		{ "tiers", "SELECT count(*) FROM tiers", &rep->tiers },
		{ "phases", "SELECT count(*) FROM phases", &rep->phases },
		{ "runs", "SELECT count(*) FROM runs", &rep->workspaces_set },
		{ "llm_usage_events", "SELECT count(*) FROM llm_usage_events", &rep->usage_events },
		{ "token_estimation_v2_events", "SELECT count(*) FROM token_estimation_v2_events",
		    &rep->v2_events },
	};
	int64_t nulls = 0;
	int rc = 0;

	for (size_t i = 0; i < ARRAY_SIZE(q) && rc == 0; i++) {
		int exists = store_table_exists(db, q[i].table, err);

		*q[i].out = 0;
		rc = exists < 0 ? exists : 0;
		if (exists == 1)
			rc = store_query_int(db, q[i].sql, q[i].out, err);
	}
	/* Token splits the adoption has yet to add are NULL in every row. */
	rep->usage_without_split = 0;
	for (size_t i = 0; i < 2 && rc == 0 && rep->usage_events > 0; i++) {
		rc = adopt_count_nulls(db, "llm_usage_events",
		    i == 0 ? "prompt_tokens" : "completion_tokens", NULL, &nulls, err);
		if (nulls > rep->usage_without_split)
			rep->usage_without_split = nulls;
	}
	if (rc == 0 && rep->usage_events > 0 &&
	    adopt_has_column(db, "llm_usage_events", "prompt_tokens", NULL) == 1 &&
	    adopt_has_column(db, "llm_usage_events", "completion_tokens", NULL) == 1)
		rc = store_query_int(db,
		    "SELECT count(*) FROM llm_usage_events WHERE prompt_tokens IS NULL OR "
		    "completion_tokens IS NULL",
		    &rep->usage_without_split, err);
	return rc;
}

/* Apply the legacy data handling inside the caller's transaction, or count it. */
int adopt_repair(struct db *db, const struct adopt_ref *ref, const char *ws_base, const char *now,
    struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	int rc = adopt_count(db, rep, err);

	if (apply)
		rep->workspaces_set = 0;
	for (size_t i = 0; i < ARRAY_SIZE(adopt_fill_tables) && rc == 0; i++)
		rc = adopt_fill_table(db, ref, adopt_fill_tables[i], now, rep, apply, err);
	if (rc == 0)
		rc = adopt_requeue_executing(db, now, rep, apply, err);
	if (rc == 0 && apply)
		rc = adopt_workspaces(db, ws_base, rep, err);
	return rc;
}
