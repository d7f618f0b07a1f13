/* The original's Python-side values for NOT NULL columns, and inserts that name them. */
#include "common/store/store_original.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const struct store_original_fill store_original_fills[] = {
	{ "runs", "state", "'RUN_CREATED'" },
	{ "runs", "created_at", NULL },
	{ "runs", "updated_at", NULL },
	{ "runs", "safety_profile", "'normal'" },
	{ "runs", "run_scope", "'multi_tier'" },
	{ "runs", "token_cap", "5000000" },
	{ "runs", "max_phases", "25" },
	{ "runs", "max_duration_minutes", "120" },
	{ "runs", "tokens_used", "0" },
	{ "runs", "ci_runs_used", "0" },
	{ "runs", "minor_issues_count", "0" },
	{ "runs", "major_issues_count", "0" },
	{ "runs", "promotion_eligible_to_main", "'false'" },
	{ "tiers", "state", "'PENDING'" },
	{ "tiers", "max_major_issues_tolerated", "0" },
	{ "tiers", "tokens_used", "0" },
	{ "tiers", "ci_runs_used", "0" },
	{ "tiers", "minor_issues_count", "0" },
	{ "tiers", "major_issues_count", "0" },
	{ "tiers", "cleanliness", "'clean'" },
	{ "tiers", "created_at", NULL },
	{ "tiers", "updated_at", NULL },
	{ "phases", "state", "'QUEUED'" },
	{ "phases", "builder_attempts", "0" },
	{ "phases", "auditor_attempts", "0" },
	{ "phases", "tokens_used", "0" },
	{ "phases", "minor_issues_count", "0" },
	{ "phases", "major_issues_count", "0" },
	{ "phases", "issue_state", "'no_issues'" },
	{ "phases", "quality_blocked", "0" },
	{ "phases", "retry_attempt", "0" },
	{ "phases", "revision_epoch", "0" },
	{ "phases", "escalation_level", "0" },
	{ "phases", "created_at", NULL },
	{ "phases", "updated_at", NULL },
	{ "llm_usage_events", "total_tokens", "0" },
	{ "llm_usage_events", "is_doctor_call", "0" },
	{ "llm_usage_events", "created_at", NULL },
	{ "token_estimation_v2_events", "truncated", "0" },
	{ "token_estimation_v2_events", "is_truncated_output", "0" },
	{ "token_estimation_v2_events", "deliverables_json", "'[]'" },
	{ "token_estimation_v2_events", "timestamp", NULL },
	{ "token_estimation_v2_events", "created_at", NULL },
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

/* Build an INSERT that also fills the original's Python-side NOT NULL columns. */
char *store_original_insert_sql(const char *table, const char *cols, const char *vals)
{
	struct strbuf c = { 0 }, v = { 0 };

	strbuf_printf(&c, "INSERT INTO %s (%s", table, cols);
	strbuf_printf(&v, ") VALUES (%s", vals);
	for (size_t i = 0; i < store_n_original_fills; i++) {
		const struct store_original_fill *f = &store_original_fills[i];

		if (strcmp(f->table, table) != 0 || original_names(cols, f->column))
			continue;
		assert(f->value != NULL);
		strbuf_printf(&c, ", %s", f->column);
		strbuf_printf(&v, ", %s", f->value);
	}
	strbuf_printf(&c, "%s)", v.s);
	free(v.s);
	return c.s;
}
