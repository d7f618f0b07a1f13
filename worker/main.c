/* autopack-worker: started by autopack-supervisor with one end of a socketpair. Runs one
 * phase at a time: reads a job, runs it (worker/phase.h), streams its events, keeping each
 * one until the supervisor acknowledges it (worker/outbox.h), and sends the result after
 * them. A job sent while one runs is held and run next (docs/protocol.md).
 * Never opens the database. Dies with its supervisor (PR_SET_PDEATHSIG, and EOF on
 * the socket), taking its check command with it; takes SIGTERM and SIGINT only from the
 * supervisor; holds its provider keys in memory only (worker/keys.h) and cannot be read
 * through /proc or a core dump (PR_SET_DUMPABLE 0). */
#include "common/stacklimit.h"
#include "common/umaskcheck.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/util.h"
#include "common/numarg.h"
#include "common/helpjson.h"
#include "common/usage.h"
#include "proto/fdio.h"
#include "proto/hand.h"
#include "worker/check.h"
#include "worker/check_limits.h"
#include "worker/check_init.h"
#include "worker/keys.h"
#include "worker/outbox.h"
#include "worker/phase.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000
/* Jobs held not started: the one queued behind the job running (--worker-jobs 2 of the
 * supervisor) and, once that one is about to start, the one sent behind it. */
#define HELD_MAX 2

struct wk {
	struct proto_fd io;
	struct outbox out;               /* the job's events not yet acknowledged */
	const struct proto_job *job;     /* the job being run, or NULL */
	struct proto_msg held[HELD_MAX]; /* jobs sent and not started, in order */
	int64_t held_left_ms[HELD_MAX];  /* the time each had to its deadline when it came */
	size_t nheld;
	bool ann; /* try 1 of the job's first LLM call is on record already */
	uint64_t last_beat;
	bool shutdown;
};

static const char usage_text[] =
    "usage: autopack-worker --handoff-fd H | --fd N [--keys-fd K]\n"
    "                       [--event-window N] [--log-file PATH] [--log-level L]\n"
    "                       [--log-format F] [--check-network isolated|host]\n"
    "                       [--check-home hidden|read-only]\n"
    "                       [--check-max-processes N] [--check-max-memory-mib M]\n"
    "                       [--check-tmp-size-mib M] [--control-socket PATH]\n"
    "       autopack-worker --version | --help [--json]\n"
    "\n"
    "Runs phases for autopack-supervisor. The supervisor starts it with --handoff-fd H:\n"
    "once not dumpable, the worker hands it, on the socket H, a socket it has made, on\n"
    "which it gets its provider keys and the frames. By hand (for debugging), --fd N is\n"
    "the socket the frames travel on, with the keys read from descriptor K (NAME=value\n"
    "entries separated by NUL bytes) or taken from its environment.\n"
    "\n"
    "  --event-window N   events sent and not yet acknowledged at most (default 64, up\n"
    "                     to 4096); when the window is full the worker waits for acks\n"
    "  --log-file PATH    append log lines here instead of stderr\n"
    "  --log-level L      error, warn, info (default) or debug\n"
    "  --log-format F     text (default) or json: one JSON object a line\n"
    "  --check-network N  isolated (default): check commands get a network of their own\n"
    "                     with only a loopback interface; host: they share the machine's\n"
    "  --check-home H     hidden (default): check commands find $HOME empty and read-only;\n"
    "                     read-only: they see the machine's, read-only\n"
    "  --check-max-processes N  processes and threads a check command runs at once\n"
    "                     (default 1024; 0: no limit)\n"
    "  --check-max-memory-mib M  memory each process of a check may allocate\n"
    "                     (RLIMIT_DATA; default a quarter of the machine's; 0: no limit)\n"
    "  --check-tmp-size-mib M  size of a check's private /tmp, /var/tmp and /dev/shm,\n"
    "                     each (default a sixteenth of the machine's memory; 0: the\n"
    "                     kernel's, half of it)\n"
    "  --control-socket PATH  the supervisor's control socket, which check commands can\n"
    "                     neither connect to nor remove\n"
    "  --json             with --help or --version: print it as one JSON object\n";

