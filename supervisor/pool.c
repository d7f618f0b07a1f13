/* The worker pool: spawning, the handshake, the heartbeat deadline, the frames a worker
 * sends (its lease's events and result go to lease.c), exits, respawn with backoff, and
 * scaling. */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/util.h"
#include "proto/hand.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BREAKER_LIMIT 5      /* infrastructure failures in a row that trip the breaker */
#define SESSION_KILL_MS 2000 /* for a dead worker's processes to die after SIGKILL */
#define RESPAWN_MAX_MS 10000

/* Free the worker once its last handle has closed. */
static void worker_handle_closed(uv_handle_t *h)
{
	struct worker *w = h->data;
	struct worker **pp;

	assert(w->handles > 0);
	if (--w->handles > 0)
		return;
	worker_unregister(w);
	for (pp = &w->sup->workers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	free(w->bad_channel);
	free(w->refused);
	free(w);
}

/* Mark a live worker to retire (after its phase, if busy) or to stay, counting those that
 * stay. */
static void worker_mark_retire(struct worker *w, bool retire)
{
	if (w->retire == retire || w->state == W_EXITED)
		return;
	w->retire = retire;
	w->sup->staying += retire ? -1 : 1;
}

/* Ask an idle worker to exit, saying why (`why`, or when NULL: the supervisor stops, or
 * the pool shrinks); one still running when the kill grace ends is killed (worker_shutdown).
 * One that has not handed its socket over yet is asked after its hello (worker_idle). */
static void worker_retire(struct worker *w, const char *why)
{
	worker_mark_retire(w, true);
	worker_shutdown(w, why != NULL ? why : w->sup->stopping ? "stop" : "scale");
}

/* Tell the scheduler a worker is free, or retire it if the pool is too big; one that has
 * used up its CPU time limit is replaced by a fresh one. */
static void worker_idle(struct worker *w)
{
	struct sup *s = w->sup;
	char why[200];

	/* A job it holds behind the lease that ended runs now; a worker being stopped takes
	 * nothing more (its exit ends the job it holds, as not started). */
#ifndef AUTOPACK_MUTANT_queued_not_taken
	if (!w->killed && lease_queued_take(w))
		return;
#endif
	w->state = W_IDLE;
	if (w->retire || s->staying > s->target || s->stopping) {
		worker_retire(w, NULL);
		return;
	}
	if (cpulimit_spent(w, why, sizeof why)) {
		struct log_about about = worker_about(w);

		log_about(LOG_WARN, &about, "worker %d (pid %d): %s; replacing it with a fresh one",
		    w->id, (int)w->pid, why);
		worker_retire(w, "the CPU time limit");
		pool_scale(s, s->target, false);
		return;
	}
	if (w->killed)
		return;
	/* A lease opened ahead goes out at once. */
	if (lease_ahead_take(s, w))
		return;
	worker_idle_push(w);
	lease_kick(s);
}

/* The heartbeat timer fired: the worker is hung when it has sent no frame for the heartbeat
 * timeout, unless the silence was the supervisor's own stall (then the deadline is extended
 * by it and the frames read first). A frame does not move the timer (a worker sends several
 * a phase): it notes when it came, and the timer, finding the worker heard since, is armed
 * again for what is left of the timeout after that frame. */
static void worker_hb_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct log_about about = worker_about(w);
	uint64_t span = (uint64_t)w->sup->cfg.heartbeat_timeout_s * 1000;
	uint64_t wait = lag_wait_ms(w->sup, w->heard_ms, w->heard_lag, span);

	if (wait > 0) {
		uv_timer_start(&w->hb_timer, worker_hb_cb, wait, span);
		return;
	}
	log_about(LOG_WARN, &about, "worker %d (pid %d): no frame for %llds; killing it", w->id,
	    (int)w->pid, (long long)w->sup->cfg.heartbeat_timeout_s);
	if (w->lease.end_outcome == OUTCOME_NONE)
		w->lease.end_outcome = OUTCOME_HEARTBEAT_LOST;
	worker_kill(w, SIGKILL);
}

