/*
 * Estimator coefficient sets in the store (table estimator_coefficients). Each set is
 * versioned and self-contained: overhead_json holds the whole overhead table as
 * [category, complexity, overhead] triples, model_json the fitted model (NULL for a set
 * of the original's model alone; common/estimate/estimator_json.c reads both),
 * provenance_json how it was made. At most
 * one set is active; with none active the built-in defaults are in use, called version 1
 * (STORE_COEF_BUILTIN). The supervisor reads the active set at start and sends it with
 * every job.
 */
#ifndef AUTOPACK_STORE_COEF_H
#define AUTOPACK_STORE_COEF_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"

#define STORE_COEF_BUILTIN 1

/* One stored set. */
struct store_coef_set {
	int64_t version;
	char *created_at;
	bool active;
	int64_t parent_version; /* STORE_COEF_BUILTIN when the parent is the defaults */
	char *provenance_json;
	char *overhead_json;
	char *model_json; /* NULL: no fitted model */
};

/* One row of a set's overhead table. */
struct store_coef_row {
	char *category;
	char *complexity;
	int64_t overhead;
};

/* Read the active set into `set`; *found is false (and `set` empty) when none is active.
 * This is the one reader of the active set (the supervisor's, sent with every job, and
 * the calibration's). */
int store_coef_active(
    struct store *st, struct store_coef_set *set, bool *found, struct store_err *err);
/* Read the set of `version`; *found is false when there is none. */
int store_coef_get(struct store *st, int64_t version, struct store_coef_set *set, bool *found,
    struct store_err *err);
/* Read every set, newest first. */
int store_coef_list(
    struct store *st, struct store_coef_set **sets, size_t *n, struct store_err *err);

/* Store a new set (model_json nullable) and make it the active one, in one transaction: version
 * max(version, 1) + 1, parent the previously active set (or 1), the previous set made
 * inactive. Returns the new version and its parent; STORE_EINVAL, nothing changed, when
 * max(version) is already INT64_MAX (a set another program wrote). */
int store_coef_activate_new(struct store *st, const char *overhead_json, const char *model_json,
    const char *provenance_json, int64_t *version, int64_t *parent, struct store_err *err);

/* Make the active set's parent active again (none active when the parent is 1), in one
 * transaction. *from receives the version that was active, *now the one active after.
 * With no set active: STORE_EINVAL, nothing to roll back. */
int store_coef_rollback(struct store *st, int64_t *from, int64_t *now, struct store_err *err);

/* Parse the overhead_json of set `version`, a JSON array of [category, complexity,
 * overhead] triples, into heap rows. STORE_EINVAL names the set and the first element that
 * is not such a triple. */
int store_coef_rows(const char *overhead_json, int64_t version, struct store_coef_row **rows,
    size_t *n, struct store_err *err);
/* Free rows from store_coef_rows. */
void store_coef_rows_free(struct store_coef_row *rows, size_t n);

/* Free a set's strings; free a list from store_coef_list. */
void store_coef_set_free(struct store_coef_set *set);
void store_coef_list_free(struct store_coef_set *sets, size_t n);

#endif
