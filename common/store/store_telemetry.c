/* token_estimation_v2 events as samples: read, import, export. */
#include "common/store/store_estimation.h"
#include "common/store/store_internal.h"
#include "common/store/store_original.h"
#include "common/store/store_telemetry.h"
#include "common/strtab.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TELEM_SELECT                                                                               \
	"SELECT run_id, phase_id, timestamp, category, complexity, deliverable_count, "            \
	"predicted_output_tokens, actual_output_tokens, selected_budget, actual_max_tokens, "      \
	"success, truncated, stop_reason, model, estimator_version, attempt_id "                   \
	"FROM token_estimation_v2_events"

/* Columns exported as booleans. */
static const char *const telem_bool_cols[] = {
	"success",
	"truncated",
	"is_truncated_output",
	"underestimated",
	"api_reference_required",
	"examples_required",
	"research_required",
	"usage_guide_required",
	"is_sot_file",
};

/* Prepare `select` with the filter's run ids as a WHERE clause, ordered by event. */
static int telem_prepare(struct store *st, const char *select, const struct store_telem_filter *f,
    struct db_stmt **q, struct store_err *err)
{
	size_t len = strlen(select) + 64 + 3 * f->n_run_ids;
	char *sql = xmalloc(len);
	int rc;

	strcpy(sql, select);
	if (f->n_run_ids > 0) {
		strcat(sql, " WHERE run_id IN (?");
		for (size_t i = 1; i < f->n_run_ids; i++)
			strcat(sql, ",?");
		strcat(sql, ")");
	}
	strcat(sql, " ORDER BY event_id");
	rc = db_prepare(st->db, sql, q);
	free(sql);
	if (rc != DB_OK)
		return store_fail(err, STORE_EIO, "%s: reading token_estimation_v2_events: %s",
		    st->path, db_errmsg(st->db));
	for (size_t i = 0; i < f->n_run_ids; i++)
		db_bind_text(*q, (int)i + 1, f->run_ids[i]);
	return 0;
}

/* Column i's text as a heap string (if_null for NULL), bytes that are not UTF-8 (another
 * program's) as U+FFFD: every report, JSON document and plot made of it can hold it. */
static char *telem_col_text(struct db_stmt *q, int i, const char *if_null)
{
	const char *t = db_column_text(q, i);

	if (t == NULL)
		return if_null != NULL ? xstrdup(if_null) : NULL;
	return utf8_clean(t, SIZE_MAX);
}

/* Read count column i into *v; a text that is not wholly an integer (read as 0) and a
 * real that is none (1.5, or 1e300, which no 64-bit integer holds) are kept in the sample
 * as its first unreadable count. */
static void telem_col_count(
    struct db_stmt *q, int i, const char *name, struct telem_sample *s, int64_t *v)
{
	bool ok = db_column_int64_ok(q, i, v);

	if (ok && db_column_type(q, i) == DB_FLOAT)
		ok = db_column_double(q, i) == (double)*v && *v != INT64_MAX && *v != INT64_MIN;
	if (ok || s->unreadable_col != NULL)
		return;
	s->unreadable_col = name;
	s->unreadable_text = telem_col_text(q, i, "");
}

/* Append the current event to the telem_samples at arg. */
static int telem_read_row(struct db_stmt *q, void *arg)
{
	struct telem_sample *s = telem_samples_add(arg);

	s->run_id = telem_col_text(q, 0, "");
	s->phase_id = telem_col_text(q, 1, "");
	s->timestamp = telem_col_text(q, 2, "");
	s->category = telem_col_text(q, 3, "");
	s->complexity = telem_col_text(q, 4, "");
	telem_col_count(q, 5, "deliverable_count", s, &s->deliverable_count);
	telem_col_count(q, 6, "predicted_output_tokens", s, &s->predicted);
	telem_col_count(q, 7, "actual_output_tokens", s, &s->actual);
	telem_col_count(q, 8, "selected_budget", s, &s->selected_budget);
	if (db_column_type(q, 9) == DB_NULL)
		s->actual_max_tokens = -1;
	else
		telem_col_count(q, 9, "actual_max_tokens", s, &s->actual_max_tokens);
	s->success = db_column_int64(q, 10) != 0;
	s->truncated = db_column_int64(q, 11) != 0;
	s->stop_reason = telem_col_text(q, 12, NULL);
	s->model = telem_col_text(q, 13, "");
	s->estimator_version = db_column_int64(q, 14);
	s->attempt_id = db_column_int64(q, 15);
	return 0;
}

