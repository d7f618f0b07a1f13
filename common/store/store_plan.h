/* Plan import from a parsed JSON document, for callers that build the plan themselves
 * (the seed run). Everything else uses store_plan_import in common/store/store.h. */
#ifndef AUTOPACK_STORE_PLAN_H
#define AUTOPACK_STORE_PLAN_H

#include <jansson.h>

#include "common/store/store.h"
#include "common/store/store_plan_overlap.h"

/* Validate `doc` whole, against the database too, then write it in one transaction;
 * see store_plan_import. `base_dir` may be NULL when every workspace is absolute. */
int store_plan_import_json(struct store *st, json_t *doc, const char *base_dir, const char *source,
    struct store_plan_summary *sum, struct store_err *err);

/* Check a plan document's top level (its members, "runs" a non-empty array) without the
 * database and without its runs. Returns 0, or STORE_EINVAL naming the JSON path. */
int store_plan_check_top(const json_t *doc, const char *source, struct store_err *err);
/* The fields of a phase, in the order store_plan_check_run gives their values. */
enum store_plan_phase_field {
	PLAN_F_PHASE_ID,
	PLAN_F_NAME,
	PLAN_F_DESCRIPTION,
	PLAN_F_TASK_CATEGORY,
	PLAN_F_COMPLEXITY,
	PLAN_F_BUILDER_MODE,
	PLAN_F_PHASE_TYPE,
	PLAN_F_SCOPE,
	PLAN_F_CHECK_COMMAND,
	PLAN_F_MAX_BUILDER_ATTEMPTS,
	PLAN_F_MAX_AUDITOR_ATTEMPTS,
	PLAN_F_INCIDENT_TOKEN_CAP,
	PLAN_F_PHASE_N,
};

/* A phase as its check found it: each field's value (NULL: absent; the JSON null when
 * null), and the stored text of its scope. */
struct store_plan_phase {
	const json_t *v[PLAN_F_PHASE_N];
	char *scope;
};

/* Check one run entry's shape, its tiers and phases, and that no phase delivers a path
 * under a file another of them delivers; `path` is its JSON path ("runs[3]"). `ov` is
 * emptied, then holds the deliverables of the run's phases, numbered in order, for
 * plan_overlap_probe. Returns 0 with *phases each phase's values, in order (ended by one
 * whose scope is NULL, for store_plan_phases_free; the values live as long as `run`), or
 * STORE_EINVAL naming the first bad path. */
int store_plan_check_run(const json_t *run, const char *source, const char *path,
    struct plan_overlap *ov, struct store_plan_phase **phases, struct store_err *err);
/* Free what store_plan_check_run put in *phases. */
void store_plan_phases_free(struct store_plan_phase *phases);

#endif
