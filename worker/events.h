/* Building the telemetry and log events a phase attempt emits. */
#ifndef AUTOPACK_EVENTS_H
#define AUTOPACK_EVENTS_H

#include <stdbool.h>

#include "common/estimate/estimator.h"
#include "proto/proto.h"
#include "worker/llm.h"

/* The deliverables as the v2 table keeps them: a JSON array of the first 20, each cut to
 * 200 characters (197 and "..."). Heap. */
char *ev_deliverables_json(const struct proto_strlist *d);

/* Per deliverable of the same first 20, its kind and existing size, as a JSON array
 * [{"kind": "new"|"modify"|"test"|"doc", "bytes": N or null}, ...], from what the
 * estimate `est` (of category est->category) saw at each path, the paths it did not
 * look at looked at under `workspace`. Heap. */
char *ev_deliverables_detail_json(
    const struct proto_strlist *d, const struct est_output *est, const char *workspace);

/* Fill an llm_request event: try `try_number` of a builder call, about to be sent with
 * `max_tokens`. Strings are borrowed from the arguments. */
void ev_request_fill(struct proto_event *ev, const char *provider, const char *model,
    int64_t max_tokens, int try_number);
/* Fill an llm_usage event for one try. Strings are borrowed from the arguments. */
void ev_usage_fill(
    struct proto_event *ev, const char *provider, const char *model, const struct llm_try *t);

/* What a builder call produced, for its token_estimation_v2 event. */
struct ev_builder_call {
	const struct est_output *est;
	uint64_t estimator_version;
	int selected_budget;
	int max_tokens;
	const char *model;
	const struct llm_response *resp;
	bool parsed;
	char *deliverables_json;        /* from ev_deliverables_json */
	char *deliverables_detail_json; /* from ev_deliverables_detail_json */
};

/* Fill a token_estimation_v2 event. Strings are borrowed from `c`. */
void ev_estimation_fill(struct proto_event *ev, const struct ev_builder_call *c);

/* Fill a log event; `message` is borrowed. */
void ev_log_fill(struct proto_event *ev, const char *level, char *message);

#endif
