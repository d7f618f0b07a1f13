/* The telemetry seed run: ten small, well-scoped phases whose only purpose is to yield
 * clean token-estimation samples (Python Autopack's create_telemetry_collection_run). */
#include "common/store/store_internal.h"
#include "common/store/store_plan.h"
#include "common/util.h"
#include "common/utf8.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define SEED_DIR "examples/telemetry_utils/"

/* One seed phase: up to two deliverables and three read-only context files, all
 * relative to SEED_DIR. */
struct seed_phase {
	const char *id, *name, *category, *complexity;
	const char *deliverables[2];
	const char *context[3];
	const char *description;
};

static const struct seed_phase seed_phases[] = {
	{ "telemetry-p1-string-util", "String utilities", "implementation", "low",
	    { "string_helper.py" }, { NULL },
	    "Create string_helper.py with capitalize_words(text) and reverse_string(text)." },
	{ "telemetry-p2-number-util", "Number utilities", "implementation", "low",
	    { "number_helper.py" }, { NULL },
	    "Create number_helper.py with is_even(n), is_prime(n) and factorial(n)." },
	{ "telemetry-p3-list-util", "List utilities", "implementation", "medium",
	    { "list_helper.py" }, { NULL },
	    "Create list_helper.py with chunk(items, size), flatten(nested), unique(items) "
	    "(order-preserving) and group_by(items, key)." },
	{ "telemetry-p4-date-util", "Date utilities", "implementation", "medium",
	    { "date_helper.py" }, { NULL },
	    "Create date_helper.py with format_date, parse_date, add_days and diff_days, "
	    "using the standard datetime module." },
	{ "telemetry-p5-dict-util", "Dictionary utilities", "implementation", "medium",
	    { "dict_helper.py" }, { NULL },
	    "Create dict_helper.py with deep_merge(a, b), get_nested(d, path, default), "
	    "set_nested(d, path, value) and filter_keys(d, keys)." },
	{ "telemetry-p6-string-tests", "String utility tests", "tests", "medium",
	    { "test_string_helper.py", "conftest.py" }, { "string_helper.py" },
	    "Write thorough pytest tests for string_helper.py in test_string_helper.py, with "
	    "shared fixtures in conftest.py." },
	{ "telemetry-p7-number-tests", "Number utility tests", "tests", "low",
	    { "test_number_helper.py" }, { "number_helper.py", "conftest.py" },
	    "Write pytest tests for number_helper.py in test_number_helper.py." },
	{ "telemetry-p8-list-tests", "List utility tests", "tests", "medium",
	    { "test_list_helper.py" }, { "list_helper.py", "conftest.py" },
	    "Write pytest tests for list_helper.py in test_list_helper.py." },
	{ "telemetry-p9-readme", "Utilities README", "docs", "low", { "README.md" },
	    { "string_helper.py", "number_helper.py", "list_helper.py" },
	    "Write README.md for the telemetry utilities with usage examples of the string, "
	    "number and list helpers." },
	{ "telemetry-p10-file-util", "File utilities", "implementation", "medium",
	    { "file_helper.py" }, { NULL },
	    "Create file_helper.py with read_json(path), write_json(path, data), "
	    "read_lines(path) and write_lines(path, lines)." },
};

/* Build the check command: every Python deliverable parses; anything else is
 * non-empty. */
static char *seed_check_command(const struct seed_phase *p)
{
	char *cmd = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(p->deliverables) && p->deliverables[i]; i++) {
		const char *d = p->deliverables[i];
		size_t n = strlen(d);
		char *one, *joined;

		if (n > 3 && strcmp(d + n - 3, ".py") == 0)
			one = xasprintf("python3 -c 'import ast; ast.parse(open(\"" SEED_DIR
			                "%s\").read())'",
			    d);
		else
			one = xasprintf("test -s " SEED_DIR "%s", d);
		joined = cmd != NULL ? xasprintf("%s && %s", cmd, one) : xstrdup(one);
		free(cmd);
		free(one);
		cmd = joined;
	}
	return cmd;
}