/* The process that started this worker: the only one whose SIGTERM or SIGINT it obeys. */
static pid_t wk_supervisor;

/* Say on stderr, in one write (workers share the file: a line must not interleave with
 * another's), that a stop signal from `pid` is ignored (async-signal-safe). */
static void wk_say_ignored(long pid)
{
	static const char head[] = "autopack-worker: ignoring a stop signal from pid ";
	static const char tail[] = " (workers stop when their supervisor says so)\n";
	char line[sizeof head + 24 + sizeof tail], num[24];
	size_t n = 0, k = sizeof num;

	do {
		num[--k] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid > 0 && k > 0);
	memcpy(line, head, sizeof head - 1);
	n = sizeof head - 1;
	memcpy(line + n, num + k, sizeof num - k);
	n += sizeof num - k;
	memcpy(line + n, tail, sizeof tail - 1);
	n += sizeof tail - 1;
	(void)!write(2, line, n);
}

/* SIGTERM/SIGINT from the supervisor, or with the supervisor gone (PR_SET_PDEATHSIG):
 * take the running check command down too, then die of the signal. From anyone else (a
 * terminal's process group, a service manager signalling every process): ignored, since
 * only the supervisor decides what happens to an attempt. */
static void wk_term(int sig, siginfo_t *info, void *uctx)
{
	(void)uctx;
	if (info->si_code <= 0 && info->si_pid != wk_supervisor && getppid() == wk_supervisor) {
		check_note_stop_signal();
		wk_say_ignored((long)info->si_pid);
		return;
	}
	check_kill_running();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* SIGHUP: ignored, but noted when another process than the supervisor sent it (a service
 * manager signalling every process), for the check it may have stopped too. */
static void wk_hup(int sig, siginfo_t *info, void *uctx)
{
	(void)sig;
	(void)uctx;
	if (info->si_code <= 0 && info->si_pid != wk_supervisor)
		check_note_stop_signal();
}

/* Leave because the supervisor is gone or said so: the check command goes first. */
__attribute__((noreturn)) static void wk_quit(void)
{
	check_kill_running();
	exit(0);
}

/* The supervisor is gone: nothing more can be reported, so end the worker. */
__attribute__((noreturn)) static void wk_gone(const char *why)
{
	if (why != NULL)
		log_info("supervisor went away (%s); exiting", why);
	wk_quit();
}

/* Write what is queued; a failed write is the end. */
static void wk_flush(struct wk *w)
{
	int rc = proto_fd_flush(&w->io);

	if (rc != 0)
		wk_gone(strerror(-rc));
}

/* Queue and write one message; an unencodable one is a bug, a failed write the end. */
static void wk_send(struct wk *w, const struct proto_msg *m)
{
	struct proto_err err;
	int rc = proto_fd_queue(&w->io, m, &err);

	if (rc != 0)
		log_fatal(1, "cannot encode a %s message: %s", proto_type_name(m->type), err.text);
	wk_flush(w);
}

/* Send a heartbeat naming the current attempt (or none) and the last event seq the worker
 * waits to have acknowledged (-1: none). */
static void wk_beat(struct wk *w, int64_t wait_seq)
{
	struct proto_msg m = { .type = PROTO_HEARTBEAT };

	m.u.heartbeat.db_uuid = w->job != NULL ? w->job->db_uuid : (char *)"";
	m.u.heartbeat.attempt_id = w->job != NULL ? w->job->attempt_id : 0;
	m.u.heartbeat.wait_seq = wait_seq;
	wk_send(w, &m);
	w->last_beat = clock_mono_ms();
}

/* Drop the held job of attempt `att`, cancelled before it started (none: nothing). */
static void wk_drop_held(struct wk *w, uint64_t att)
{
	for (size_t i = 0; i < w->nheld; i++) {
		if (w->held[i].u.job.attempt_id != att)
			continue;
		log_info("attempt %llu cancelled by the supervisor before it started",
		    (unsigned long long)att);
		proto_msg_free(&w->held[i]);
		memmove(&w->held[i], &w->held[i + 1], (w->nheld - i - 1) * sizeof w->held[0]);
		memmove(&w->held_left_ms[i], &w->held_left_ms[i + 1],
		    (w->nheld - i - 1) * sizeof w->held_left_ms[0]);
		w->nheld--;
		return;
	}
}

/* Keep job message m (taken: m is left empty) to run in turn. A job beyond the one
 * running and one held, or beyond two held, is a protocol error (exit 1). */
static void wk_hold(struct wk *w, struct proto_msg *m)
{
	if (w->nheld + (w->job != NULL) >= HELD_MAX)
		log_fatal(1, "the supervisor sent attempt %llu while %s attempt %llu",
		    (unsigned long long)m->u.job.attempt_id,
		    w->job != NULL ? "one runs and it holds" : "it holds",
		    (unsigned long long)w->held[w->nheld - 1].u.job.attempt_id);
	w->held[w->nheld] = *m;
	w->held_left_ms[w->nheld] = m->u.job.deadline_ms > 0 ?
	    m->u.job.deadline_ms - (int64_t)clock_wall_ms() :
	    0;
	w->nheld++;
	*m = (struct proto_msg){ 0 };
}

/* Handle a message that may arrive while a job runs: an ack, cancel or shutdown. */
static void wk_async(struct wk *w, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_ACK:
		if (outbox_ack(&w->out, m->u.ack.attempt_id, m->u.ack.seq) != 0)
			log_fatal(1,
			    "the supervisor acknowledged event %llu of attempt %llu, which was"
			    " never sent",
			    (unsigned long long)m->u.ack.seq,
			    (unsigned long long)m->u.ack.attempt_id);
		break;
	case PROTO_SHUTDOWN:
		log_info("the supervisor asked this worker to stop (%s) after its attempt",
		    m->u.shutdown.reason != NULL ? m->u.shutdown.reason : "no reason given");
		w->shutdown = true;
		break;
	case PROTO_CANCEL:
		if (w->job != NULL && m->u.cancel.attempt_id == w->job->attempt_id) {
			log_info("attempt %llu cancelled by the supervisor",
			    (unsigned long long)m->u.cancel.attempt_id);
			wk_quit();
		}
		wk_drop_held(w, m->u.cancel.attempt_id);
		break;
	default:
		log_fatal(1, "the supervisor sent a %s message while a job runs",
		    proto_type_name(m->type));
	}
}

