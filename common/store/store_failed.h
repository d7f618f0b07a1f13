/*
 * What failed, and queueing it again. A phase is listed when it is FAILED, or when it is
 * QUEUED or SKIPPED, its last attempt (dry runs aside) did not succeed and nothing changed
 * the phase since: a "stopped" phase, one a drain left behind after a failure, a stop or
 * a cancel (a phase retried since is waiting for its drain, not stopped). Each comes with its
 * last attempt: outcome, failure reason, message, fingerprint, when it ended and the
 * run's workspace (where the check logs are, common/checklog.h). A phase whose run has no
 * row (the original kept no foreign keys) is listed too, marked; a retry leaves it, as no
 * drain would dispatch it.
 *
 * A retry moves FAILED phases (and SKIPPED ones named one by one) back to QUEUED in one
 * transaction, and records each in control_log with who asked and why.
 */
#ifndef AUTOPACK_STORE_FAILED_H
#define AUTOPACK_STORE_FAILED_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"

/* Which phases to list or retry; NULL members match everything. */
struct store_failed_filter {
	const char *run_id;
	const char *phase_id; /* with run_id: that one phase */
	const char *since;    /* a database timestamp (time_db): last attempt ended at or after */
	const char *fingerprint; /* the whole fingerprint, or its id (fp_id_matches) */
	const char *reason;      /* a failure reason, any case */
	bool failed_only;        /* FAILED phases only (with phase_id: FAILED or SKIPPED), and only
	                   * those whose run has a row: what a retry may queue */
	bool stopped_only;       /* the stopped QUEUED phases only (retry --stopped), whose run has
	                    * a row: what a retry may put back in the drain */
};

/* A failed or stopped phase with its last attempt. Heap strings; NULL when unknown. */
struct store_failed {
	char *run_id;
	char *phase_id;
	char *state;        /* phases.state */
	int64_t attempt_id; /* 0: no attempt recorded (an adopted database) */
	int64_t attempt_number;
	char *outcome;
	char *reason;      /* the attempt's failure reason, else phases.last_failure_reason */
	size_t reason_len; /* its bytes: another program's text may hold a NUL byte */
	char *message;
	char *fingerprint;
	char *ended_at; /* database timestamp of the attempt's end (or the phase's update) */
	char *session_id;
	char *workspace;  /* runs.workspace; NULL when the run has no row */
	bool run_missing; /* no row of runs has run_id (another program's rows) */
	bool retried;     /* moved to QUEUED by store_failed_retry */
};

/* Who asks for a retry and why, for control_log. */
struct store_retry_who {
	int64_t pid;
	int64_t uid;
	const char *via;      /* "offline" or "supervisor pid N" */
	const char *selector; /* the command line that selected the phases */
	const char *note;     /* the operator's reason; NULL for none */
};

/* A retry's selection and note, parsed from its arguments (strings borrowed from them). */
struct store_retry_args {
	struct store_failed_filter filter;
	bool stopped; /* --stopped: put the stopped QUEUED phases back in the drain */
	const char *note;
	char selector[512]; /* the selecting arguments, for control_log */
};

/* Parse a retry's arguments, the same from autopack-ctl's command line and in the request
 * the supervisor gets: RUN PHASE; or any of --run R, --fingerprint FP, --reason R (a
 * phase must match all given); or --all-failed; or --stopped, alone or with --run,
 * --fingerprint and --reason (filter.stopped_only); and --note TEXT. An option given again
 * with the same value is taken once; with another value it is refused. Returns 0, or -1
 * with what was wrong in err. */
int store_retry_args_parse(
    char *const *args, size_t n, struct store_retry_args *out, char *err, size_t errlen);

/* 0 when the database holds run `run_id`; STORE_EINVAL ("no run R in the database") when
 * it does not (a mistyped --run), STORE_EIO when it cannot be read. */
int store_run_exists(struct store *st, const char *run_id, struct store_err *err);
/* List the failed and stopped phases `f` selects, newest last attempt first. With
 * f->phase_id and f->failed_only, a phase that is not FAILED or SKIPPED is STORE_EINVAL
 * naming its state (or saying it does not exist); so is an f->run_id the database does
 * not hold. */
int store_failed_list(struct store *st, const struct store_failed_filter *f,
    struct store_failed **out, size_t *n, struct store_err *err);
void store_failed_free(struct store_failed *v, size_t n);

/* In one transaction, move each listed phase that is still FAILED (or SKIPPED) to QUEUED
 * and append a control_log row "retry RUN PHASE" naming its former state, the selector,
 * the note and `via`. Marks each moved item `retried` (its `state` stays the one it was
 * moved from) and sets *moved to their number; a phase that changed state meanwhile is
 * left alone. Nothing is written (and nothing marked) on failure. */
int store_failed_retry(struct store *st, struct store_failed *v, size_t n,
    const struct store_retry_who *who, size_t *moved, struct store_err *err);

/* In one transaction, put each listed phase that is still QUEUED back in the drain: its
 * updated_at set to now (it is no longer listed as stopped), its run no longer stopped or
 * deprioritised in any unfinished session (a --resume drains it), and a control_log row
 * "retry RUN PHASE" naming the selector, the note and `via`. Marks each one `retried` and
 * sets *moved to their number; one that changed state meanwhile is left alone. Nothing
 * is written (and nothing marked) on failure. */
int store_failed_release(struct store *st, struct store_failed *v, size_t n,
    const struct store_retry_who *who, size_t *moved, struct store_err *err);

#endif
