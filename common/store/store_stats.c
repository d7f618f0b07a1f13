#include "common/store/store_internal.h"
#include "common/util.h"
#include "common/vocab.h"

#include <stdlib.h>
#include <string.h>

/* Append (key, n) to the list. */
static void store_counts_add(struct store_counts *c, const char *key, int64_t n)
{
	c->items = xrealloc(c->items, (c->n + 1) * sizeof *c->items);
	c->items[c->n].key = xstrdup(key);
	c->items[c->n].n = n;
	c->n++;
}

/* Add n to the entry `key`, appending it if absent. */
static void store_counts_bump(struct store_counts *c, const char *key, int64_t n)
{
	for (size_t i = 0; i < c->n; i++) {
		if (strcmp(c->items[i].key, key) == 0) {
			c->items[i].n += n;
			return;
		}
	}
	store_counts_add(c, key, n);
}

/* Free a list's keys and items. */
static void store_counts_free(struct store_counts *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->items[i].key);
	free(c->items);
	c->items = NULL;
	c->n = 0;
}

/* Run a two-column (label, count) query, adding each row to `c`; NULL labels become
 * `null_key`. */
static int store_counts_query(struct store *st, const char *sql, const char *null_key,
    struct store_counts *c, struct store_err *err)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const unsigned char *k = sqlite3_column_text(q, 0);

		store_counts_bump(
		    c, k != NULL ? (const char *)k : null_key, sqlite3_column_int64(q, 1));
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		store_fail(err, STORE_EIO, "%s: %s", st->path, sqlite3_errmsg(st->db));
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : STORE_EIO;
}

/* Read the per-run phase counts, ordered by run id. */
static int store_per_run_read(struct store *st, struct store_stats *s, struct store_err *err)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(st->db,
	    "SELECT r.id, r.state, count(p.id), "
	    "  coalesce(sum(p.state = 'QUEUED'), 0), coalesce(sum(p.state = 'EXECUTING'), 0), "
	    "  coalesce(sum(p.state = 'COMPLETE'), 0), coalesce(sum(p.state = 'FAILED'), 0) "
	    "FROM runs r LEFT JOIN phases p ON p.run_id = r.id GROUP BY r.id ORDER BY r.id",
	    -1, &q, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_run_phases *r;

		s->per_run = xrealloc(s->per_run, (s->n_runs + 1) * sizeof *s->per_run);
		r = &s->per_run[s->n_runs++];
		r->run_id = xstrdup((const char *)sqlite3_column_text(q, 0));
		r->state = xstrdup((const char *)sqlite3_column_text(q, 1));
		r->total = sqlite3_column_int64(q, 2);
		r->queued = sqlite3_column_int64(q, 3);
		r->executing = sqlite3_column_int64(q, 4);
		r->complete = sqlite3_column_int64(q, 5);
		r->failed = sqlite3_column_int64(q, 6);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		store_fail(err, STORE_EIO, "%s: %s", st->path, sqlite3_errmsg(st->db));
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : STORE_EIO;
}

/* Read the telemetry totals. */
static int store_telemetry_read(struct store *st, struct store_stats *s, struct store_err *err)
{
	int rc;

	rc = store_query_int(
	    st->db, "SELECT count(*) FROM token_estimation_v2_events", &s->v2_total, err);
	if (rc == 0)
		rc = store_query_int(st->db,
		    "SELECT count(*) FROM token_estimation_v2_events "
		    "WHERE success != 0",
		    &s->v2_success, err);
	if (rc == 0)
		rc = store_query_int(st->db,
		    "SELECT count(*) FROM token_estimation_v2_events "
		    "WHERE truncated != 0",
		    &s->v2_truncated, err);
	if (rc == 0)
		rc = store_counts_query(st,
		    "SELECT category, count(*) FROM "
		    "token_estimation_v2_events WHERE success != 0 GROUP BY category "
		    "ORDER BY count(*) DESC, category",
		    "(none)", &s->v2_by_category, err);
	if (rc == 0)
		rc = store_counts_query(st,
		    "SELECT complexity, count(*) FROM "
		    "token_estimation_v2_events WHERE success != 0 GROUP BY complexity "
		    "ORDER BY count(*) DESC, complexity",
		    "(none)", &s->v2_by_complexity, err);
	if (rc == 0)
		rc = store_query_int(
		    st->db, "SELECT count(*) FROM llm_usage_events", &s->usage_total, err);
	if (rc == 0)
		rc = store_query_int(st->db,
		    "SELECT count(*) FROM llm_usage_events "
		    "WHERE status != 'ok'",
		    &s->usage_failed, err);
	if (rc == 0)
		rc = store_query_int(st->db,
		    "SELECT coalesce(sum(total_tokens), 0) FROM "
		    "llm_usage_events",
		    &s->usage_tokens, err);
	return rc;
}

/* Read db check's statistics; STORE_EIO (nothing to free) on failure. */
int store_stats_read(struct store *st, struct store_stats *s, struct store_err *err)
{
	int rc;

	memset(s, 0, sizeof *s);
	for (int i = PHASE_STATE_NONE + 1; i < PHASE_STATE_COUNT; i++)
		store_counts_add(&s->phase_states, phase_state_name(i), 0);
	rc = store_query_int(st->db, "SELECT count(*) FROM runs", &s->runs, err);
	if (rc == 0)
		rc = store_query_int(st->db, "SELECT count(*) FROM phases", &s->phases, err);
	if (rc == 0)
		rc = store_counts_query(st,
		    "SELECT state, count(*) FROM phases GROUP BY state "
		    "ORDER BY state",
		    "(null)", &s->phase_states, err);
	if (rc == 0)
		rc = store_counts_query(st,
		    "SELECT state, count(*) FROM runs GROUP BY state "
		    "ORDER BY count(*) DESC, state",
		    "(null)", &s->run_states, err);
	if (rc == 0)
		rc = store_per_run_read(st, s, err);
	if (rc == 0)
		rc = store_telemetry_read(st, s, err);
	if (rc != 0)
		store_stats_free(s);
	return rc;
}

/* Free the statistics. */
void store_stats_free(struct store_stats *s)
{
	store_counts_free(&s->phase_states);
	store_counts_free(&s->run_states);
	store_counts_free(&s->v2_by_category);
	store_counts_free(&s->v2_by_complexity);
	for (size_t i = 0; i < s->n_runs; i++) {
		free(s->per_run[i].run_id);
		free(s->per_run[i].state);
	}
	free(s->per_run);
	memset(s, 0, sizeof *s);
}
