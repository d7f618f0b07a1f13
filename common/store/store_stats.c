/* What `db check` reports besides the banner: phase and run states, per-run phase counts,
 * telemetry totals. Reads only. */
#include "common/store/store_internal.h"
#include "common/util.h"
#include "common/vocab.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Append (key, n) to the list. */
void store_counts_add(struct store_counts *c, const char *key, int64_t n)
{
	assert(key != NULL);
	c->items = xrealloc(c->items, (c->n + 1) * sizeof *c->items);
	c->items[c->n].key = xstrdup(key);
	c->items[c->n].n = n;
	c->n++;
}

/* Add n to the entry `key`, appending it if absent. */
void store_counts_bump(struct store_counts *c, const char *key, int64_t n)
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
void store_counts_free(struct store_counts *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->items[i].key);
	free(c->items);
	c->items = NULL;
	c->n = 0;
}

/* A (label, count) query's list and the label NULL becomes. */
struct counts_query {
	struct store_counts *c;
	const char *null_key;
};

/* Add the current (label, count) row to a counts_query's list. */
static int store_counts_row(struct db_stmt *q, void *arg)
{
	struct counts_query *cq = arg;
	const char *k = db_column_text(q, 0);

	store_counts_bump(cq->c, k != NULL ? (const char *)k : cq->null_key, db_column_int64(q, 1));
	return 0;
}

/* Fill one run's phase counts from the current row (a store_rows fill). */
static void store_per_run_row(struct db_stmt *q, void *item)
{
	struct store_run_phases *r = item;

	r->run_id = store_col_text(q, 0, "");
	r->state = store_col_text(q, 1, "");
	r->total = db_column_int64(q, 2);
	r->queued = db_column_int64(q, 3);
	r->executing = db_column_int64(q, 4);
	r->complete = db_column_int64(q, 5);
	r->failed = db_column_int64(q, 6);
}

/* Free one run's phase counts. */
static void store_per_run_free(void *item)
{
	struct store_run_phases *r = item;

	free(r->run_id);
	free(r->state);
}

/* Read the per-run phase counts, ordered by run id. */
static int store_per_run_read(struct store *st, struct store_stats *s, struct store_err *err)
{
	struct store_rows l = { .size = sizeof *s->per_run,
		.fill = store_per_run_row,
		.item_free = store_per_run_free };
	int rc = store_rows_query(st->db,
	    "SELECT r.id, r.state, count(p.id), "
	    "  coalesce(" SQL_SUM_IF(
	        "p.state = 'QUEUED'") ", 0),"
	                              "  coalesce(" SQL_SUM_IF(
	                                  "p.state = 'EXECUTING'") ", 0),"
	                                                           "  coalesce(" SQL_SUM_IF(
	                                                               "p.state = 'COMPLETE'") ", 0),"
	                                                                                       "  coalesce(" SQL_SUM_IF(
	                                                                                           "p.state = 'FAILED'") ", 0) "
	                                                                                                                 "FROM runs r LEFT JOIN phases p ON p.run_id = r.id GROUP BY r.id ORDER BY r.id",
	    &l, err, "%s", st->path);

	s->per_run = l.v;
	s->n_runs = l.n;
	return rc;
}

/* An llm_usage_events row whose counts a call can report (the wire's limits,
 * docs/protocol.md): each an integer, not a text ('12abc') or a real (1.5) another program
 * wrote; the prompt and completion tokens from 0 to 10^9 when known, the total from 0 to
 * 2 x 10^9. Anything else is left out of the token total, which a few such rows would
 * overflow (db check then failed for good) or make up. */
#define USAGE_COUNT_OK(col, max)                                                                   \
	"(" col " = CAST(" col " AS BIGINT) AND " col " BETWEEN 0 AND " max ")"
#define USAGE_PLAUSIBLE                                                                              \
	"(" USAGE_COUNT_OK("total_tokens",                                                           \
	    "2000000000") " AND (prompt_tokens IS NULL OR " USAGE_COUNT_OK("prompt_tokens",          \
	    "1000000000") ") AND (completion_tokens IS NULL OR " USAGE_COUNT_OK("completion_tokens", \
	    "1000000000") "))"

/* Fill an excluded usage row from the current row (a store_rows fill). */
static void store_usage_row_fill(struct db_stmt *q, void *item)
{
	struct store_usage_row *r = item;

	r->id = db_column_int64(q, 0);
	r->total_tokens = store_col_text(q, 1, NULL);
	r->prompt_tokens = store_col_text(q, 2, NULL);
	r->completion_tokens = store_col_text(q, 3, NULL);
}

/* Free an excluded usage row's texts. */
static void store_usage_row_free(void *item)
{
	struct store_usage_row *r = item;

	free(r->total_tokens);
	free(r->prompt_tokens);
	free(r->completion_tokens);
}

