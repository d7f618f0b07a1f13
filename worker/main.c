/* autopack-worker: started by autopack-supervisor with one end of a socketpair. Runs one
 * phase at a time: reads a job, runs it (worker/phase.h), streams its events, sends the
 * result. Never opens the database. Dies with its supervisor (PR_SET_PDEATHSIG, and EOF on
 * the socket), taking its check command with it; takes SIGTERM and SIGINT only from the
 * supervisor; holds its provider keys in memory only (worker/keys.h) and cannot be read
 * through /proc or a core dump (PR_SET_DUMPABLE 0). */
#include "common/log.h"
#include "common/util.h"
#include "proto/wire.h"
#include "worker/check.h"
#include "worker/keys.h"
#include "worker/phase.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000

struct wk {
	int fd;
	struct proto_reader rd;
	const struct proto_job *job; /* the job being run, or NULL */
	uint64_t seq;                /* last event seq sent in this job */
	uint64_t acked;              /* every event of this job up to here is committed */
	uint64_t last_beat;
	bool shutdown;
};

static const char usage_text[] =
    "usage: autopack-worker --fd N [--keys-fd K] [--log-file PATH]\n"
    "\n"
    "Runs phases for autopack-supervisor over the socket on file descriptor N, with the\n"
    "provider keys read from descriptor K (NAME=value entries separated by NUL bytes) or\n"
    "taken from its environment. It is started by the supervisor; running it by hand is\n"
    "only useful for debugging.\n";

/* The process that started this worker: the only one whose SIGTERM or SIGINT it obeys. */
static pid_t wk_supervisor;

/* Write a decimal number to stderr (async-signal-safe). */
static void wk_write_num(long v)
{
	char buf[24];
	int i = (int)sizeof buf;

	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 && i > 0);
	(void)!write(2, buf + i, sizeof buf - (size_t)i);
}

/* SIGTERM/SIGINT from the supervisor, or with the supervisor gone (PR_SET_PDEATHSIG):
 * take the running check command down too, then die of the signal. From anyone else (a
 * terminal's process group, a service manager signalling every process): ignored, since
 * only the supervisor decides what happens to an attempt. */
static void wk_term(int sig, siginfo_t *info, void *uctx)
{
	static const char ignored[] = "autopack-worker: ignoring a stop signal from pid ";
	static const char why[] = " (workers stop when their supervisor says so)\n";

	(void)uctx;
	if (info->si_code <= 0 && info->si_pid != wk_supervisor && getppid() == wk_supervisor) {
		(void)!write(2, ignored, sizeof ignored - 1);
		wk_write_num((long)info->si_pid);
		(void)!write(2, why, sizeof why - 1);
		return;
	}
	check_kill_running();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Leave because the supervisor is gone or said so: the check command goes first. */
__attribute__((noreturn)) static void wk_quit(void)
{
	check_kill_running();
	exit(0);
}

/* Write the whole buffer; the supervisor being gone ends the worker. */
static void wk_write(struct wk *w, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(w->fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			log_info("supervisor went away (%s); exiting", strerror(errno));
			wk_quit();
		}
		p += k;
		n -= (size_t)k;
	}
}

/* Encode and send one message. */
static void wk_send(struct wk *w, const struct proto_msg *m)
{
	struct proto_buf b;

	proto_buf_init(&b);
	if (proto_pack(m, &b) != 0)
		log_fatal(1, "cannot encode a %s message", proto_type_name(m->type));
	wk_write(w, b.data, b.len);
	proto_buf_free(&b);
}

/* Send a heartbeat naming the current attempt (or none). */
static void wk_beat(struct wk *w)
{
	struct proto_msg m = { .type = PROTO_HEARTBEAT };

	m.u.heartbeat.db_uuid = w->job != NULL ? w->job->db_uuid : (char *)"";
	m.u.heartbeat.attempt_id = w->job != NULL ? w->job->attempt_id : 0;
	wk_send(w, &m);
	w->last_beat = clock_mono_ms();
	/* A rotated --log-file is followed within a heartbeat. */
	log_follow();
}