/* Handle one frame from a worker. */
static void worker_msg_cb(struct chan *c, struct proto_msg *m)
{
	struct worker *w = container_of(c, struct worker, chan);
	struct log_about about = worker_about(w);

	w->heard_ms = uv_now(w->sup->loop);
	w->heard_lag = lag_note(w->sup);
	switch (m->type) {
	case PROTO_HELLO:
		if (w->state != W_STARTING || m->u.hello.pid != w->pid) {
			log_about(LOG_ERROR, &about,
			    "worker %d: unexpected hello (pid %lld); killing it", w->id,
			    (long long)m->u.hello.pid);
			worker_kill(w, SIGKILL);
			break;
		}
		cpulimit_read(w);
		if (strcmp(m->u.hello.sw_version, AUTOPACK_VERSION) != 0)
			log_about(LOG_WARN, &about, "worker %d runs autopack %s, supervisor %s",
			    w->id, m->u.hello.sw_version, AUTOPACK_VERSION);
		worker_idle(w);
		break;
	case PROTO_HEARTBEAT:
		if (m->u.heartbeat.attempt_id != 0)
			lease_fenced(
			    w, m->u.heartbeat.db_uuid, m->u.heartbeat.attempt_id, "heartbeat");
		/* A worker waiting for acknowledgements gets the one held for it and its
		 * commit at once. */
		if (m->u.heartbeat.wait_seq >= 0 && w->lease.attempt_id != 0 &&
		    m->u.heartbeat.attempt_id == w->lease.attempt_id)
			writer_acks_asked(w);
		if (m->u.heartbeat.wait_seq >= 0 && w->unacked > 0)
			writer_flush_early(w->sup);
		break;
	case PROTO_EVENT: lease_event(w, &m->u.event); break;
	case PROTO_RESULT:
		if (lease_result(w, &m->u.result)) {
			w->jobs_done++;
			w->sup->crash_streak = 0;
			worker_idle(w);
		}
		break;
	default:
		log_about(LOG_ERROR, &about,
		    "worker %d sent a %s message, which workers may not send; killing it", w->id,
		    proto_type_name(m->type));
		worker_kill(w, SIGKILL);
		break;
	}
	proto_msg_free(m);
}

/* The worker's socket closed: a live process behind it is of no use. */
static void worker_chan_close_cb(struct chan *c, const char *why)
{
	struct worker *w = container_of(c, struct worker, chan);

	/* On a clean EOF the exit callback follows; a process that lingers without its
	 * socket is caught by the heartbeat deadline. */
	if (why != NULL && w->state != W_EXITED) {
		struct log_about about = worker_about(w);

		log_about(LOG_ERROR, &about, "worker %d (pid %d): bad channel: %s; killing it",
		    w->id, (int)w->pid, why);
		if (w->bad_channel == NULL)
			w->bad_channel = xstrdup(why);
		worker_kill(w, SIGKILL);
	}
	worker_handle_closed((uv_handle_t *)&c->pipe);
}

/* Stop watching the socket a worker hands its own over on, and close it. */
static void worker_hand_close(struct worker *w)
{
	if (w->hand_fd < 0)
		return;
	uv_poll_stop(&w->hand);
	close(w->hand_fd);
	w->hand_fd = -1;
	uv_close((uv_handle_t *)&w->hand, worker_handle_closed);
}

/* hand_vet for worker w's socket `sock`. */
static int pool_hand_vet(struct worker *w, int sock, char *why, size_t whylen)
{
#ifdef AUTOPACK_MUTANT_hand_unvetted
	return 0;
#endif
	return hand_vet(w->pid, sock, why, whylen);
}

/* Something came on the socket a worker hands its own over on (proto/hand.h). A socket
 * the worker made itself, which nobody but the supervisor's own tracer traces, gets the
 * keys and carries the frames from then on; anything else is refused, and the worker
 * killed (counted as an infrastructure failure): it gets no key and no job. */
static void worker_hand_cb(uv_poll_t *p, int status, int events)
{
	struct worker *w = p->data;
	struct log_about about = worker_about(w);
	char why[400];
	int sock = -1, rc = status < 0 ? status : hand_take(w->hand_fd, &sock);

	(void)events;
	if (rc == 0)
		return;
	worker_hand_close(w);
	/* A worker that ends before handing anything over: its exit says why. */
	if (rc == -EPIPE)
		return;
	if (rc < 0) {
		snprintf(why, sizeof why, "it sent no socket of its own to hand over (%s)",
		    strerror(-rc));
	} else if (pool_hand_vet(w, sock, why, sizeof why) == 0) {
		if ((rc = secrets_give(w->sup, sock, why, sizeof why)) == 0) {
			if ((rc = uv_pipe_open(&w->chan.pipe, sock)) == 0) {
				sock = -1; /* the channel's now, closed with it */
				if ((rc = chan_start(&w->chan)) == 0)
					return;
			}
			snprintf(why, sizeof why, "cannot answer on the socket it handed over: %s",
			    strerror(-rc));
		}
	}
	if (sock >= 0)
		close(sock);
	log_about(LOG_ERROR, &about, "worker %d (pid %d) gets no key and no job: %s; killing it",
	    w->id, (int)w->pid, why);
	free(w->refused);
	w->refused = xstrdup(why);
	worker_kill(w, SIGKILL);
}

