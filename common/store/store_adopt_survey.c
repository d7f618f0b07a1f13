/* What an adoption finds before changing anything: the columns autopack must fill on
 * every insert, the values not in the original's formats, and every phase's scope. */
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/store/store_original.h"
#include "common/store/store_scope.h"
#include "common/joblimits.h"
#include "common/util.h"
#include "common/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Return 1 if table.column is NOT NULL without a default in db, 0 if not (or absent),
 * STORE_EIO on error. */
static int survey_bare_not_null(
    struct db *db, const char *table, const char *column, struct store_err *err)
{
	struct adopt_cols have;
	const struct adopt_col *c;
	int rc = adopt_cols_read(db, table, &have, err);

	if (rc != 0)
		return rc;
	c = adopt_cols_find(&have, column);
	rc = c != NULL && c->notnull && c->dflt == NULL && c->pk == 0;
	adopt_cols_free(&have);
	return rc;
}

/* List the original's Python-side columns that this database leaves without a default. */
static int survey_insert_cols(struct db *db, struct store_adopt_report *rep, struct store_err *err)
{
	for (size_t i = 0; i < store_n_original_fills; i++) {
		const struct store_original_fill *f = &store_original_fills[i];
		struct store_adopt_insert_col *c;
		int rc = survey_bare_not_null(db, f->table, f->column, err);

		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		rep->insert_cols = xrealloc(
		    rep->insert_cols, (rep->n_insert_cols + 1) * sizeof *rep->insert_cols);
		c = &rep->insert_cols[rep->n_insert_cols++];
		c->table = xstrdup(f->table);
		c->column = xstrdup(f->column);
		c->value = f->value != NULL ? xstrdup(store_original_value(db, f)) : NULL;
	}
	return 0;
}

/* Append a phase to a report list. Its texts are shown, and put in JSON, as UTF-8: a
 * byte that is not is shown as U+FFFD (the survey names such text as unsendable). */
static void survey_phase_push(
    struct store_adopt_phase **list, size_t *n, struct db_stmt *q, const char *why)
{
	struct store_adopt_phase *p;
	const char *state = db_column_text(q, 2);

	*list = xrealloc(*list, (*n + 1) * sizeof **list);
	p = &(*list)[(*n)++];
	p->run_id = utf8_clean(db_column_text(q, 0), SIZE_MAX);
	p->phase_id = utf8_clean(db_column_text(q, 1), SIZE_MAX);
	p->state = utf8_clean(state != NULL ? (const char *)state : "", SIZE_MAX);
	p->why = why != NULL ? utf8_clean(why, SIZE_MAX) : NULL;
}

/* Check that a phase read by survey_scopes (columns run_id, phase_id, state, scope, name,
 * description, task_category, complexity) can travel in a job and be run by a worker.
 * Returns 0, or -1 with `why` naming the limit or rule it breaks. */
static int survey_sendable(struct db_stmt *q, const struct store_scope *sc, char *why, size_t n)
{
	struct job_phase_text t = {
		.run_id = db_column_text(q, 0),
		.phase_id = db_column_text(q, 1),
		.name = db_column_text(q, 4),
		.description = db_column_text(q, 5),
		.category = db_column_text(q, 6),
		.complexity = db_column_text(q, 7),
		.paths = (const char *const *)sc->paths.items,
		.npaths = sc->paths.n,
		.context = (const char *const *)sc->context.items,
		.ncontext = sc->context.n,
		.deliverables = (const char *const *)sc->deliverables.items,
		.ndeliverables = sc->deliverables.n,
	};

	const char *const text[] = { t.run_id, t.phase_id, t.name, t.description, t.category,
		t.complexity };
	static const char *const names[] = { "run_id", "phase_id", "name", "description",
		"task_category", "complexity" };
	const struct {
		const char *name;
		const char *const *v;
		size_t n;
	} lists[] = { { "scope.paths", t.paths, t.npaths },
		{ "scope.read_only_context", t.context, t.ncontext },
		{ "scope.deliverables", t.deliverables, t.ndeliverables } };

	long bad;

	if (job_limits_check(&t, why, n) != 0)
		return -1;
	/* A job carries only UTF-8 text; SQLite's TEXT columns hold any bytes. */
	for (size_t i = 0; i < ARRAY_SIZE(text); i++)
		if (text[i] != NULL && (bad = utf8_bad(text[i])) >= 0)
			return errbuf_fail(
			    why, n, "%s: not valid UTF-8 (byte %ld)", names[i], bad + 1);
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		for (size_t j = 0; j < lists[i].n; j++)
			if ((bad = utf8_bad(lists[i].v[j])) >= 0)
				return errbuf_fail(why, n, "%s[%zu]: not valid UTF-8 (byte %ld)",
				    lists[i].name, j, bad + 1);
	return 0;
}

