/* Versioned estimator coefficient sets: read, add-and-activate, roll back. */
#include "common/store/store_coef.h"
#include "common/jsonload.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define COEF_COLUMNS                                                                               \
	"SELECT version, created_at, active, parent_version, provenance_json, overhead_json, "     \
	"model_json FROM estimator_coefficients"

/* Fill a set from the current row of a COEF_COLUMNS query. */
static void coef_row(struct db_stmt *q, void *item)
{
	struct store_coef_set *set = item;

	set->version = db_column_int64(q, 0);
	set->created_at = store_col_text(q, 1, "");
	set->active = db_column_int64(q, 2) != 0;
	set->parent_version = db_column_type(q, 3) == DB_NULL ? STORE_COEF_BUILTIN :
	                                                        db_column_int64(q, 3);
	set->provenance_json = store_col_text(q, 4, "");
	set->overhead_json = store_col_text(q, 5, "");
	set->model_json = store_col_text(q, 6, NULL);
}

/* Free one set of a store_rows. */
static void coef_item_free(void *set)
{
	store_coef_set_free(set);
}

/* Run a COEF_COLUMNS query that yields at most one row (parameter 1 = `arg` when >= 0). */
static int coef_read_one(struct store *st, const char *sql, int64_t arg, struct store_coef_set *set,
    bool *found, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db, sql, &q);

	memset(set, 0, sizeof *set);
	*found = false;
	if (rc == DB_OK) {
		if (arg >= 0)
			db_bind_int64(q, 1, arg);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		coef_row(q, set);
		*found = true;
		rc = DB_DONE;
	}
	if (rc != DB_DONE)
		store_fail(err, STORE_EIO, "%s: reading estimator_coefficients: %s", st->path,
		    db_errmsg(st->db));
	db_finalize(q);
	return rc == DB_DONE ? 0 : STORE_EIO;
}

/* Read the active set, if any. */
int store_coef_active(
    struct store *st, struct store_coef_set *set, bool *found, struct store_err *err)
{
	return coef_read_one(st, COEF_COLUMNS " WHERE active = 1", -1, set, found, err);
}

/* Read one set by version. */
int store_coef_get(struct store *st, int64_t version, struct store_coef_set *set, bool *found,
    struct store_err *err)
{
	return coef_read_one(st, COEF_COLUMNS " WHERE version = ?1", version, set, found, err);
}

/* Read every set, newest first. */
int store_coef_list(
    struct store *st, struct store_coef_set **sets, size_t *n, struct store_err *err)
{
	struct store_rows l = {
		.size = sizeof **sets, .fill = coef_row, .item_free = coef_item_free
	};
	int rc = store_rows_query(st->db, COEF_COLUMNS " ORDER BY version DESC", &l, err,
	    "%s: reading estimator_coefficients", st->path);

	*sets = l.v;
	*n = l.n;
	return rc;
}

/* Insert the new active row. */
static int coef_insert(struct store *st, int64_t version, int64_t parent, const char *now,
    const char *overhead_json, const char *model_json, const char *provenance_json,
    struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db,
	    "INSERT INTO estimator_coefficients (version, "
	    "created_at, active, parent_version, provenance_json, overhead_json, model_json) "
	    "VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6)",
	    &q);

	if (rc == DB_OK) {
		db_bind_int64(q, 1, version);
		store_bind_text(q, 2, now);
		db_bind_int64(q, 3, parent);
		store_bind_text(q, 4, provenance_json);
		store_bind_text(q, 5, overhead_json);
		store_bind_text(q, 6, model_json);
	}
	return store_step_done(
	    st->db, q, rc, err, "%s: writing coefficient set %lld", st->path, (long long)version);
}

/* Add a set and activate it in one transaction, its version one above the highest there
 * is; STORE_EINVAL, nothing changed, when that is already the largest a version holds. */
int store_coef_activate_new(struct store *st, const char *overhead_json, const char *model_json,
    const char *provenance_json, int64_t *version, int64_t *parent, struct store_err *err)
{
	char now[32];
	int rc;

	assert(st->writable);
	db_now(st->db, now);
	rc = store_begin(st->db, "starting the coefficient update", err);
	if (rc != 0)
		return rc;
	rc = store_query_int(st->db,
	    "SELECT coalesce((SELECT version FROM "
	    "estimator_coefficients WHERE active = 1), 1)",
	    parent, err);
	if (rc == 0)
		rc = store_query_int(st->db,
		    "SELECT max(coalesce(max(version), 1), 1) FROM "
		    "estimator_coefficients",
		    version, err);
	if (rc == 0 && *version == INT64_MAX)
		rc = store_fail(err, STORE_EINVAL,
		    "%s: coefficient set %lld holds the highest version there is (another "
		    "program wrote it), and no set can follow it; renumber or delete it; nothing "
		    "was applied",
		    st->url, (long long)*version);
	else if (rc == 0)
		++*version;
	if (rc == 0)
		rc = store_exec(st->db,
		    "UPDATE estimator_coefficients SET active = 0 WHERE "
		    "active = 1",
		    "deactivating the previous set", err);
	if (rc == 0)
		rc = coef_insert(
		    st, *version, *parent, now, overhead_json, model_json, provenance_json, err);
#ifdef AUTOPACK_MUTANT_calib_apply_not_activated
	rc = rc != 0 ? rc :
	               store_exec(st->db, "UPDATE estimator_coefficients SET active = 0", "", err);
#endif
	if (rc == 0)
		rc = store_commit(st->db, "committing the coefficient update", err);
	if (rc != 0)
		db_rollback(st->db);
	return rc;
}