/* Respawn workers up to the target (timer callback after a backoff). */
static void pool_respawn_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	pool_scale(s, s->target, false);
}

/* Replace missing workers: at once after a clean exit, else after a delay that doubles
 * with each failure in a row (worker deaths or failed spawns), 0.1 s up to 10 s. Returns
 * the delay in ms, or -1 when nothing is to be respawned. */
static int64_t pool_respawn_later(struct sup *s)
{
	int fails = s->crash_streak > s->spawn_fails ? s->crash_streak : s->spawn_fails;
	uint64_t delay = 0;

	if (s->stopping || s->crash_loop || s->live >= s->target)
		return -1;
	if (fails > 0)
		for (delay = 100; fails > 1 && delay < RESPAWN_MAX_MS; fails--)
			delay *= 2;
	if (delay > RESPAWN_MAX_MS)
		delay = RESPAWN_MAX_MS;
#ifdef AUTOPACK_MUTANT_respawn_without_backoff
	delay = 0;
#endif
	/* Spawning takes time the loop's cached clock has not seen: count from now. */
	uv_update_time(s->loop);
	uv_timer_start(&s->respawn_timer, pool_respawn_cb, delay, 0);
	return (int64_t)delay;
}

/* Trip the breaker (`why`; `then`: what the operator can do): no dispatch and no respawn
 * until `resume` or `scale`; the leases opened ahead are released; with
 * --exit-when-drained the supervisor stops (exit status 4). */
static void pool_breaker_trip(struct sup *s, const char *why, const char *then)
{
	s->crash_loop = true;
	snprintf(s->breaker, sizeof s->breaker, "%s", why);
	lease_ahead_release(s, OUTCOME_SUPERVISOR_STOPPED, "the breaker paused dispatch");
	log_error(
	    "[BREAKER] %s; dispatch paused, not respawning (crash loop); %s", s->breaker, then);
	if (s->cfg.exit_when_drained) {
		if (s->exit_code == SUP_EXIT_OK)
			s->exit_code = SUP_EXIT_BREAKER;
		lifecycle_stop_for(s, STOP_GRACEFUL, STOP_CAUSE_BREAKER, "breaker: %s", s->breaker);
	}
}

/* Count one infrastructure failure, `what`. The BREAKER_LIMITth in a row with no attempt
 * ended by a worker between them trips the breaker. */
static void pool_infra_failure(struct sup *s, const char *what)
{
	char why[sizeof s->breaker];

	if (++s->crash_streak < BREAKER_LIMIT || s->crash_loop)
		return;
	snprintf(why, sizeof why, "%d infrastructure failures in a row, the last: %s",
	    s->crash_streak, what);
	pool_breaker_trip(s, why, "autopack-ctl resume tries again");
}

void pool_key_refused(struct worker *w, const struct proto_usage *u)
{
	struct sup *s = w->sup;
	char why[sizeof s->breaker];

	if (u->http_status != 401 && u->http_status != 403)
		return;
#ifdef AUTOPACK_MUTANT_key_refusal_ignored
	return;
#endif
	w->lease.key_refused = true;
	if (s->crash_loop)
		return;
	snprintf(why, sizeof why,
	    "the %s provider refused the API key (HTTP %lld in attempt %llu), so every call"
	    " would fail; the key is read from the supervisor's environment at its start: fix"
	    " it and restart",
	    u->provider != NULL ? u->provider : "LLM", (long long)u->http_status,
	    (unsigned long long)w->lease.attempt_id);
	pool_breaker_trip(s, why, "autopack-ctl resume would try the same key");
}

bool pool_breaker_reset(struct sup *s)
{
	bool was = s->crash_loop;

	if (was)
		log_info("breaker reset: dispatching and respawning again");
	s->crash_loop = false;
	s->crash_streak = 0;
	s->spawn_fails = 0;
	s->breaker[0] = '\0';
	return was;
}

