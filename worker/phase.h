/*
 * One phase attempt in the worker: estimate and budget → prompt → LLM call (one retry
 * with a larger budget after a truncation) → deliverables applied in the workspace →
 * check command → result. Telemetry events are emitted as they happen: an llm_usage
 * event per HTTP try (failed tries included) and a token_estimation_v2 event per builder
 * call whose output tokens are known.
 */
#ifndef AUTOPACK_PHASE_H
#define AUTOPACK_PHASE_H

#include "proto/proto.h"

struct phase_hooks {
	void *ctx;
	/* Send one event. phase_run fills kind and body; the caller fills db_uuid, attempt_id
	 * and seq. The event and its strings are only borrowed for the call. A nonzero
	 * return stops the attempt (the link to the supervisor is gone). */
	int (*emit)(void *ctx, struct proto_event *ev);
	/* Called at least every second while waiting on HTTP or the check command. */
	void (*heartbeat)(void *ctx);
	/* Nullable: whether the supervisor is still there, asked right before the
	 * deliverables are written; false ends the attempt with nothing written. */
	bool (*supervisor_present)(void *ctx);
};

#define PHASE_MESSAGE_MAX 1000 /* bytes of the result's message */

/* Run one attempt of `job`. Fills `out` (outcome success|failed|timeout|dry_run, failure
 * reason, message, fingerprint, zero-yield reason, reached_llm_boundary, duration; every
 * string on the heap; db_uuid, attempt_id and final_seq are left for the caller). Returns
 * 0, -1 when an emit failed (out then says SUPERVISOR_LINK_LOST), or PHASE_INTERRUPTED
 * when a stop signal the worker did not send (SIGTERM, SIGINT, SIGHUP) killed the check
 * command: out names it, but the attempt is not the phase's doing and is not reported. */
#define PHASE_INTERRUPTED 1
int phase_run(
    const struct proto_job *job, const struct phase_hooks *hooks, struct proto_result *out);

/* Free the strings phase_run put in `r` (outcome, failure_reason, message, fingerprint,
 * zero_yield_reason) and clear them. */
void phase_result_clear(struct proto_result *r);

#endif