/* Return a JSON array of SEED_DIR-prefixed paths from a NULL-padded list. */
static json_t *seed_paths(const char *const *names, size_t cap)
{
	json_t *a = json_array();

	for (size_t i = 0; i < cap && names[i] != NULL; i++) {
		char *p = xasprintf(SEED_DIR "%s", names[i]);
		json_array_append_new(a, json_string(p));
		free(p);
	}
	return a;
}

/* Build one phase of the seed plan. */
static json_t *seed_phase_json(const struct seed_phase *p)
{
	char *check = seed_check_command(p);
	json_t *ph = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:[s], s:o, s:o}, s:s, s:i, s:i, s:i}",
	    "phase_id", p->id, "name", p->name, "description", p->description, "task_category",
	    p->category, "complexity", p->complexity, "scope", "paths", SEED_DIR,
	    "read_only_context", seed_paths(p->context, ARRAY_SIZE(p->context)), "deliverables",
	    seed_paths(p->deliverables, ARRAY_SIZE(p->deliverables)), "check_command", check,
	    "max_builder_attempts", 3, "max_auditor_attempts", 2, "incident_token_cap", 50000);

	free(check);
	assert(ph != NULL);
	return ph;
}

/* Build the whole seed plan with its workspace. */
static json_t *seed_plan(const char *workspace)
{
	json_t *phases = json_array();
	json_t *doc;

	for (size_t i = 0; i < ARRAY_SIZE(seed_phases); i++)
		json_array_append_new(phases, seed_phase_json(&seed_phases[i]));
	doc = json_pack("{s:[{s:s, s:s, s:s, s:i, s:i, s:i, s:[{s:s, s:s, s:i, s:i, s:o}]}]}",
	    "runs", "run_id", STORE_SEED_RUN_ID, "workspace", workspace, "goal",
	    "Collect clean token-estimation telemetry from ten small, well-scoped phases",
	    "token_cap", 500000, "max_phases", 15, "max_duration_minutes", 120, "tiers", "tier_id",
	    "T1", "name", "Telemetry Collection Tier", "token_cap", 500000, "ci_run_cap", 20,
	    "phases", phases);
	assert(doc != NULL);
	return doc;
}

/* Add the seed run; STORE_EEXIST, with a way out, if it is there already. */
int store_seed_telemetry_run(
    struct store *st, const char *workspace, struct store_plan_summary *sum, struct store_err *err)
{
	int64_t exists = 0;
	json_t *doc;
	long bad;
	int rc;

	memset(sum, 0, sizeof *sum);
	if (workspace[0] != '/')
		return store_fail(
		    err, STORE_EINVAL, "seed workspace must be absolute: %s", workspace);
	if ((bad = utf8_bad(workspace)) >= 0)
		return store_fail(err, STORE_EINVAL,
		    "seed workspace %s is not valid UTF-8 (byte %ld); a job carries only UTF-8 "
		    "text: name a directory whose path is",
		    workspace, bad + 1);
	rc = store_query_int(
	    st->db, "SELECT count(*) FROM runs WHERE id = '" STORE_SEED_RUN_ID "'", &exists, err);
	if (rc != 0)
		return rc;
	if (exists)
		return store_fail(err, STORE_EEXIST,
		    "run %s already exists in %s; nothing changed. Seed a fresh database "
		    "(autopack-ctl --db sqlite:///other.db db init), or delete the run first: "
		    "sqlite3 %s \"PRAGMA foreign_keys=ON; DELETE FROM runs WHERE id='%s'\"",
		    STORE_SEED_RUN_ID, st->url, st->path, STORE_SEED_RUN_ID);
	doc = seed_plan(workspace);
	rc = store_plan_import_json(st, doc, NULL, "seed", sum, err);
	json_decref(doc);
	return rc;
}
