/*
 * Failure fingerprints, LLM-boundary detection and zero-yield reasons: how a supervisor
 * recognises the same failure twice and why an attempt yielded no telemetry.
 *
 * Fixes against the original normaliser:
 *  - A Unix path is replaced only where it starts a token (at the start, or after
 *    whitespace, a quote, a parenthesis or '='), so "collection/import" stays as it is
 *    instead of becoming "collectionpath". The same rule applies to Windows paths.
 *  - The 200-byte cut never splits a UTF-8 sequence.
 *  - The rc bucket follows the code, not the docs: 143 is "timeout143".
 */
#ifndef AUTOPACK_FINGERPRINT_H
#define AUTOPACK_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/vocab.h"

#define FP_MESSAGE_MAX 200 /* bytes of the normalised message kept in a fingerprint */

/* Normalise an error message (lowercase; dates, times, paths, addresses, line numbers,
 * session ids and integers replaced by placeholders; whitespace collapsed) into out (size
 * n, truncated at a character boundary). Returns strlen(out). */
size_t fp_normalise(const char *in, char *out, size_t n);

/* The rc bucket of an exit status: -1 "timeout", 0 "rc0", 1 "rc1", 143 "timeout143",
 * else "rc<N>". */
void fp_rc_bucket(int rc, char *out, size_t n);

/* "final_state|bucket|normalised(error)[:200]"; each part only when its input is non-NULL
 * and non-empty. `bucket` is an rc bucket (fp_rc_bucket) or a lowercased failure reason.
 * Returns strlen(out); 0 when every part is missing. */
size_t fp_fingerprint(
    const char *final_state, const char *bucket, const char *error, char *out, size_t n);

/* The fingerprint of an attempt's end, one format whoever computes it (the worker for the
 * ends it reports, the supervisor for those it sees itself): fp_fingerprint of the
 * outcome's label, the failure reason in lower case and the attempt's message, e.g.
 * "FAILED|check_failed|check command exited num ..." or
 * "WORKER_CRASHED|worker_crashed|worker pid num ended: status num, signal num".
 * Writes "" and returns 0 for an outcome without a fingerprint (success, dry run). */
size_t fp_attempt(enum outcome o, enum reason r, const char *message, char *out, size_t n);

#define FP_ID_LEN 12 /* hex digits of a fingerprint's id */

/* A short name for a fingerprint: the first FP_ID_LEN hex digits of its 64-bit FNV-1a
 * hash, so an operator can name a class of failures on a command line. */
void fp_id(const char *fingerprint, char out[FP_ID_LEN + 1]);
/* Whether `name` names `fingerprint`: the whole text, or a prefix of at least 6 hex digits
 * of its id, in either case. */
bool fp_id_matches(const char *fingerprint, const char *name);

/* True when the text shows the LLM hit a context or turn limit. */
bool fp_llm_boundary(const char *text);

/* How far an attempt got; the worker knows this for certain. */
enum fp_stage {
	FP_STAGE_UNKNOWN,    /* a crashed worker: judge from the output text and rc */
	FP_STAGE_BEFORE_LLM, /* never sent a request: no key, invalid phase, ... */
	FP_STAGE_PROVIDER,   /* the provider never gave a usable response */
	FP_STAGE_PARSE,      /* the response held no usable deliverables */
	FP_STAGE_APPLY,      /* deliverables refused or missing */
	FP_STAGE_CHECK,      /* the check command failed */
	FP_STAGE_DONE,       /* the attempt succeeded */
};

struct fp_yield {
	int samples; /* clean samples: v2 events with success and not truncated */
	bool success;
	bool timed_out;
	bool boundary; /* fp_llm_boundary on the attempt's messages */
	bool dry_run;
	enum fp_stage stage;
	const char *output; /* nullable: text to judge when stage is unknown */
	bool has_rc;
	int rc;
};

/* Why the attempt yielded no clean estimator sample, or ZERO_YIELD_NONE when it yielded one
 * (or was a dry run). First match: success_no_llm_calls, timeout, llm_boundary_hit, then by stage
 * failed_before_llm, provider_error, parse_failed, deliverables_failed, check_failed; for
 * an unknown stage the original's text rules: failed_before_llm, execution_error
 * (rc not 0, -1, 143), unknown. */
enum zero_yield fp_zero_yield_reason(const struct fp_yield *y);

#endif
