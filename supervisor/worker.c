/* One worker process as the other files see it: found by id, signalled, sent a frame. */
#include "supervisor/sup.h"
#include "common/log.h"

#include <signal.h>

/* Find a live worker by id. */
struct worker *worker_find(struct sup *s, int id)
{
	struct worker *w;

	for (w = s->workers; w != NULL; w = w->next)
		if (w->id == id && w->state != W_EXITED)
			return w;
	return NULL;
}

/* Signal a live worker, remembering that we did. */
void worker_kill(struct worker *w, int sig)
{
	if (w->state == W_EXITED || w->pid <= 0)
		return;
	w->killed = true;
	uv_process_kill(&w->proc, sig);
}

/* Send a message; a worker that cannot be written to is killed. */
int worker_send(struct worker *w, const struct proto_msg *m, struct proto_err *err)
{
	int rc = chan_send(&w->chan, m, err);

	/* An encoding error leaves the channel open; a failed channel means the worker
	 * cannot be talked to. */
	if (rc != 0 && w->chan.closing)
		worker_kill(w, SIGKILL);
	return rc;
}

/* Name a worker's state for status. */
const char *worker_state_name(const struct worker *w)
{
	static const char *const names[] = { "starting", "idle", "busy", "exited" };

	return w->retire && w->state != W_EXITED ? "retiring" : names[w->state];
}
