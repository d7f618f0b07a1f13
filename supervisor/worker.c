/* One worker process as the other files see it: found by id, offered to the dispatch while
 * idle, signalled, sent a frame. */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Find a live worker by id. */
struct worker *worker_find(struct sup *s, int id)
{
	struct worker *w;

	if (id <= 0 || (size_t)id >= s->by_id_cap || (w = s->by_id[id]) == NULL)
		return NULL;
	return w->state != W_EXITED ? w : NULL;
}

void worker_register(struct worker *w)
{
	struct sup *s = w->sup;

	assert(w->id > 0);
	if ((size_t)w->id >= s->by_id_cap) {
		size_t cap = s->by_id_cap != 0 ? s->by_id_cap : 64;

		while (cap <= (size_t)w->id)
			cap *= 2;
		s->by_id = xrealloc(s->by_id, cap * sizeof *s->by_id);
		memset(s->by_id + s->by_id_cap, 0, (cap - s->by_id_cap) * sizeof *s->by_id);
		s->by_id_cap = cap;
	}
	s->by_id[w->id] = w;
}

void worker_unregister(struct worker *w)
{
	struct sup *s = w->sup;

	worker_idle_remove(w);
	if (w->id > 0 && (size_t)w->id < s->by_id_cap && s->by_id[w->id] == w)
		s->by_id[w->id] = NULL;
}

void worker_idle_push(struct worker *w)
{
	struct sup *s = w->sup;

	if (w->idle_listed || w->state != W_IDLE || w->retire)
		return;
	w->idle_listed = true;
	w->idle_prev = NULL;
	w->idle_next = s->idle;
	if (s->idle != NULL)
		s->idle->idle_prev = w;
	s->idle = w;
}

void worker_idle_remove(struct worker *w)
{
	struct sup *s = w->sup;

	if (!w->idle_listed)
		return;
	if (w->idle_prev != NULL)
		w->idle_prev->idle_next = w->idle_next;
	else
		s->idle = w->idle_next;
	if (w->idle_next != NULL)
		w->idle_next->idle_prev = w->idle_prev;
	w->idle_next = w->idle_prev = NULL;
	w->idle_listed = false;
}

struct worker *worker_idle_pop(struct sup *s)
{
	struct worker *w;

	while ((w = s->idle) != NULL) {
		worker_idle_remove(w);
		/* Marked to retire, or no longer idle, since it was offered. */
		if (w->state == W_IDLE && !w->retire)
			return w;
	}
	return NULL;
}

/* The kill grace ended with the worker still running (after a SIGTERM, or after it was
 * asked to exit when `w->grace_shutdown`: a worker still starting, which has not handed
 * its socket over, is asked only once it does): SIGKILL it, saying which. */
static void worker_grace_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct log_about about = worker_about(w);

#ifdef AUTOPACK_MUTANT_deadline_never_kills
	if (!w->grace_shutdown)
		return;
#endif
#ifdef AUTOPACK_MUTANT_shutdown_never_kills
	if (w->grace_shutdown)
		return;
#endif
	if (w->state == W_EXITED)
		return;
	if (w->state == W_STARTING && w->grace_shutdown)
		log_about(LOG_WARN, &about,
		    "worker %d (pid %d): still starting %.1f s after it was to exit: it has not "
		    "%s, so it could not be told; it holds no phase: killing it (SIGKILL)",
		    w->id, (int)w->pid, (double)w->sup->cfg.kill_grace_ms / 1000.0,
		    w->hand_fd >= 0 ? "handed its socket over" : "read its shutdown");
	else
		log_about(LOG_WARN, &about,
		    "worker %d (pid %d): still running %.1f s after %s; killing it (SIGKILL)",
		    w->id, (int)w->pid, (double)w->sup->cfg.kill_grace_ms / 1000.0,
		    w->grace_shutdown ? "it was asked to exit (shutdown)" : "SIGTERM");
	worker_kill(w, SIGKILL);
}

/* Start the worker's kill grace unless one runs already; `shutdown` says why it runs. */
static void worker_grace_start(struct worker *w, bool shutdown)
{
	if (uv_is_active((uv_handle_t *)&w->term_timer))
		return;
	w->grace_shutdown = shutdown;
	uv_timer_start(&w->term_timer, worker_grace_cb, (uint64_t)w->sup->cfg.kill_grace_ms, 0);
}

/* Send a live worker `shutdown` (once it has handed its socket over) and start its kill
 * grace, unless one runs already. */
void worker_shutdown(struct worker *w, const char *why)
{
	struct proto_msg m = { .type = PROTO_SHUTDOWN };

	if (w->state == W_EXITED || w->pid <= 0)
		return;
	m.u.shutdown.reason = (char *)why;
	if (w->hand_fd < 0)
		worker_send(w, &m, NULL);
	worker_grace_start(w, true);
}

/* Signal a live worker, remembering that we did; a SIGTERM starts its kill grace. */
void worker_kill(struct worker *w, int sig)
{
	if (w->state == W_EXITED || w->pid <= 0)
		return;
	w->killed = true;
	uv_process_kill(&w->proc, sig);
	if (sig == SIGTERM)
		worker_grace_start(w, false);
}

/* Send a message; a worker that cannot be written to is killed. */
int worker_send(struct worker *w, const struct proto_msg *m, struct proto_err *err)
{
	struct sup *s = w->sup;
	int rc;

	if (s->corking && !w->chan.corked) {
		chan_cork(&w->chan);
		if (s->ncorked == s->corked_cap) {
			s->corked_cap = s->corked_cap != 0 ? s->corked_cap * 2 : 64;
			s->corked = xrealloc(s->corked, s->corked_cap * sizeof *s->corked);
		}
		s->corked[s->ncorked++] = w->id;
	}
	rc = chan_send(&w->chan, m, err);

	/* An encoding error leaves the channel open; a failed channel means the worker
	 * cannot be talked to. */
	if (rc != 0 && w->chan.closing)
		worker_kill(w, SIGKILL);
	return rc;
}

void worker_cork_all(struct sup *s, bool on)
{
	struct worker *w;

	s->corking = on;
	if (on)
		return;
	for (size_t i = 0; i < s->ncorked; i++) {
		if ((w = worker_find(s, s->corked[i])) == NULL)
			continue;
		if (chan_uncork(&w->chan) != 0 && w->chan.closing)
			worker_kill(w, SIGKILL);
	}
	s->ncorked = 0;
}

/* Free the worker table and the corked list once every worker has been closed. */
void worker_table_free(struct sup *s)
{
	free(s->by_id);
	free(s->corked);
	s->by_id = NULL;
	s->corked = NULL;
	s->by_id_cap = s->ncorked = s->corked_cap = 0;
}

/* Name a worker's state for status. */
const char *worker_state_name(const struct worker *w)
{
	static const char *const names[] = { "starting", "idle", "busy", "exited" };

	return w->retire && w->state != W_EXITED ? "retiring" : names[w->state];
}

/* What a log line about w is about. */
struct log_about worker_about(const struct worker *w)
{
	struct log_about a = { .session = w->sup->session_id, .worker = w->id };

	if (w->lease.attempt_id != 0 && w->lease.run != NULL && w->lease.phase != NULL) {
		a.run = w->lease.run->run_id;
		a.phase = w->lease.phase->phase_id;
		a.attempt = w->lease.attempt_id;
	}
	return a;
}