/* Take the frames already read from the supervisor's socket and not yet taken, without
 * reading it again. */
static void wk_take_read(struct wk *w)
{
	struct proto_err err;
	struct proto_msg m;
	int rc;

	while ((rc = proto_reader_next(&w->io.rd, &m, &err)) > 0) {
		if (m.type == PROTO_JOB)
			wk_hold(w, &m);
		else
			wk_async(w, &m);
		proto_msg_free(&m);
	}
	if (rc < 0)
		log_fatal(1, "bad frame from the supervisor: %s", err.text);
}

/* Take what the supervisor sent, waiting at most timeout_ms for the first frame; with
 * `drain`, everything already there, else that first frame alone (one system call less
 * when the caller only waits for it). */
static void wk_poll(struct wk *w, int timeout_ms, bool drain)
{
	struct proto_err err;
	struct proto_msg m;
	enum proto_fd_rc rc;

	while ((rc = proto_fd_recv(&w->io, &m, timeout_ms, &err)) == PROTO_FD_MSG) {
		if (m.type == PROTO_JOB)
			wk_hold(w, &m);
		else
			wk_async(w, &m);
		proto_msg_free(&m);
		if (!drain)
			return;
		timeout_ms = 0;
	}
	if (rc == PROTO_FD_EOF) {
		log_info("supervisor went away during attempt %llu; exiting",
		    (unsigned long long)(w->job != NULL ? w->job->attempt_id : 0));
		wk_quit();
	}
	if (rc < 0)
		log_fatal(1, "bad frame from the supervisor: %s", err.text);
}

/* Wait until at most `pending` events are unacknowledged, heartbeating the last seq sent
 * (at once, then every second) so that the supervisor commits without waiting for its
 * window. Returns 0, or -1 when `deadline` is set and the attempt's deadline passes
 * first. */
