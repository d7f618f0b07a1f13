#include "common/joblimits.h"
#include "common/relpath.h"
#include "common/utf8.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define JOB_STR_OVERHEAD 5 /* the largest msgpack string header */

/* Check one string field against `max` bytes; add its encoded size to *total. */
static int job_field(
    const char *name, const char *v, size_t max, size_t *total, char *why, size_t n)
{
	size_t len = v != NULL ? strlen(v) : 0;

	*total += len + JOB_STR_OVERHEAD;
	if (len > max) {
		snprintf(why, n, "%s: %zu bytes; a job carries at most %zu", name, len, max);
		return -1;
	}
	return 0;
}

/* Check a scope list: entries, each entry's length, and (for `rules`) the path rules. A
 * scope path of "." grants the whole workspace and is allowed. */
static int job_list(const char *name, const char *const *v, size_t count, bool rules, bool dot_ok,
    size_t *total, char *why, size_t n)
{
	char norm[JOB_PATH_MAX + 1];
	size_t i;

	if (count > JOB_LIST_MAX) {
		snprintf(why, n, "scope.%s: %zu entries; a job carries at most %u", name, count,
		    JOB_LIST_MAX);
		return -1;
	}
	*total += JOB_STR_OVERHEAD;
	for (i = 0; i < count; i++) {
		size_t len = strlen(v[i]);
		const char *rule;

		*total += len + JOB_STR_OVERHEAD;
		if (len > JOB_PATH_MAX) {
			snprintf(why, n, "scope.%s[%zu]: %zu bytes; a path is at most %u bytes",
			    name, i, len, JOB_PATH_MAX);
			return -1;
		}
		if (!rules || (dot_ok && (strcmp(v[i], ".") == 0 || strcmp(v[i], "./") == 0)))
			continue;
		rule = relpath_norm(v[i], norm, sizeof norm);
		if (rule != NULL) {
			char shown[101];

			snprintf(why, n, "scope.%s[%zu] \"%s\": %s", name, i,
			    utf8_one_line(shown, v[i], sizeof shown), rule);
			return -1;
		}
	}
	return 0;
}

/* Check that the check command can be run: passed to `/bin/sh -c` as one argument, it
 * must fit the kernel's limit on one argument (execve fails E2BIG, after the LLM calls). */
static int job_check_command(const char *v, char *why, size_t n)
{
	size_t len = v != NULL ? strlen(v) : 0;

	if (len <= JOB_CHECK_MAX)
		return 0;
	snprintf(why, n,
	    "check_command: %zu bytes; the kernel passes /bin/sh -c a command of at most %u "
	    "bytes (one argument, MAX_ARG_STRLEN): put a longer one in a script in the "
	    "workspace and run that",
	    len, JOB_CHECK_MAX);
	return -1;
}

int job_limits_check(const struct job_phase_text *p, char *why, size_t n)
{
	size_t total = 0;

	if (job_field("run_id", p->run_id, JOB_NAME_MAX, &total, why, n) != 0 ||
	    job_field("phase_id", p->phase_id, JOB_NAME_MAX, &total, why, n) != 0 ||
	    job_field("name", p->name, JOB_TEXT_MAX, &total, why, n) != 0 ||
	    job_field("description", p->description, JOB_TEXT_MAX, &total, why, n) != 0 ||
	    job_field("task_category", p->category, JOB_NAME_MAX, &total, why, n) != 0 ||
	    job_field("complexity", p->complexity, JOB_NAME_MAX, &total, why, n) != 0 ||
	    job_field("check_command", p->check, JOB_TEXT_MAX, &total, why, n) != 0 ||
	    job_check_command(p->check, why, n) != 0 ||
	    job_field("workspace", p->workspace, JOB_PATH_MAX, &total, why, n) != 0 ||
	    job_list("paths", p->paths, p->npaths, true, true, &total, why, n) != 0 ||
	    job_list("read_only_context", p->context, p->ncontext, false, false, &total, why, n) !=
	        0 ||
	    job_list("deliverables", p->deliverables, p->ndeliverables, true, false, &total, why,
	        n) != 0 ||
	    relpath_files_check("scope.deliverables", p->deliverables, p->ndeliverables, why, n) !=
	        0)
		return -1;
	if (total > JOB_PHASE_BYTES_MAX) {
		snprintf(why, n, "the phase's text comes to %zu bytes; a job carries at most %u",
		    total, JOB_PHASE_BYTES_MAX);
		return -1;
	}
	return 0;
}
