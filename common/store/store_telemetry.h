/* Telemetry in the store: reading token_estimation_v2 events as samples, importing
 * samples recorded elsewhere, exporting events. The SQL of telemetry report, telemetry
 * import/export and calibrate lives here. */
#ifndef AUTOPACK_STORE_TELEMETRY_H
#define AUTOPACK_STORE_TELEMETRY_H

#include <jansson.h>

#include "common/store/store.h"
#include "common/calib/telemetry.h"

/* Which events to read: those of the listed runs, or all when n_run_ids is 0. */
struct store_telem_filter {
	char *const *run_ids;
	size_t n_run_ids;
};

/* What an import wrote. */
struct store_telem_import {
	size_t samples; /* token_estimation_v2 events */
	size_t phases;  /* one per distinct (category, complexity) */
	size_t clean;   /* samples calibration can use */
};

/* Read the events the filter selects, in event order, into `out`. */
int store_telemetry_read(struct store *st, const struct store_telem_filter *f,
    struct telem_samples *out, struct store_err *err);

/* Import samples recorded elsewhere, in one transaction: run `run_id` (state
 * DONE_SUCCESS, no workspace, goal naming `source`), tier "imported", one COMPLETE phase
 * per distinct (category, complexity), and one event per sample with SMAPE, waste and
 * underestimation derived as the supervisor derives them (docs/data-model.md) and no estimator
 * version (unknown). Refuses an existing run (STORE_EEXIST); nothing is written on any
 * failure. */
int store_telemetry_import(struct store *st, const char *run_id, const char *source,
    const struct telem_samples *s, struct store_telem_import *sum, struct store_err *err);

/* Call `row` with every selected event as a JSON object of all its columns (0/1 flags
 * as booleans), in event order. `row` returns 0 to go on or a positive code to stop,
 * which is returned; a database error returns STORE_EIO. */
int store_telemetry_export(struct store *st, const struct store_telem_filter *f,
    int (*row)(json_t *obj, void *arg), void *arg, struct store_err *err);

#endif