/* Read the selected events as samples. */
int store_telemetry_read(struct store *st, const struct store_telem_filter *f,
    struct telem_samples *out, struct store_err *err)
{
	struct db_stmt *q;
	int rc;

	memset(out, 0, sizeof *out);
	rc = telem_prepare(st, TELEM_SELECT, f, &q, err);
	if (rc != 0)
		return rc;
	rc = store_each_row(st->db, q, DB_OK, telem_read_row, out, err,
	    "%s: reading token_estimation_v2_events", st->path);
	if (rc != 0)
		telem_samples_free(out);
	return rc;
}

/* Run one prepared statement to completion with its bound values; STORE_EIO naming
 * `what` on failure. */
static int telem_step(struct store *st, struct db_stmt *q, const char *what, struct store_err *err)
{
	int rc = db_step(q);

	if (rc != DB_DONE)
		return store_fail(err, STORE_EIO, "%s: %s: %s", st->path, what, db_errmsg(st->db));
	db_reset(q);
	db_clear_bindings(q);
	return 0;
}

/* Prepare a statement or fail naming `what`. */
static int telem_prep(
    struct store *st, const char *sql, struct db_stmt **q, const char *what, struct store_err *err)
{
	if (db_prepare(st->db, sql, q) != DB_OK)
		return store_fail(err, STORE_EIO, "%s: %s: %s", st->path, what, db_errmsg(st->db));
	return 0;
}