/* Reactivate the active set's parent in one transaction. */
int store_coef_rollback(struct store *st, int64_t *from, int64_t *now, struct store_err *err)
{
	struct store_coef_set cur, parent;
	bool found = false, parent_found = false;
	char *sql;
	int rc;

	assert(st->writable);
	rc = store_begin(st->db, "starting the rollback", err);
	if (rc != 0)
		return rc;
	rc = store_coef_active(st, &cur, &found, err);
	if (rc == 0 && !found)
		rc = store_fail(err, STORE_EINVAL,
		    "%s: no calibrated coefficient set is active; "
		    "the built-in defaults (version %d) are in use and there is nothing to roll "
		    "back",
		    st->url, STORE_COEF_BUILTIN);
	if (rc == 0) {
		*from = cur.version;
		*now = cur.parent_version > STORE_COEF_BUILTIN ? cur.parent_version :
		                                                 STORE_COEF_BUILTIN;
	}
	if (rc == 0 && *now != STORE_COEF_BUILTIN) {
		rc = store_coef_get(st, *now, &parent, &parent_found, err);
		store_coef_set_free(&parent);
		if (rc == 0 && !parent_found)
			rc = store_fail(err, STORE_EINVAL,
			    "%s: coefficient set %lld names parent "
			    "%lld, which is not in the database; nothing changed",
			    st->url, (long long)*from, (long long)*now);
	}
	if (rc == 0)
		rc = store_exec(st->db,
		    "UPDATE estimator_coefficients SET active = 0 WHERE "
		    "active = 1",
		    "deactivating the current set", err);
	if (rc == 0 && *now != STORE_COEF_BUILTIN) {
		sql = db_sqlf("UPDATE estimator_coefficients SET active = 1 WHERE "
		              "version = %lld",
		    (long long)*now);
		rc = store_exec(st->db, sql, "reactivating the parent set", err);
		free(sql);
	}
#ifdef AUTOPACK_MUTANT_calib_rollback_forgets_parent
	rc = rc != 0 ? rc :
	               store_exec(st->db, "UPDATE estimator_coefficients SET active = 0", "", err);
#endif
	if (rc == 0)
		rc = store_commit(st->db, "committing the rollback", err);
	if (rc != 0)
		db_rollback(st->db);
	store_coef_set_free(&cur);
	return rc;
}

/* Free a set's strings. */
void store_coef_set_free(struct store_coef_set *set)
{
	free(set->created_at);
	free(set->provenance_json);
	free(set->overhead_json);
	free(set->model_json);
	memset(set, 0, sizeof *set);
}

/* Free a list of sets. */
void store_coef_list_free(struct store_coef_set *sets, size_t n)
{
	store_rows_free(sets, n, sizeof *sets, coef_item_free);
}

/* Parse an overhead table; STORE_EINVAL on the first element that is not a triple. */
int store_coef_rows(const char *overhead_json, int64_t version, struct store_coef_row **rows,
    size_t *n, struct store_err *err)
{
	json_error_t jerr;
	json_t *arr = json_loads_bounded(overhead_json != NULL ? overhead_json : "", 0, &jerr),
	       *row;
	size_t i;
	int rc = 0;

	*rows = NULL;
	*n = 0;
	if (!json_is_array(arr)) {
		rc = store_fail(err, STORE_EINVAL,
		    "overhead_json of set %lld is not a JSON array%s%s", (long long)version,
		    arr == NULL ? ": " : "", arr == NULL ? jerr.text : "");
		json_decref(arr);
		return rc;
	}
	*rows = xcalloc(json_array_size(arr) + 1, sizeof **rows);
	json_array_foreach(arr, i, row)
	{
		const char *cat = json_string_value(json_array_get(row, 0));
		const char *cplx = json_string_value(json_array_get(row, 1));
		json_t *v = json_array_get(row, 2);

		if (json_array_size(row) != 3 || cat == NULL || cplx == NULL ||
		    !json_is_integer(v)) {
			rc = store_fail(err, STORE_EINVAL,
			    "overhead_json of set %lld: element %zu is not [category, complexity,"
			    " overhead]",
			    (long long)version, i);
			break;
		}
		(*rows)[*n].category = xstrdup(cat);
		(*rows)[*n].complexity = xstrdup(cplx);
		(*rows)[*n].overhead = json_integer_value(v);
		(*n)++;
	}
	json_decref(arr);
	if (rc != 0) {
		store_coef_rows_free(*rows, *n);
		*rows = NULL;
		*n = 0;
	}
	return rc;
}

/* Free parsed rows. */
void store_coef_rows_free(struct store_coef_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].category);
		free(rows[i].complexity);
	}
	free(rows);
}