/* Read the first STORE_STATS_NAMED usage rows left out of the token total, by id. */
static int store_usage_excluded_read(struct store *st, struct store_stats *s, struct store_err *err)
{
	struct store_rows l = { .size = sizeof *s->usage_excluded_rows,
		.fill = store_usage_row_fill,
		.item_free = store_usage_row_free };
	char *sql = xasprintf("SELECT id, CAST(total_tokens AS TEXT), CAST(prompt_tokens AS TEXT),"
	                      " CAST(completion_tokens AS TEXT) FROM llm_usage_events"
	                      " WHERE NOT " USAGE_PLAUSIBLE " ORDER BY id LIMIT %d",
	    STORE_STATS_NAMED);
	int rc = store_rows_query(st->db, sql, &l, err, "%s", st->path);

	free(sql);
	s->usage_excluded_rows = l.v;
	s->n_usage_excluded_rows = l.n;
	return rc;
}

/* Read db check's statistics; STORE_EIO (nothing to free) on failure. */
int store_stats_read(struct store *st, struct store_stats *s, struct store_err *err)
{
	const struct {
		const char *sql;
		int64_t *out;
	} totals[] = {
		{ "SELECT count(*) FROM runs", &s->runs },
		{ "SELECT count(*) FROM phases", &s->phases },
		{ "SELECT count(*) FROM token_estimation_v2_events", &s->v2_total },
		{ "SELECT count(*) FROM token_estimation_v2_events WHERE CAST(success AS INTEGER) != 0",
		    &s->v2_success },
		{ "SELECT count(*) FROM token_estimation_v2_events WHERE CAST(truncated AS INTEGER) != 0",
		    &s->v2_truncated },
		{ "SELECT count(*) FROM llm_usage_events", &s->usage_total },
		{ "SELECT count(*) FROM llm_usage_events WHERE status NOT IN ('ok', 'sent')",
		    &s->usage_failed },
		{ "SELECT count(*) FROM llm_usage_events WHERE status = 'lost'", &s->usage_lost },
		{ "SELECT count(*) FROM llm_usage_events WHERE status = 'sent'", &s->usage_sent },
		{ "SELECT coalesce(sum(CASE WHEN " USAGE_PLAUSIBLE
		  " THEN total_tokens END), 0) FROM llm_usage_events",
		    &s->usage_tokens },
		{ "SELECT count(*) FROM llm_usage_events WHERE NOT " USAGE_PLAUSIBLE,
		    &s->usage_excluded },
	};
	const struct {
		const char *sql;
		struct counts_query cq;
	} lists[] = {
		{ "SELECT state, count(*) FROM phases GROUP BY state ORDER BY state",
		    { &s->phase_states, "(null)" } },
		{ "SELECT state, count(*) FROM runs GROUP BY state ORDER BY count(*) DESC, state",
		    { &s->run_states, "(null)" } },
		{ "SELECT category, count(*) FROM token_estimation_v2_events WHERE CAST(success AS INTEGER) != 0 "
		  "GROUP BY category ORDER BY count(*) DESC, category",
		    { &s->v2_by_category, "(none)" } },
		{ "SELECT complexity, count(*) FROM token_estimation_v2_events WHERE CAST(success AS INTEGER) != 0 "
		  "GROUP BY complexity ORDER BY count(*) DESC, complexity",
		    { &s->v2_by_complexity, "(none)" } },
	};
	int rc = 0;

	memset(s, 0, sizeof *s);
	for (int i = PHASE_STATE_NONE + 1; i < PHASE_STATE_COUNT; i++)
		store_counts_add(&s->phase_states, phase_state_name(i), 0);
	for (size_t i = 0; i < ARRAY_SIZE(totals) && rc == 0; i++)
		rc = store_query_int(st->db, totals[i].sql, totals[i].out, err);
	for (size_t i = 0; i < ARRAY_SIZE(lists) && rc == 0; i++) {
		struct db_stmt *q = NULL;
		struct counts_query cq = lists[i].cq;

		rc = db_prepare(st->db, lists[i].sql, &q);
		rc = store_each_row(st->db, q, rc, store_counts_row, &cq, err, "%s", st->path);
	}
	if (rc == 0)
		rc = store_per_run_read(st, s, err);
	if (rc == 0 && s->usage_excluded > 0)
		rc = store_usage_excluded_read(st, s, err);
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
	for (size_t i = 0; i < s->n_runs; i++)
		store_per_run_free(&s->per_run[i]);
	free(s->per_run);
	store_rows_free(s->usage_excluded_rows, s->n_usage_excluded_rows,
	    sizeof *s->usage_excluded_rows, store_usage_row_free);
	memset(s, 0, sizeof *s);
}