/* Write the run and its tier; the tier's row id goes to *tier_row. */
static int telem_import_run(struct store *st, const char *run_id, const char *source,
    const char *now, int64_t *tier_row, struct store_err *err)
{
	char *sql[] = {
		store_original_insert_sql(st->db, "runs",
		    "id, state, goal_anchor, created_at, updated_at, completed_at",
		    "?1, 'DONE_SUCCESS', ?2, ?3, ?3, ?3"),
		store_original_insert_sql(st->db, "tiers",
		    "tier_id, run_id, tier_index, name, description, state, created_at, updated_at, "
		    "completed_at",
		    "'imported', ?1, 0, 'Imported telemetry samples', ?2, 'COMPLETE', ?3, ?3, ?3"),
	};
	static const char *const what[] = { "writing the run", "writing the tier" };
	char *goal = xasprintf("Token-estimation samples imported from %s", source);
	int rc = 0;

	for (size_t i = 0; i < ARRAY_SIZE(sql) && rc == 0; i++) {
		struct db_stmt *q = NULL;
		char *ret = xasprintf(
		    "%s%s", sql[i], i == ARRAY_SIZE(sql) - 1 ? " RETURNING id" : "");

		rc = db_prepare(st->db, ret, &q);

		free(ret);
		if (rc == DB_OK) {
			store_bind_text(q, 1, run_id);
			store_bind_text(q, 2, goal);
			store_bind_text(q, 3, now);
		}
		if (i == ARRAY_SIZE(sql) - 1)
			rc = store_step_id(
			    st->db, q, rc, tier_row, err, "%s: %s", st->path, what[i]);
		else
			rc = store_step_done(st->db, q, rc, err, "%s: %s", st->path, what[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(sql); i++)
		free(sql[i]);
	free(goal);
	return rc;
}

/* Build the phase id of group `index`: "p<index>-<category>-<complexity>", with
 * characters an id may not hold replaced by '-', at most 128 bytes. */
static char *telem_phase_id(size_t index, const char *category, const char *complexity)
{
	char *id = xasprintf("p%02zu-%s-%s", index + 1, category, complexity);

	if (strlen(id) > 128)
		id[128] = '\0';
	for (char *p = id; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		        (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			*p = '-';
	return id;
}

/* Insert the phase row of one group: id `id`, the group of sample x. */
static int telem_insert_phase(struct store *st, struct db_stmt *q, const char *run_id,
    int64_t tier_row, int64_t index, const char *id, const struct telem_sample *x, const char *now,
    struct store_err *err)
{
	char *name = xasprintf("%s/%s samples", x->category, x->complexity);
	int rc;

	db_bind_text(q, 1, id);
	db_bind_text(q, 2, run_id);
	db_bind_int64(q, 3, tier_row);
	db_bind_int64(q, 4, index);
	db_bind_text(q, 5, name);
	db_bind_text(q, 6, x->category);
	db_bind_text(q, 7, x->complexity);
	db_bind_text(q, 8, now);
	rc = telem_step(st, q, "writing a phase", err);
	free(name);
	return rc;
}

/* Write one COMPLETE phase per distinct (category, complexity), the pairs found through a
 * table of them; phase_of[i] receives the index into ids[] (heap strings) of sample i's
 * phase. */
static int telem_import_phases(struct store *st, const char *run_id, int64_t tier_row,
    const struct telem_samples *s, const char *now, size_t *phase_of, char **ids, size_t *n_phases,
    struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *sql = store_original_insert_sql(st->db, "phases",
	    "phase_id, run_id, tier_id, phase_index, name, description, state, task_category, "
	    "complexity, scope, created_at, updated_at, completed_at",
	    "?1, ?2, ?3, ?4, ?5, 'Samples imported from another system', 'COMPLETE', ?6, ?7, "
	    "'{\"paths\":[],\"read_only_context\":[],\"deliverables\":[]}', ?8, ?8, ?8");
	int rc = telem_prep(st, sql, &q, "writing a phase", err);
	struct strtab pairs; /* phase k's pair has index k */

	strtab_init(&pairs, s->n, true);
	*n_phases = 0;
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const struct telem_sample *x = &s->v[i];
		bool added;

		phase_of[i] = strtab_add_pair(&pairs, x->category, x->complexity, &added);
		if (!added)
			continue;
		ids[*n_phases] = telem_phase_id(*n_phases, x->category, x->complexity);
		rc = telem_insert_phase(
		    st, q, run_id, tier_row, (int64_t)*n_phases, ids[*n_phases], x, now, err);
		(*n_phases)++;
	}
	strtab_free(&pairs);
	db_finalize(q);
	free(sql);
	return rc;
}

/* Write one event per sample. */
static int telem_import_events(struct store *st, const char *run_id, const struct telem_samples *s,
    const char *now, const size_t *phase_of, char **ids, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = store_estimation_prepare(st, &q, err);

	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const struct telem_sample *x = &s->v[i];
		char stamp[32];
		struct store_estimation e;

		if (time_db_parse(x->timestamp, stamp) != 0)
			strlcpy_ap(stamp, x->timestamp, sizeof stamp);
		e = (struct store_estimation){
			.run_id = run_id,
			.phase_id = ids[phase_of[i]],
			.timestamp = stamp,
			.created_at = now,
			.category = x->category,
			.complexity = x->complexity,
			.deliverable_count = x->deliverable_count,
			.predicted_output_tokens = x->predicted,
			.actual_output_tokens = x->actual,
			.selected_budget = x->selected_budget,
			.actual_max_tokens = x->actual_max_tokens,
			.success = x->success,
			.truncated = x->truncated,
			.stop_reason = x->stop_reason,
			.model = x->model,
			.doc_features = -1,
			.sot_entry_count_hint = -1,
			.input_tokens = -1,
		};
		rc = store_estimation_insert(st, q, &e, err);
	}
	db_finalize(q);
	return rc;
}

/* Import samples as a run of their own, all or nothing. */
int store_telemetry_import(struct store *st, const char *run_id, const char *source,
    const struct telem_samples *s, struct store_telem_import *sum, struct store_err *err)
{
	size_t *phase_of = xcalloc(s->n + 1, sizeof *phase_of);
	char **ids = xcalloc(s->n + 1, sizeof *ids);
	size_t n_phases = 0;
	int64_t exists = 0, tier_row = 0;
	char now[32];
	char *sql;
	int rc;

	assert(st->writable);
	memset(sum, 0, sizeof *sum);
	db_now(st->db, now);
	rc = store_begin(st->db, "starting the import", err);
	if (rc != 0)
		goto out;
	sql = db_sqlf("SELECT count(*) FROM runs WHERE id = %Q", run_id);
	rc = store_query_int(st->db, sql, &exists, err);
	free(sql);
	if (rc == 0 && exists)
		rc = store_fail(err, STORE_EEXIST,
		    "run %s already exists in %s; nothing was "
		    "imported (choose another run id with --run-id)",
		    run_id, st->url);
	if (rc == 0)
		rc = telem_import_run(st, run_id, source, now, &tier_row, err);
	if (rc == 0)
		rc = telem_import_phases(
		    st, run_id, tier_row, s, now, phase_of, ids, &n_phases, err);
	if (rc == 0)
		rc = telem_import_events(st, run_id, s, now, phase_of, ids, err);
	if (rc == 0)
		rc = store_commit(st->db, "committing the import", err);
	if (rc != 0) {
		db_rollback(st->db);
		goto out;
	}
	sum->samples = s->n;
	sum->phases = n_phases;
	for (size_t i = 0; i < s->n; i++)
		sum->clean += telem_clean(&s->v[i]);
out:
	for (size_t i = 0; i < n_phases; i++)
		free(ids[i]);
	free(ids);
	free(phase_of);
	return rc;
}

/* Whether a column is exported as a boolean. */
static bool telem_is_bool_col(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(telem_bool_cols); i++)
		if (strcmp(telem_bool_cols[i], name) == 0)
			return true;
	return false;
}

/* `len` bytes as {"<key>": "<hex>"}, the form of a value JSON holds no string for. */
static json_t *telem_json_hex(const char *key, const char *t, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *hex = xmalloc(2 * len + 1);
	json_t *v;

	for (size_t i = 0; i < len; i++) {
		hex[2 * i] = digits[(unsigned char)t[i] >> 4];
		hex[2 * i + 1] = digits[(unsigned char)t[i] & 15];
	}
	hex[2 * len] = '\0';
	v = json_pack("{s:s}", key, hex);
	free(hex);
	return v;
}

/* A text or BLOB value, whole: a text that is UTF-8 as a JSON string (a NUL in it as
 * \u0000); a BLOB (bytes another program stored) as {"blob_hex": ...}, a text that is not
 * UTF-8 as {"text_hex": ...}, their bytes in hex, since a JSON string would change them. */
static json_t *telem_json_text(struct db_stmt *q, int i)
{
	/* Asked first: reading the value as a text converts it, and SQLite's type after. */
	bool blob = db_column_is_blob(q, i);
	size_t len;
	const char *t = db_column_textn(q, i, &len);

	if (t == NULL)
		return json_null();
	if (blob)
		return telem_json_hex("blob_hex", t, len);
	if (utf8_check(t, len) == len)
		return json_stringn(t, len);
	return telem_json_hex("text_hex", t, len);
}

/* Convert the current row to a JSON object of every column. */
static json_t *telem_row_json(struct db_stmt *q)
{
	json_t *o = json_object();

	for (int i = 0; i < db_column_count(q); i++) {
		const char *name = db_column_name(q, i);
		json_t *v;

		switch (db_column_type(q, i)) {
		case DB_INTEGER:
			v = telem_is_bool_col(name) ? json_boolean(db_column_int64(q, i)) :
			                              json_integer(db_column_int64(q, i));
			break;
		/* JSON has no infinity (SQLite holds one: 1e999 typed into its shell): null,
		 * not a row without the column. */
		case DB_FLOAT:
			v = isfinite(db_column_double(q, i)) ? json_real(db_column_double(q, i)) :
			                                       json_null();
			break;
		case DB_TEXT: v = telem_json_text(q, i); break;
		default: v = json_null();
		}
		json_object_set_new(o, name, v);
	}
	return o;
}

/* The caller's row function and argument of an export. */
struct telem_export {
	int (*row)(json_t *obj, void *arg);
	void *arg;
};

/* Hand the current event, as JSON, to the export's row function. */
static int telem_export_row(struct db_stmt *q, void *arg)
{
	struct telem_export *x = arg;
	json_t *o = telem_row_json(q);
	int ret = x->row(o, x->arg);

	json_decref(o);
	return ret;
}

/* Hand every selected event to `row`. */
int store_telemetry_export(struct store *st, const struct store_telem_filter *f,
    int (*row)(json_t *obj, void *arg), void *arg, struct store_err *err)
{
	struct telem_export x = { row, arg };
	struct db_stmt *q;
	int rc;

	rc = telem_prepare(st, "SELECT * FROM token_estimation_v2_events", f, &q, err);
	if (rc != 0)
		return rc;
	return store_each_row(st->db, q, DB_OK, telem_export_row, &x, err,
	    "%s: reading token_estimation_v2_events", st->path);
}