static int wk_wait_acks(struct wk *w, size_t pending, bool deadline)
{
	bool said = false;

	while (outbox_pending(&w->out) > pending) {
		int left = HEARTBEAT_MS - (int)(clock_mono_ms() - w->last_beat);

		if (deadline && w->job->deadline_ms > 0 && clock_wall_ms() >= w->job->deadline_ms) {
			wk_flush(w);
			return -1;
		}
		if (!said || left <= 0) {
			wk_beat(w, (int64_t)w->out.sent);
			said = true;
			left = HEARTBEAT_MS;
		}
		wk_poll(w, deadline && left > 100 ? 100 : left, false);
	}
	return 0;
}

/* phase hook: stamp an event with the database, attempt and next seq, keep it and send
 * it; with the window full, wait for an ack first. An announced LLM call is sent only once
 * the supervisor has committed the announcement, so its cost is on record whatever
 * happens next; try 1 of the job's first call, when the job says it is on record with the
 * lease (`ann`), only once its announcement has left (it refines the row's max_tokens). */
static int hook_emit(void *ctx, struct proto_event *ev)
{
	struct wk *w = ctx;
	struct proto_msg m = { .type = PROTO_EVENT };
	struct proto_err err;
	bool reserved;
	int rc;

	if (outbox_full(&w->out))
		wk_wait_acks(w, w->out.cap - 1, false);
	m.u.event = *ev;
	m.u.event.db_uuid = w->job->db_uuid;
	m.u.event.attempt_id = w->job->attempt_id;
	m.u.event.seq = outbox_next_seq(&w->out);
	if ((rc = proto_fd_queue(&w->io, &m, &err)) != 0)
		log_fatal(1, "cannot encode an event: %s", err.text);
	outbox_add(&w->out);
	/* An announcement leaves in one write with the heartbeat that asks for its commit.
	 * Other events wait in the buffer for the next write, which comes before anything
	 * that takes time (the phase calls the heartbeat hook first) and with the result:
	 * the events of one step leave in one write, the supervisor woken once for them. */
	if (ev->kind != PROTO_EV_LLM_REQUEST)
		return 0;
	reserved = w->ann && ev->body.request.try_number == 1;
	w->ann = false;
	if (!reserved)
		return wk_wait_acks(w, 0, true);
	wk_flush(w);
	return 0;
}

/* phase hook: send what is queued, keep the supervisor informed, take its acks and
 * notice it going away. */
static void hook_heartbeat(void *ctx)
{
	struct wk *w = ctx;

	if (clock_mono_ms() - w->last_beat >= HEARTBEAT_MS)
		wk_beat(w, -1);
	else
		wk_flush(w);
	wk_poll(w, 0, true);
}

/* phase hook: is the supervisor still there (its socket open, still our parent)? The
 * events queued go first; a write of them that succeeds says the socket's other end is
 * open (a write to a closed one fails, EPIPE, and ends the worker), else a poll asks. */
static bool hook_supervisor_present(void *ctx)
{
	struct wk *w = ctx;
	struct pollfd pfd = { .fd = w->io.fd, .events = POLLIN };
	bool wrote = w->io.out.len > 0;

	wk_flush(w); /* the events before the writes */
	if (getppid() != wk_supervisor ||
	    (!wrote && poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)) != 0)) {
		log_info("supervisor gone before attempt %llu wrote its deliverables; exiting",
		    (unsigned long long)w->job->attempt_id);
		wk_quit();
	}
	return true;
}

/* Guard the process: not dumpable (no core file, /proc/<pid>/mem and environ closed to
 * other processes of the user), killed with its supervisor, a child subreaper (what a
 * check command starts and orphans, even in a session of its own, becomes the worker's
 * child, which it kills when the check ends), stop signals filtered. Exits if the
 * supervisor is already gone. */