/* Read every phase's scope: count the forms, list the ones that cannot be interpreted,
 * those naming no deliverable, and those that cannot be sent to a worker. */
static int survey_scopes(struct db *db, struct store_adopt_report *rep, struct store_err *err)
{
	/* Older legacy tables lack some of these columns: each is then read as NULL. The
	 * columns are looked up first: on a server a failed statement ends the transaction. */
	static const char *const selects[] = {
		"SELECT run_id, phase_id, state, scope, name, description, task_category,"
		" complexity FROM phases ORDER BY run_id, phase_index, id",
		"SELECT run_id, phase_id, state, scope, NULL, NULL, NULL, NULL FROM phases"
		" ORDER BY run_id, phase_index, id",
		"SELECT run_id, phase_id, state, NULL, NULL, NULL, NULL, NULL FROM phases"
		" ORDER BY run_id, phase_index, id",
	};
	struct db_stmt *q = NULL;
	int has_scope = adopt_has_column(db, "phases", "scope", err);
	int has_text = adopt_has_column(db, "phases", "complexity", err);
	int rc;

	if (has_scope < 0 || has_text < 0)
		return STORE_EIO;
	rc = db_prepare(db,
	    selects[has_text == 1 && has_scope == 1 ? 0 :
	            has_scope == 1                  ? 1 :
	                                              2],
	    &q);
	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		struct store_scope sc;
		char why[320];

		rc = DB_OK;
		if (store_scope_parse_text(db_column_text(q, 3), &sc, why, sizeof why) != 0) {
			survey_phase_push(&rep->bad_scopes, &rep->n_bad_scopes, q, why);
			continue;
		}
		rep->scope_forms[sc.form]++;
		rep->scope_buckets += sc.buckets;
		if (sc.deliverables.n == 0)
			survey_phase_push(&rep->no_deliverables, &rep->n_no_deliverables, q, NULL);
		else if (survey_sendable(q, &sc, why, sizeof why) != 0)
			survey_phase_push(&rep->unsendable, &rep->n_unsendable, q, why);
		store_scope_free(&sc);
	}
	db_finalize(q);
	if (rc != DB_DONE)
		return store_fail(
		    err, STORE_EIO, "reading the scopes of phases: %s", db_errmsg(db));
	rep->bare_scopes = rep->scope_forms[STORE_SCOPE_PATH];
	return 0;
}

/* List the phases whose run or tier has no row (the original kept no foreign keys): a
 * drain reads its queue through both, so it never dispatches them. */
static int survey_orphans(struct db *db, struct store_adopt_report *rep, struct store_err *err)
{
	static const char sql[] =
	    "SELECT p.run_id, p.phase_id, p.state, CASE WHEN r.id IS NULL THEN 1 ELSE 0 END,"
	    " CASE WHEN t.id IS NULL THEN 1 ELSE 0 END, CAST(p.tier_id AS TEXT)"
	    " FROM phases p LEFT JOIN runs r ON r.id = p.run_id"
	    " LEFT JOIN tiers t ON t.id = p.tier_id"
	    " WHERE r.id IS NULL OR t.id IS NULL ORDER BY p.run_id, p.phase_index, p.id";
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, sql, &q);

	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *tier = db_column_text(q, 5);
		bool no_run = db_column_int64(q, 3) != 0, no_tier = db_column_int64(q, 4) != 0;
		char why[200];

		rc = DB_OK;
		snprintf(why, sizeof why, "%s%s%s%.40s%s",
		    no_run ? "phases.run_id: no row of runs has this id" : "",
		    no_run && no_tier ? "; " : "", no_tier ? "phases.tier_id " : "",
		    no_tier ? (tier != NULL ? tier : "NULL") : "",
		    no_tier ? ": no row of tiers has this id" : "");
		survey_phase_push(&rep->orphans, &rep->n_orphans, q, why);
	}
	db_finalize(q);
	if (rc != DB_DONE)
		return store_fail(
		    err, STORE_EIO, "reading the runs and tiers of phases: %s", db_errmsg(db));
	return 0;
}

/* Survey what the adoption must know before it changes anything. */
int adopt_survey(const struct adopt_backend *be, struct db *db, const struct adopt_ref *ref,
    struct store_adopt_report *rep, struct store_err *err)
{
	int rc = survey_insert_cols(db, rep, err);

	if (rc == 0)
		rc = be->values_find(db, ref, &rep->values, err);
	if (rc == 0)
		rc = survey_scopes(db, rep, err);
	if (rc == 0)
		rc = survey_orphans(db, rep, err);
	return rc;
}
