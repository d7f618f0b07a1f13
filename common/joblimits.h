/* What one phase must satisfy to be sent to a worker in a job message and run there: the
 * wire's limits on each field and on the whole job (proto/proto.h; the unit tests hold the
 * two sets of numbers equal), and the deliverable path rules (common/relpath.h). Checked
 * when a plan is imported or seeded and when a database is adopted, so that a phase that
 * could never be dispatched is refused before it is queued. */
#ifndef AUTOPACK_JOBLIMITS_H
#define AUTOPACK_JOBLIMITS_H

#include <stddef.h>

#define JOB_TEXT_MAX (1u << 20)        /* bytes: name, description, check command */
#define JOB_NAME_MAX 256               /* bytes: run and phase ids, category, complexity */
#define JOB_PATH_MAX 4096              /* bytes: workspace, each scope entry */
#define JOB_LIST_MAX 4096              /* entries of each scope list */
#define JOB_PHASE_BYTES_MAX (3u << 20) /* all of the above together, encoded */
/* bytes: the check command, which the worker hands `/bin/sh -c` as one argument, and the
 * kernel takes no argument longer than MAX_ARG_STRLEN (32 pages) with its NUL */
#define JOB_CHECK_MAX ((32u << 12) - 1)

/* The parts of a phase that travel in its job. Nullable strings may be NULL. */
struct job_phase_text {
	const char *run_id;
	const char *phase_id;
	const char *name;        /* nullable */
	const char *description; /* nullable */
	const char *category;    /* nullable */
	const char *complexity;  /* nullable */
	const char *check;       /* nullable */
	const char *workspace;   /* nullable */
	const char *const *paths;
	size_t npaths;
	const char *const *context;
	size_t ncontext;
	const char *const *deliverables;
	size_t ndeliverables;
};

/* Check a phase against every limit and deliverable rule. Returns 0, or -1 with `why`
 * naming the field, what it holds and the limit or rule it breaks, e.g.
 * "scope.deliverables: 5000 entries; a job carries at most 4096". */
int job_limits_check(const struct job_phase_text *p, char *why, size_t n);

#endif
