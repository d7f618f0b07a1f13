/* The original's Python-side values for NOT NULL columns, and inserts that name them. */
#include "common/store/store_original.h"
#include "common/store/dialect.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const struct store_original_fill store_original_fills[] = {
	{ "runs", "state", "'RUN_CREATED'", false },
	{ "runs", "created_at", NULL, false },
	{ "runs", "updated_at", NULL, false },
	{ "runs", "safety_profile", "'normal'", false },
	{ "runs", "run_scope", "'multi_tier'", false },
	{ "runs", "token_cap", "5000000", false },
	{ "runs", "max_phases", "25", false },
	{ "runs", "max_duration_minutes", "120", false },
	{ "runs", "tokens_used", "0", false },
	{ "runs", "ci_runs_used", "0", false },
	{ "runs", "minor_issues_count", "0", false },
	{ "runs", "major_issues_count", "0", false },
	{ "runs", "promotion_eligible_to_main", "'false'", false },
	{ "tiers", "state", "'PENDING'", false },
	{ "tiers", "max_major_issues_tolerated", "0", false },
	{ "tiers", "tokens_used", "0", false },
	{ "tiers", "ci_runs_used", "0", false },
	{ "tiers", "minor_issues_count", "0", false },
	{ "tiers", "major_issues_count", "0", false },
	{ "tiers", "cleanliness", "'clean'", false },
	{ "tiers", "created_at", NULL, false },
	{ "tiers", "updated_at", NULL, false },
	{ "phases", "state", "'QUEUED'", false },
	{ "phases", "builder_attempts", "0", false },
	{ "phases", "auditor_attempts", "0", false },
	{ "phases", "tokens_used", "0", false },
	{ "phases", "minor_issues_count", "0", false },
	{ "phases", "major_issues_count", "0", false },
	{ "phases", "issue_state", "'no_issues'", false },
	{ "phases", "quality_blocked", "0", true },
	{ "phases", "retry_attempt", "0", false },
	{ "phases", "revision_epoch", "0", false },
	{ "phases", "escalation_level", "0", false },
	{ "phases", "created_at", NULL, false },
	{ "phases", "updated_at", NULL, false },
	{ "llm_usage_events", "total_tokens", "0", false },
	{ "llm_usage_events", "is_doctor_call", "0", true },
	{ "llm_usage_events", "created_at", NULL, false },
	{ "token_estimation_v2_events", "truncated", "0", true },
	{ "token_estimation_v2_events", "is_truncated_output", "0", true },
	{ "token_estimation_v2_events", "deliverables_json", "'[]'", false },
	{ "token_estimation_v2_events", "timestamp", NULL, false },
	{ "token_estimation_v2_events", "created_at", NULL, false },
};
const size_t store_n_original_fills = ARRAY_SIZE(store_original_fills);

/* Return true if the comma-separated column list `cols` names `column`. */
static bool original_names(const char *cols, const char *column)
{
	size_t n = strlen(column);

	for (const char *p = cols; *p != '\0';) {
		p += strspn(p, ", \n\t");
		if (strncmp(p, column, n) == 0 && strchr(", \n\t", p[n]) != NULL)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* The fill's literal in the connection's dialect. */
const char *store_original_value(struct db *db, const struct store_original_fill *f)
{
	return f->boolean ? db->dialect->false_literal : f->value;
}

/* Build an INSERT of `rows` rows (the values of row k: vals[k]) that also fills the
 * original's Python-side NOT NULL columns. */
char *store_original_insert_rows_sql(
    struct db *db, const char *table, const char *cols, const char *const *vals, size_t rows)
{
	struct strbuf c = { 0 }, fills = { 0 };

	strbuf_printf(&c, "INSERT INTO %s (%s", table, cols);
	for (size_t i = 0; i < store_n_original_fills; i++) {
		const struct store_original_fill *f = &store_original_fills[i];

		if (strcmp(f->table, table) != 0 || original_names(cols, f->column))
			continue;
		assert(f->value != NULL);
		strbuf_printf(&c, ", %s", f->column);
		strbuf_printf(&fills, ", %s", store_original_value(db, f));
	}
	strbuf_puts(&c, ") VALUES ");
	for (size_t k = 0; k < rows; k++)
		strbuf_printf(
		    &c, "%s(%s%s)", k > 0 ? ", " : "", vals[k], fills.s != NULL ? fills.s : "");
	free(fills.s);
	return c.s;
}

/* Build an INSERT that also fills the original's Python-side NOT NULL columns. */
char *store_original_insert_sql(
    struct db *db, const char *table, const char *cols, const char *vals)
{
	return store_original_insert_rows_sql(db, table, cols, &vals, 1);
}