/* Read what the socket has (waiting up to timeout_ms); returns false on EOF. */
static bool wk_fill(struct wk *w, int timeout_ms)
{
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
	struct proto_err err;
	uint8_t buf[65536];
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return true;
	n = read(w->fd, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	if (proto_reader_feed(&w->rd, buf, (size_t)n, &err) != 0)
		log_fatal(1, "bad frame from the supervisor: %s", err.text);
	return true;
}

/* Take messages that may arrive while a job runs: acks, cancel, shutdown. */
static void wk_drain_async(struct wk *w)
{
	struct proto_err err;
	struct proto_msg m;
	int rc;

	while ((rc = proto_reader_next(&w->rd, &m, &err)) == 1) {
		switch (m.type) {
		case PROTO_ACK:
			if (w->job != NULL && m.u.ack.attempt_id == w->job->attempt_id &&
			    m.u.ack.seq > w->acked)
				w->acked = m.u.ack.seq;
			break;
		case PROTO_SHUTDOWN: w->shutdown = true; break;
		case PROTO_CANCEL:
			if (w->job != NULL && m.u.cancel.attempt_id == w->job->attempt_id) {
				log_info("attempt %llu cancelled by the supervisor",
				    (unsigned long long)m.u.cancel.attempt_id);
				wk_quit();
			}
			break;
		default:
			log_fatal(1, "the supervisor sent a %s message while a job runs",
			    proto_type_name(m.type));
		}
		proto_msg_free(&m);
	}
	if (rc < 0)
		log_fatal(1, "bad frame from the supervisor: %s", err.text);
}

/* Wait until the supervisor acknowledges event `seq` of the job (it is committed),
 * heartbeating meanwhile. Returns 0, or -1 when the attempt's deadline passes first. */
static int wk_wait_ack(struct wk *w, uint64_t seq)
{
	while (w->acked < seq) {
		if (w->job->deadline_ms > 0 && clock_wall_ms() >= w->job->deadline_ms)
			return -1;
		if (clock_mono_ms() - w->last_beat >= HEARTBEAT_MS)
			wk_beat(w);
		if (!wk_fill(w, 100)) {
			log_info("supervisor went away during attempt %llu; exiting",
			    (unsigned long long)w->job->attempt_id);
			wk_quit();
		}
		wk_drain_async(w);
	}
	return 0;
}

/* phase hook: stamp an event with the database, attempt and next seq, and send it. An
 * announced LLM call is sent only once the supervisor has committed the announcement, so
 * its cost is on record whatever happens next. */
static int hook_emit(void *ctx, struct proto_event *ev)
{
	struct wk *w = ctx;
	struct proto_msg m = { .type = PROTO_EVENT };

	m.u.event = *ev;
	m.u.event.db_uuid = w->job->db_uuid;
	m.u.event.attempt_id = w->job->attempt_id;
	m.u.event.seq = ++w->seq;
	wk_send(w, &m);
	if (ev->kind == PROTO_EV_LLM_REQUEST)
		return wk_wait_ack(w, m.u.event.seq);
	return 0;
}

/* phase hook: keep the supervisor informed and notice it going away. */
static void hook_heartbeat(void *ctx)
{
	struct wk *w = ctx;

	if (clock_mono_ms() - w->last_beat >= HEARTBEAT_MS)
		wk_beat(w);
	if (!wk_fill(w, 0)) {
		log_info("supervisor went away during attempt %llu; exiting",
		    (unsigned long long)w->job->attempt_id);
		wk_quit();
	}
	wk_drain_async(w);
}

/* phase hook: is the supervisor still there (its socket open, still our parent)? */
static bool hook_supervisor_present(void *ctx)
{
	struct wk *w = ctx;
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN };

	if (getppid() != wk_supervisor ||
	    (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)) != 0)) {
		log_info("supervisor gone before attempt %llu wrote its deliverables; exiting",
		    (unsigned long long)w->job->attempt_id);
		wk_quit();
	}
	return true;
}

/* Guard the process: not dumpable (no core file, /proc/<pid>/mem and environ closed to
 * other processes of the user), killed with its supervisor, stop signals filtered. Exits
 * if the supervisor is already gone. */
static void wk_guard(void)
{
	struct sigaction sa = { 0 };

	wk_supervisor = getppid();
	prctl(PR_SET_DUMPABLE, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sa.sa_sigaction = wk_term;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (getppid() != wk_supervisor)
		exit(0);
}

/* Run one job and send its result after its last event. */
static void wk_run_job(struct wk *w, const struct proto_job *job)
{
	struct phase_hooks hooks = { .ctx = w,
		.emit = hook_emit,
		.heartbeat = hook_heartbeat,
		.supervisor_present = hook_supervisor_present };
	struct proto_msg m = { .type = PROTO_RESULT };
	struct proto_result *r = &m.u.result;

	w->job = job;
	w->seq = 0;
	w->acked = 0;
	phase_run(job, &hooks, r);
	r->db_uuid = xstrdup(job->db_uuid);
	r->attempt_id = job->attempt_id;
	r->final_seq = w->seq;
	wk_send(w, &m);
	proto_msg_free(&m);
	w->job = NULL;
}

int main(int argc, char **argv)
{
	struct wk w = { .fd = -1 };
	struct proto_msg m;
	struct proto_err err;
	char kerr[160];
	int i, rc = 0, keys_fd = -1;

	wk_guard();
	log_init("autopack-worker", LOG_INFO);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc) {
			w.fd = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--keys-fd") == 0 && i + 1 < argc) {
			keys_fd = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--log-file") == 0 && i + 1 < argc) {
			if (log_open(argv[++i]) != 0)
				log_fatal(1, "cannot open log file %s", argv[i]);
		} else {
			fprintf(stderr, "autopack-worker: unexpected argument \"%s\"\n%s", argv[i],
			    usage_text);
			return 2;
		}
	}
	if (w.fd < 0) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (keys_load(keys_fd, kerr, sizeof kerr) != 0)
		log_fatal(1, "%s", kerr);
	proto_reader_init(&w.rd, PROTO_FRAME_MAX_DEFAULT);
	m = (struct proto_msg){ .type = PROTO_HELLO };
	m.u.hello.pid = getpid();
	m.u.hello.sw_version = (char *)AUTOPACK_VERSION;
	wk_send(&w, &m);
	wk_beat(&w);
	while (!w.shutdown) {
		int left = HEARTBEAT_MS - (int)(clock_mono_ms() - w.last_beat);

		if (left <= 0) {
			wk_beat(&w);
			left = HEARTBEAT_MS;
		}
		if (!wk_fill(&w, left))
			break;
		while (!w.shutdown && (rc = proto_reader_next(&w.rd, &m, &err)) == 1) {
			if (m.type == PROTO_JOB)
				wk_run_job(&w, &m.u.job);
			else if (m.type == PROTO_SHUTDOWN)
				w.shutdown = true;
			else if (m.type != PROTO_ACK && m.type != PROTO_CANCEL)
				log_fatal(1,
				    "the supervisor sent a %s message, which workers do not"
				    " take",
				    proto_type_name(m.type));
			proto_msg_free(&m);
		}
		if (rc < 0)
			log_fatal(1, "bad frame from the supervisor: %s", err.text);
	}
	proto_reader_free(&w.rd);
	return 0;
}
