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

/* Check a plan document's shape without the database; the first error names its JSON
 * path. Returns 0 or STORE_EINVAL. */
int store_plan_check(const json_t *doc, const char *source, struct store_err *err);

#endif