static void wk_guard(void)
{
	struct sigaction sa = { 0 };

	wk_supervisor = getppid();
	prctl(PR_SET_DUMPABLE, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sa.sa_sigaction = wk_term;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_sigaction = wk_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A write past the file size limit fails with EFBIG, named in the attempt's
	 * failure, instead of killing the worker (check_child restores it for the check). */
	signal(SIGXFSZ, SIG_IGN);
	/* The soft CPU time limit used up (ulimit -t, LimitCPU=) does not end the attempt:
	 * the kernel lets the worker go on to its hard limit, and the supervisor replaces it
	 * after the attempt (supervisor/cpulimit.c). check_child restores it for the check. */
	signal(SIGXCPU, SIG_IGN);
	if (getppid() != wk_supervisor)
		exit(0);
}

/* Run one job and send its result right after its events: the supervisor commits the
 * attempt's end in the same transaction as its events, or after them, and acknowledges
 * them with the commit (with the next job, when it has one). */
static void wk_run_job(struct wk *w, const struct proto_job *job)
{
	struct phase_hooks hooks = { .ctx = w,
		.emit = hook_emit,
		.heartbeat = hook_heartbeat,
		.supervisor_present = hook_supervisor_present };
	struct proto_msg m = { .type = PROTO_RESULT };
	struct proto_result *r = &m.u.result;

	w->job = job;
	w->ann = job->ann == 1 && !job->dry_run;
	outbox_start(&w->out, job->attempt_id);
	if (phase_run(job, &hooks, r) == PHASE_INTERRUPTED) {
		/* Its events are committed; then the exit status says why there is no result. */
		log_warn("attempt %llu: %s; leaving the phase to the supervisor",
		    (unsigned long long)job->attempt_id, r->message);
		wk_wait_acks(w, 0, false);
		exit(PROTO_WORKER_EXIT_INTERRUPTED);
	}
	r->db_uuid = xstrdup(job->db_uuid);
	r->attempt_id = job->attempt_id;
	r->final_seq = w->out.sent;
	wk_send(w, &m);
	proto_msg_free(&m);
	w->job = NULL;
}

/* Run the jobs held, in turn, each with its whole time to its deadline from its start;
 * before each, what the supervisor has sent since is taken (a cancel of it drops it). A
 * job that a read made a moment ago brought (`just_read`) starts after the frames that
 * read brought with it, without reading the socket again. */
static void wk_run_held(struct wk *w, bool just_read)
{
	while (w->nheld > 0) {
		struct proto_msg m;
		int64_t left;

		if (just_read)
			wk_take_read(w);
		else
			wk_poll(w, 0, true);
		just_read = false;
		if (w->nheld == 0)
			break;
		m = w->held[0];
		left = w->held_left_ms[0];
		w->nheld--;
		memmove(&w->held[0], &w->held[1], w->nheld * sizeof w->held[0]);
		memmove(
		    &w->held_left_ms[0], &w->held_left_ms[1], w->nheld * sizeof w->held_left_ms[0]);
		if (m.u.job.deadline_ms > 0)
			m.u.job.deadline_ms = (int64_t)clock_wall_ms() + left;
		wk_run_job(w, &m.u.job);
		proto_msg_free(&m);
	}
}

/* Return the descriptor number `v` given to flag `name`, or exit 2 naming the flag. */
static int wk_flag_fd(const char *name, const char *v)
{
	long long n;

	if (numarg_ll(v, &n) != 0 || n < 0 || n > INT_MAX) {
		usage_say("autopack-worker", "%s: \"%s\" is not a descriptor number", name, v);
		exit(2);
	}
	return (int)n;
}

/* Exit 2 naming flag `name` unless descriptor `fd` (when given, >= 0) is an open socket:
 * frames on another descriptor, or on none, read as a supervisor that went away. */
static void wk_require_socket(const char *name, int fd)
{
	struct stat sb;

	if (fd < 0)
		return;
	if (fstat(fd, &sb) != 0) {
		usage_say("autopack-worker", "%s: descriptor %d is not open", name, fd);
		exit(2);
	}
	if (!S_ISSOCK(sb.st_mode)) {
		usage_say("autopack-worker", "%s: descriptor %d is not a socket (it is %s)", name,
		    fd,
		    S_ISREG(sb.st_mode)      ? "a regular file" :
		        S_ISDIR(sb.st_mode)  ? "a directory" :
		        S_ISFIFO(sb.st_mode) ? "a pipe" :
		        S_ISCHR(sb.st_mode)  ? "a character device" :
		                               "a special file");
		exit(2);
	}
}

/* Whether the value `v` of the two-choice flag `flag` is `other` (false when it is
 * `dflt`); any other value ends the worker, exit 2, naming both. */
static bool flag_is_other(const char *flag, const char *v, const char *dflt, const char *other)
{
	if (strcmp(v, other) == 0)
		return true;
	if (strcmp(v, dflt) != 0)
		log_fatal(2, "%s: \"%s\" is not %s or %s", flag, v, dflt, other);
	return false;
}

/* Parse the flags; exits 2 on a bad one. */
static void wk_flags(
    struct wk *w, int argc, char **argv, int *hand_fd, int *keys_fd, size_t *window)
{
	enum log_format format;
	enum log_level level;
	char lerr[160];
	bool json = false;
	int taken;

	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) &&
		    help_json_asked(argv)) {
			exit(help_json_print(
			    "autopack-worker", help_json_text("autopack-worker", usage_text)));
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			errno = 0; /* the cause of a write that fails in it */
			fputs(usage_text, stdout);
			exit(stdout_finish("autopack-worker", errno) == 0 ? 0 : 1);
		} else if (strcmp(argv[i], "--version") == 0 && help_json_asked(argv)) {
			exit(help_json_print(
			    "autopack-worker", help_json_version("autopack-worker")));
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("autopack-worker %s\n", AUTOPACK_VERSION);
			exit(stdout_finish("autopack-worker", 0) == 0 ? 0 : 1);
		} else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
			if (log_level_parse(argv[++i], &level) != 0)
				log_fatal(2,
				    "--log-level: \"%s\" is not error, warn, info or debug",
				    argv[i]);
			log_configure(level, log_line_format());
		} else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc) {
			if (log_format_parse(argv[++i], &format) != 0)
				log_fatal(2, "--log-format: \"%s\" is not text or json", argv[i]);
			log_configure(log_min_level(), format);
		} else if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc) {
			w->io.fd = wk_flag_fd("--fd", argv[++i]);
		} else if (strcmp(argv[i], "--handoff-fd") == 0 && i + 1 < argc) {
			*hand_fd = wk_flag_fd("--handoff-fd", argv[++i]);
		} else if (strcmp(argv[i], "--keys-fd") == 0 && i + 1 < argc) {
			*keys_fd = wk_flag_fd("--keys-fd", argv[++i]);
		} else if (strcmp(argv[i], "--event-window") == 0 && i + 1 < argc) {
			long long n;

			if (numarg_ll(argv[++i], &n) != 0 || n < 1 || n > OUTBOX_CAP_MAX) {
				usage_say("autopack-worker",
				    "--event-window: \"%s\" is not a whole number from 1 to %d",
				    argv[i], OUTBOX_CAP_MAX);
				exit(2);
			}
			*window = (size_t)n;
		} else if (strcmp(argv[i], "--control-socket") == 0 && i + 1 < argc) {
			if (argv[++i][0] == '\0')
				log_fatal(2, "--control-socket: the path is empty");
			check_keep_control_socket(argv[i]);
		} else if (strcmp(argv[i], "--check-home") == 0 && i + 1 < argc) {
			if (flag_is_other("--check-home", argv[++i], "hidden", "read-only"))
				check_show_home();
		} else if (strcmp(argv[i], "--check-network") == 0 && i + 1 < argc) {
			if (flag_is_other("--check-network", argv[++i], "isolated", "host"))
				check_share_network();
		} else if (i + 1 < argc &&
		    (taken = check_limits_flag(argv[i], argv[i + 1], lerr, sizeof lerr)) != 0) {
			if (taken < 0)
				log_fatal(2, "%s", lerr);
			i++;
		} else if (strcmp(argv[i], "--log-file") == 0 && i + 1 < argc) {
			int rc = log_open(argv[++i]);

			if (rc != 0)
				log_fatal(
				    1, "cannot open log file %s: %s", argv[i], log_open_error(rc));
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true; /* taken by --help and --version, wherever it stands */
		} else {
			usage_say("autopack-worker", "unexpected argument \"%s\"", argv[i]);
			fputs(usage_text, stderr);
			exit(2);
		}
	}
	if (json) {
		usage_say("autopack-worker",
		    "--json goes only with --help or --version: the worker answers its supervisor "
		    "in frames, not in JSON on standard output");
		exit(2);
	}
	if ((w->io.fd < 0) == (*hand_fd < 0)) {
		fputs(usage_text, stderr);
		exit(2);
	}
	wk_require_socket("--fd", w->io.fd);
	wk_require_socket("--handoff-fd", *hand_fd);
}

