/* Control command retry: queue FAILED phases again, one or a class of them, or (--stopped)
 * put stopped QUEUED phases back in the drain, in one transaction that records each in
 * control_log; their runs, no longer stopped, drain them at once. */
#include "supervisor/cmd.h"
#include "common/log.h"
#include "common/store/store_failed.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Refuse the retry: record it in control_log (nothing else is written) and fail the
 * command with `code`; returns -1. */
__attribute__((format(printf, 5, 6))) static int retry_refuse(struct sup *s, struct ctl_conn *c,
    const struct proto_request *req, struct cmd_reply *rep, const char *fmt, ...)
{
	char args[1024] = "", msg[1024];
	size_t len = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < req->args.n && len < sizeof args; i++)
		len += (size_t)snprintf(
		    args + len, sizeof args - len, "%s%s", i > 0 ? " " : "", req->args.items[i]);
	writer_control_log(s, c->pid, c->uid, "retry", args, false, msg);
	return cmd_error(rep, "refused", "%s", msg);
}

/* Put the retried phases' runs back in the drain: no longer skipped, queues reread. */
static void retry_requeue(struct sup *s, const struct store_failed *v, size_t n)
{
	struct run_q *r;
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (!v[i].retried)
			continue;
		for (j = 0; j < i && !(v[j].retried && strcmp(v[j].run_id, v[i].run_id) == 0); j++)
			;
		if (j < i)
			continue;
		policy_release_run(s, v[i].run_id);
		if ((r = sched_run_find(s, v[i].run_id)) != NULL)
			r->skipped = false;
		sched_reload_run(s, v[i].run_id);
	}
	lease_kick(s);
}

/* Whether `reason` is a failure reason of the vocabulary, in any case. */
static bool retry_reason_known(const char *reason)
{
	for (int r = REASON_NONE + 1; r < REASON_COUNT; r++)
		if (strcasecmp(reason, reason_name((enum reason)r)) == 0)
			return true;
	return false;
}

/* retry: queue the selected FAILED phases again (or put the stopped ones back) and drain
 * them; refused (and logged) on a bad
 * selector or a failed write. */
int cmd_retry(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	struct store_retry_who who = { .pid = c->pid, .uid = c->uid };
	struct store_failed *v = NULL;
	struct store_retry_args ra;
	struct store_err err;
	size_t n = 0, moved = 0, i;
	char msg[512], via[48];
	json_t *list;
	int rc;

	if (store_retry_args_parse(req->args.items, req->args.n, &ra, msg, sizeof msg) != 0)
		return retry_refuse(s, c, req, rep, "%s", msg);
	if (s->store_lost)
		return retry_refuse(s, c, req, rep, "retry: the database was lost");
	rc = store_failed_list(s->st, &ra.filter, &v, &n, &err);
	/* A --reason no phase records and the vocabulary does not hold is a misspelling, not
	 * "nothing to retry". */
	if (rc == 0 && n == 0 && ra.filter.reason != NULL && !retry_reason_known(ra.filter.reason))
		return retry_refuse(s, c, req, rep,
		    "retry: --reason %s: unknown failure reason (no phase selected records it)",
		    ra.filter.reason);
	snprintf(via, sizeof via, "supervisor pid %d", (int)getpid());
	who.via = via;
	who.selector = ra.selector;
	who.note = ra.note;
	if (rc == 0 && n > 0 && ra.stopped)
		rc = store_failed_release(s->st, v, n, &who, &moved, &err);
	else if (rc == 0 && n > 0)
		rc = store_failed_retry(s->st, v, n, &who, &moved, &err);
	if (rc != 0) {
		store_failed_free(v, n);
		return retry_refuse(s, c, req, rep, "retry: %s", err.text);
	}
	list = json_array();
	for (i = 0; i < n; i++)
		if (v[i].retried)
			json_array_append_new(list,
			    json_pack("{s:s, s:s, s:s}", "run_id", v[i].run_id, "phase_id",
			        v[i].phase_id, "from", v[i].state));
	retry_requeue(s, v, n);
	log_info("retry by control request (pid %d uid %d, %s%s%s): %zu phase(s) queued again",
	    (int)c->pid, (int)c->uid, ra.selector, ra.note != NULL ? "; note: " : "",
	    ra.note != NULL ? ra.note : "", moved);
	store_failed_free(v, n);
	rep->body = json_pack("{s:o, s:I, s:i, s:b}", "retried", list, "count", (json_int_t)moved,
	    "supervisor_pid", (int)getpid(), "stopped", ra.stopped);
	return 0;
}