/* For procs_session_kill: keep the supervisor's children that are its live workers. */
static bool pool_keep_worker(pid_t pid, void *ctx)
{
	struct sup *s = ctx;

	for (struct worker *w = s->workers; w != NULL; w = w->next)
		if (w->pid == pid && w->state != W_EXITED)
			return true;
	return false;
}

/* Kill what is left of a worker's session (its check command and what that started) and
 * every other child of the supervisor that is not a live worker (a process that left the
 * session with setsid, orphaned), and wait until none of it runs: nothing writes into the
 * workspace once the worker's phase is requeued or the supervisor has exited. The orphans
 * were the supervisor's children (a child subreaper) and are reaped here. */
static void worker_session_kill(struct worker *w, bool starting)
{
	int n = procs_session_kill(w->pid, 0, pool_keep_worker, w->sup, SESSION_KILL_MS);

	if (n < 0)
		log_error("worker %d (pid %d): processes of its session are still alive %d ms"
		          " after SIGKILL",
		    w->id, (int)w->pid, SESSION_KILL_MS);
	else if (n > 0 && starting)
		log_warn("worker %d (pid %d): killed %d process(es) left in its session or "
		         "orphaned, started before its hello (a --worker wrapper's)",
		    w->id, (int)w->pid, n);
	else if (n > 0)
		log_warn("worker %d (pid %d): killed %d process(es) its check command left", w->id,
		    (int)w->pid, n);
}

/* A worker process ended: account for its lease and replace it if still wanted. A
 * worker that died on its own (a signal the supervisor did not send, an exit status it
 * did not ask for) or stopped answering is an infrastructure failure: its attempt is
 * requeued (lease_abort) and the failure counts toward the breaker. One the supervisor
 * stopped for its phase (deadline, cancel, scale) is not. */
static void worker_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct worker *w = container_of(p, struct worker, proc);
	struct log_about about = worker_about(w);
	struct sup *s = w->sup;
	bool crashed = (!w->killed && !w->retire && (status != 0 || sig != 0)) || w->refused, hung;
	bool starting = w->state == W_STARTING;
	char what[200], cause[160];

	cpulimit_signal_cause(w, sig, cause, sizeof cause);
	if (sig != 0 || status != 0)
		log_about(LOG_WARN, &about, "worker %d (pid %d) exited: status %lld, signal %d%s",
		    w->id, (int)w->pid, (long long)status, sig, cause);
	if (!w->retire)
		s->staying--;
	w->state = W_EXITED;
	worker_idle_remove(w);
	lease_worker_gone(w);
	s->live--;
	uv_timer_stop(&w->hb_timer);
	uv_timer_stop(&w->phase_timer);
	uv_timer_stop(&w->term_timer);
	worker_hand_close(w);
	worker_session_kill(w, starting);
	hung = w->lease.end_outcome == OUTCOME_HEARTBEAT_LOST;
	if (w->lease.attempt_id != 0)
		crashed = lease_abort(w, status, sig) == OUTCOME_WORKER_CRASHED || crashed;
#ifndef AUTOPACK_MUTANT_queued_left_open
	if (w->queued.attempt_id != 0) {
		snprintf(what, sizeof what, "its worker pid %d ended: status %lld, signal %d",
		    (int)w->pid, (long long)status, sig);
		lease_queued_end(w, what);
	}
#endif
	if (crashed || hung) {
		s->n.worker_crashes += crashed;
		if (hung)
			snprintf(what, sizeof what, "worker %d (pid %d) stopped answering", w->id,
			    (int)w->pid);
		else if (w->refused != NULL)
			snprintf(what, sizeof what, "worker %d (pid %d) refused: %s", w->id,
			    (int)w->pid, w->refused);
		else
			snprintf(what, sizeof what,
			    "worker %d (pid %d) exited: status %lld, signal %d%.120s", w->id,
			    (int)w->pid, (long long)status, sig, cause);
		pool_infra_failure(s, what);
	}
	uv_close((uv_handle_t *)&w->proc, worker_handle_closed);
	uv_close((uv_handle_t *)&w->hb_timer, worker_handle_closed);
	uv_close((uv_handle_t *)&w->phase_timer, worker_handle_closed);
	uv_close((uv_handle_t *)&w->term_timer, worker_handle_closed);
	chan_close(&w->chan, NULL);
	pool_respawn_later(s);
	lifecycle_check_done(s);
}