/* Make the channel to the supervisor (proto/hand.h) when started with --handoff-fd, take
 * the keys, say hello, then run jobs until shutdown or the end of the stream; exits 1 on a
 * bad frame from the supervisor, a channel it could not make or keys it could not read,
 * 2 on a bad flag. */
int main(int argc, char **argv)
{
	struct wk w = { 0 };
	size_t window = OUTBOX_CAP_DEFAULT;
	struct proto_err err;
	struct proto_msg m;
	enum proto_fd_rc rc;
	int hand_fd = -1, keys_fd = -1;
	char kerr[256];

	if (argc > 1 && strcmp(argv[1], CHECK_INIT_FLAG) == 0)
		check_init_main(argc, argv); /* PID 1 of a check's namespace (worker/check.c) */
	procs_stdio_open();
	stack_limit_require("autopack-worker", 1);
	umask_require("autopack-worker", 1);
	wk_guard();
	log_init("autopack-worker", LOG_INFO);
	log_set_follow(true); /* a rotated --log-file is followed at the next line */
	proto_fd_init(&w.io, -1, PROTO_FRAME_MAX_DEFAULT);
	wk_flags(&w, argc, argv, &hand_fd, &keys_fd, &window);
	/* Its socket, its keys and whatever else it inherited stay out of what it starts. */
	procs_cloexec_from(3);
	if (hand_fd >= 0 &&
	    ((w.io.fd = hand_give(hand_fd, kerr, sizeof kerr)) < 0 ||
	        hand_keys(w.io.fd, &keys_fd, kerr, sizeof kerr) != 0))
		log_fatal(1, "%s", kerr);
	if (keys_load(keys_fd, kerr, sizeof kerr) != 0)
		log_fatal(1, "%s", kerr);
	outbox_init(&w.out, window);
	m = (struct proto_msg){ .type = PROTO_HELLO };
	m.u.hello.pid = getpid();
	m.u.hello.sw_version = (char *)AUTOPACK_VERSION;
	wk_send(&w, &m);
	wk_beat(&w, -1);
	while (!w.shutdown) {
		int left = HEARTBEAT_MS - (int)(clock_mono_ms() - w.last_beat);
		/* No whole frame waits read: one taken now comes from a read made for it. */
		bool reads = w.io.rd.scan == w.io.rd.off;

		if (left <= 0) {
			wk_beat(&w, -1);
			left = HEARTBEAT_MS;
		}
		rc = proto_fd_recv(&w.io, &m, left, &err);
		if (rc == PROTO_FD_TIMEOUT)
			continue;
		if (rc == PROTO_FD_EOF)
			break;
		if (rc < 0)
			log_fatal(1, "bad frame from the supervisor: %s", err.text);
		/* A job may come before the acknowledgements of the previous attempt's events
		 * (its lease was opened ahead): those events are the supervisor's, committed and
		 * acknowledged in its own time, and their acks are ignored from now on. */
		if (m.type == PROTO_JOB) {
			wk_hold(&w, &m);
			wk_run_held(&w, reads);
		} else if (m.type == PROTO_ACK || m.type == PROTO_CANCEL)
			wk_async(&w, &m);
		else if (m.type == PROTO_SHUTDOWN) {
			log_info("the supervisor asked this worker to stop (%s)",
			    m.u.shutdown.reason != NULL ? m.u.shutdown.reason : "no reason given");
			w.shutdown = true;
		} else
			log_fatal(1, "the supervisor sent a %s message, which workers do not take",
			    proto_type_name(m.type));
		proto_msg_free(&m);
	}
	proto_fd_free(&w.io);
	return 0;
}
