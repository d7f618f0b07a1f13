/* Plan import from a parsed JSON document, for callers that build the plan themselves
 * (the seed run). Everything else uses store_plan_import in common/store/store.h. */
#ifndef AUTOPACK_STORE_PLAN_H
#define AUTOPACK_STORE_PLAN_H

#include <jansson.h>

#include "common/store/store.h"

/* Validate `doc` whole, against the database too, then write it in one transaction;
 * see store_plan_import. `base_dir` may be NULL when every workspace is absolute. */
int store_plan_import_json(struct store *st, json_t *doc, const char *base_dir, const char *source,
    struct store_plan_summary *sum, struct store_err *err);

/* Check a plan document's top level (its members, "runs" a non-empty array) without the
 * database and without its runs. Returns 0, or STORE_EINVAL naming the JSON path. */
int store_plan_check_top(const json_t *doc, const char *source, struct store_err *err);
/* Check one run entry's shape, its tiers and phases; `path` is its JSON path
 * ("runs[3]"). Returns 0 with *scopes the stored text of each phase's scope, in order (a
 * NULL-terminated array for store_plan_scopes_free), or STORE_EINVAL naming the first bad
 * path. */
int store_plan_check_run(
    const json_t *run, const char *source, const char *path, char ***scopes, struct store_err *err);
/* Free what store_plan_check_run put in *scopes. */
void store_plan_scopes_free(char **scopes);

#endif