/* A worker could not be started (`why`): count it, try again after a backoff. With no
 * worker running it is an infrastructure failure too. */
static void pool_spawn_failed(struct sup *s, const char *why)
{
	char what[200];
	int64_t delay;

	s->n.spawn_failures++;
	s->spawn_fails++;
	snprintf(what, sizeof what, "cannot start worker %s: %s", s->worker_path, why);
	if (s->live == 0)
		pool_infra_failure(s, what);
	delay = pool_respawn_later(s);
	if (delay >= 0)
		log_error("%s (%d of %d workers running; trying again in %.1f s)", what, s->live,
		    s->target, (double)delay / 1000.0);
	else
		log_error("%s (%d of %d workers running)", what, s->live, s->target);
}

/* The most arguments a worker's command line holds, its NULL included. */
#define POOL_ARGS_MAX 22

/* Fill the command line and descriptors of a worker: the socket's end `sock` as its fd 3,
 * the one it hands its own socket over on, and the limits of its checks (their numbers
 * written in `nums`). */
static void pool_spawn_options(struct sup *s, int sock, char *args[POOL_ARGS_MAX], char nums[3][24],
    uv_stdio_container_t stdio[4], uv_process_options_t *o)
{
	static const char *const limit_flags[3] = { "--check-max-processes",
		"--check-max-memory-mib", "--check-tmp-size-mib" };
	int n = 0;

	args[n++] = s->worker_path;
	args[n++] = (char *)"--handoff-fd";
	args[n++] = (char *)"3";
	if (s->cfg.log_file != NULL) {
		args[n++] = (char *)"--log-file";
		args[n++] = (char *)s->cfg.log_file;
	}
	args[n++] = (char *)"--log-level";
	args[n++] = (char *)log_level_name(log_min_level());
	args[n++] = (char *)"--log-format";
	args[n++] = (char *)log_format_name(log_line_format());
	if (s->control_path != NULL) {
		args[n++] = (char *)"--control-socket";
		args[n++] = s->control_path;
	}
	if (s->cfg.check_network_host) {
		args[n++] = (char *)"--check-network";
		args[n++] = (char *)"host";
	}
	if (s->cfg.check_home_shown) {
		args[n++] = (char *)"--check-home";
		args[n++] = (char *)"read-only";
	}
	for (int i = 0; i < 3; i++) {
		if (s->cfg.check_limits[i] < 0)
			continue;
		snprintf(nums[i], 24, "%lld", (long long)s->cfg.check_limits[i]);
		args[n++] = (char *)limit_flags[i];
		args[n++] = nums[i];
	}
	args[n] = NULL;
	assert(n < POOL_ARGS_MAX);
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = 1;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = 2;
	stdio[3].flags = UV_INHERIT_FD;
	stdio[3].data.fd = sock;
	*o = (uv_process_options_t){ .file = s->worker_path,
		.args = args,
		.stdio = stdio,
		.stdio_count = 4,
		.flags = UV_PROCESS_DETACHED,
		.exit_cb = worker_exit_cb };
}

/* Take a started worker into the pool: the socket `sock` it hands its own over on
 * watched, its channel (opened on that one), its timers, the list. */
static void pool_adopt(struct sup *s, struct worker *w, int sock)
{
	struct log_about about;

	w->id = ++s->next_worker_id;
	w->pid = w->proc.pid;
	worker_register(w);
	chan_init(s->loop, &w->chan, PROTO_FRAME_MAX_DEFAULT, worker_msg_cb, worker_chan_close_cb);
	w->chan.pipe.data = w;
	uv_poll_init(s->loop, &w->hand, sock);
	w->hand.data = w;
	w->hand_fd = sock;
	uv_poll_start(&w->hand, UV_READABLE, worker_hand_cb);
	uv_timer_init(s->loop, &w->hb_timer);
	uv_timer_init(s->loop, &w->phase_timer);
	uv_timer_init(s->loop, &w->term_timer);
	w->hb_timer.data = w->phase_timer.data = w->term_timer.data = w;
	w->handles = 6;
	w->heard_ms = uv_now(s->loop);
	w->heard_lag = lag_note(s);
	uv_timer_start(&w->hb_timer, worker_hb_cb, (uint64_t)s->cfg.heartbeat_timeout_s * 1000,
	    (uint64_t)s->cfg.heartbeat_timeout_s * 1000);
	w->next = s->workers;
	s->workers = w;
	s->live++;
	s->staying++;
	s->spawn_fails = 0;
	about = worker_about(w);
	log_about(LOG_INFO, &about, "worker %d started (pid %d)", w->id, (int)w->pid);
}

