/*
 * The one insert into token_estimation_v2_events, used by the drain (an event a worker
 * sent) and by the telemetry import (a sample recorded elsewhere). SMAPE, waste and
 * underestimation are derived here, and only when both token counts are positive
 * (docs/data-model.md, "Telemetry").
 */
#ifndef AUTOPACK_STORE_ESTIMATION_H
#define AUTOPACK_STORE_ESTIMATION_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"

/* One builder call as a row. Strings are borrowed; NULL strings and negative counts are
 * stored as NULL, unless the column says otherwise. */
struct store_estimation {
	const char *run_id;
	const char *phase_id;
	const char *timestamp;  /* when the call was made */
	const char *created_at; /* when the row was written */
	const char *category;
	const char *complexity;
	int64_t deliverable_count;
	const char *deliverables_json; /* NULL: "[]" */
	int64_t predicted_output_tokens;
	int64_t actual_output_tokens;
	int64_t selected_budget;
	int64_t actual_max_tokens; /* -1: unknown */
	bool success;
	bool truncated;
	const char *stop_reason; /* nullable */
	const char *model;
	int64_t doc_features;                 /* enum doc_feature bits; -1: not computed */
	const char *context_quality;          /* nullable */
	const char *sot_file_name;            /* nullable: set for a SOT ledger deliverable */
	int64_t sot_entry_count_hint;         /* -1: none */
	uint64_t attempt_id;                  /* 0: not from a drain */
	uint64_t seq;                         /* 0: not from a drain */
	uint64_t estimator_version;           /* 0: unknown */
	int64_t input_tokens;                 /* -1: unknown */
	const char *deliverables_detail_json; /* nullable: kind and size per deliverable */
};

/* Prepare the insert on `st` into *q (finalize it with db_finalize). Returns 0, or
 * STORE_EIO with err set. */
int store_estimation_prepare(struct store *st, struct db_stmt **q, struct store_err *err);
/* Insert one row with statement q from store_estimation_prepare. Returns 0, or STORE_EIO
 * with err set (a repeated (attempt_id, seq) is such an error). */
int store_estimation_insert(
    struct store *st, struct db_stmt *q, const struct store_estimation *e, struct store_err *err);

#endif