/* Start one worker process in a session of its own (no terminal's or service manager's
 * signal reaches it), with one end of a fresh socketpair as its fd 3, on which it hands
 * over the socket its keys and frames travel on once it is not dumpable (proto/hand.h):
 * it inherits no secret. Returns 0, or -1 when it could not be started (counted, logged,
 * and tried again later). */
static int pool_spawn(struct sup *s)
{
	struct worker *w;
	uv_process_options_t o;
	uv_stdio_container_t stdio[4];
	char *args[POOL_ARGS_MAX], nums[3][24];
	int fds[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
		pool_spawn_failed(s, strerror(errno));
		return -1;
	}
	w = xcalloc(1, sizeof *w);
	w->sup = s;
	w->state = W_STARTING;
	w->hand_fd = -1;
	w->born_ms = clock_mono_ms();
	w->cpu_soft = w->cpu_hard = RLIM_INFINITY;
	pool_spawn_options(s, fds[1], args, nums, stdio, &o);
	rc = uv_spawn(s->loop, &w->proc, &o);
	close(fds[1]);
	w->proc.data = w;
	if (rc != 0) {
		close(fds[0]);
		/* The handle is released in its close callback, not before. */
		w->handles = 1;
		uv_close((uv_handle_t *)&w->proc, worker_handle_closed);
		pool_spawn_failed(s, uv_strerror(rc));
		return -1;
	}
	pool_adopt(s, w, fds[0]);
	return 0;
}

/* Initialise the respawn timer and start the workers. The supervisor becomes a child
 * subreaper: what a dead worker's check command started is reparented to it, so those
 * processes stay its own (their ids not reused) until worker_session_kill reaps them. */
void pool_init(struct sup *s)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		log_warn("cannot become a child subreaper: %s", strerror(errno));
	uv_timer_init(s->loop, &s->respawn_timer);
	s->respawn_timer.data = s;
	s->target = s->cfg.workers;
	pool_scale(s, s->target, false);
}

/* Retire or start workers to reach target. */
void pool_scale(struct sup *s, int target, bool force)
{
	struct worker *w;
	int active = s->staying;

	s->target = target;
	if (target == 0)
		lease_ahead_release(
		    s, OUTCOME_SUPERVISOR_STOPPED, "the pool was scaled to no worker");
	/* Grow: busy workers an earlier scale-down was to retire after their phase stay. */
	for (w = s->workers; w != NULL && active < target && !s->stopping; w = w->next) {
		if (w->state == W_BUSY && w->retire && !w->killed) {
			worker_mark_retire(w, false);
			active++;
		}
	}
	/* Shrink: idle workers first, then busy ones, which retire after their phase. */
	for (w = s->workers; w != NULL && active > target; w = w->next) {
		if (w->state == W_IDLE && !w->retire) {
			worker_retire(w, NULL);
			active--;
		}
	}
	for (w = s->workers; w != NULL && active > target; w = w->next) {
		if (w->state != W_EXITED && !w->retire) {
			worker_mark_retire(w, true);
			active--;
		}
	}
	/* Forced: every busy worker that is to retire goes now (also one an earlier scale-down
	 * let finish its phase), its phase requeued. */
	for (w = s->workers; w != NULL && force; w = w->next) {
		if (w->state == W_BUSY && w->retire && !w->killed) {
			w->lease.end_outcome = OUTCOME_SCALED_DOWN;
			worker_kill(w, SIGTERM);
		}
	}
	if (s->stopping || s->crash_loop)
		return;
	while (active < target && pool_spawn(s) == 0)
		active++;
}

/* Retire or kill the workers for a stop. */
void pool_stop(struct sup *s, enum stop_level level)
{
	struct worker *w;

	for (w = s->workers; w != NULL; w = w->next) {
		if (w->state == W_EXITED)
			continue;
		if (level == STOP_NOW)
			worker_kill(w, SIGKILL);
		else if (w->state == W_IDLE || w->state == W_STARTING)
			worker_retire(w, NULL);
		else
			worker_mark_retire(w, true);
	}
}
