/* What the service manager sees (notify.h): EXTEND_TIMEOUT_USEC= each second of the start
 * in which it works (a thread of its own, until READY=1); READY=1 once the database is
 * open, the control socket listens and every wanted worker has said hello; a STATUS= line
 * (what the supervisor does, with counts); WATCHDOG=1
 * every half WATCHDOG_USEC while the loop runs and the writer commits; STOPPING=1 when a
 * stop begins. Readiness and stopping are noticed by a check handle that runs after every
 * loop iteration, so no other part of the supervisor calls in here. */
#include "supervisor/sup.h"
#include "supervisor/observe.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SERVICE_STATUS_MS 1000
/* While the start works (before READY=1): every SERVICE_EXTEND_MS that saw it progress,
 * ask for SERVICE_EXTEND_USEC more. */
#define SERVICE_EXTEND_MS 1000
#define SERVICE_EXTEND_USEC 10000000ULL

/* The thread that asks the service manager for more time while the start works. */
static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running; /* started and not yet joined */
	bool stop;
	pid_t tid;          /* the main thread, whose work is watched */
	unsigned long sent; /* EXTEND_TIMEOUT_USEC sent */
	uint64_t began_ms;
} ext = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Read the whole of a small /proc file into buf (n bytes, NUL-terminated); false when it
 * cannot be read. */
static bool service_proc_read(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return false;
	do
		got = read(fd, buf, n - 1);
	while (got < 0 && errno == EINTR);
	close(fd);
	if (got <= 0)
		return false;
	buf[got] = '\0';
	return true;
}

/* How much work the main thread has done so far: its CPU time in ticks plus the bytes it
 * read and wrote; with *disk true when it waits on the disk now (state D: a long fsync).
 * The figure only has to grow while it works; 0 when it cannot be read. */
static uint64_t service_work_done(pid_t tid, bool *disk)
{
	char path[64], buf[1024], *p;
	unsigned long long utime = 0, stime = 0, rchar = 0, wchar = 0;

	*disk = false;
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	if (service_proc_read(path, buf, sizeof buf) && (p = strrchr(buf, ')')) != NULL) {
		*disk = p[1] == ' ' && p[2] == 'D';
		/* After the name: state (3), ..., utime (14), stime (15). */
		if (sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &utime,
		        &stime) != 2)
			utime = stime = 0;
	}
	snprintf(path, sizeof path, "/proc/self/task/%d/io", (int)tid);
	if (service_proc_read(path, buf, sizeof buf)) {
		if ((p = strstr(buf, "rchar: ")) != NULL)
			rchar = strtoull(p + 7, NULL, 10);
		if ((p = strstr(buf, "wchar: ")) != NULL)
			wchar = strtoull(p + 7, NULL, 10);
	}
	return utime + stime + rchar + wchar;
}

/* Each SERVICE_EXTEND_MS until told to stop: when the main thread worked since the last
 * look (CPU time or I/O grew) or waits on the disk, send EXTEND_TIMEOUT_USEC, so that a
 * start that works for longer than the unit's TimeoutStartSec= (a migration's backup of a
 * large database, a long queue to read) is not killed, while one that waits on nothing
 * (a lock another process holds) still times out. Sends only the datagram: the main thread
 * logs the count. */
static void *service_extend_main(void *arg)
{
	struct sup *s = arg;
	bool disk;
	uint64_t before = service_work_done(ext.tid, &disk), now;
	struct timespec due;
	char msg[64];

	snprintf(msg, sizeof msg, "EXTEND_TIMEOUT_USEC=%llu", SERVICE_EXTEND_USEC);
	pthread_mutex_lock(&ext.lock);
	clock_gettime(CLOCK_MONOTONIC, &due);
	while (!ext.stop) {
		due.tv_sec += SERVICE_EXTEND_MS / 1000;
		due.tv_nsec += (long)(SERVICE_EXTEND_MS % 1000) * 1000000L;
		if (due.tv_nsec >= 1000000000L) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000L;
		}
		while (!ext.stop && pthread_cond_timedwait(&ext.wake, &ext.lock, &due) != ETIMEDOUT)
			;
		if (ext.stop)
			break;
		now = service_work_done(ext.tid, &disk);
		if (now != before || disk) {
			if (notify_send(&s->svc.notify, msg) == 0)
				ext.sent++;
		}
		before = now;
	}
	pthread_mutex_unlock(&ext.lock);
	return NULL;
}

/* Start asking for more time while the start works; nothing when not under a service
 * manager, or when the thread cannot be made (the start then has the unit's time only). */
static void service_extend_start(struct sup *s)
{
	pthread_condattr_t attr;

	if (s->svc.notify.fd < 0)
		return;
	ext.tid = (pid_t)syscall(SYS_gettid);
	ext.began_ms = clock_mono_ms();
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ext.wake, &attr);
	pthread_condattr_destroy(&attr);
	ext.running = pthread_create(&ext.thread, NULL, service_extend_main, s) == 0;
	if (!ext.running)
		log_warn("cannot start the thread that asks the service manager for more time while"
		         " the supervisor starts; a start longer than TimeoutStartSec= is killed");
}

/* Stop asking for more time (the start is over: ready, or stopping), and say how often it
 * was asked. */
static void service_extend_stop(void)
{
	if (!ext.running)
		return;
	pthread_mutex_lock(&ext.lock);
	ext.stop = true;
	pthread_cond_signal(&ext.wake);
	pthread_mutex_unlock(&ext.lock);
	pthread_join(ext.thread, NULL);
	ext.running = false;
	if (ext.sent > 0)
		log_info(
		    "the start took %.1f s: asked the service manager %lu time(s) for more time"
		    " (EXTEND_TIMEOUT_USEC=%llu) while it worked",
		    (double)(clock_mono_ms() - ext.began_ms) / 1000.0, ext.sent,
		    SERVICE_EXTEND_USEC);
}

/* The progress the last status line was made from; once the loop has ended (the queue
 * and the database handles freed) the last line is made from it. */
static struct progress service_last;
static bool service_ended;

/* The workers that have said hello (idle or busy). */
static int service_workers_live(struct sup *s)
{
	int up = 0;

	for (struct worker *w = s->workers; w != NULL; w = w->next)
		up += w->state == W_IDLE || w->state == W_BUSY;
	return up;
}

/* Whether every wanted worker has started (said hello), or none is wanted. */
static bool service_workers_up(struct sup *s)
{
	return service_workers_live(s) >= s->target;
}

/* Whether the writer keeps up: the database is there, the last commit did not fail, and
 * nothing queued has waited a whole watchdog period without a commit. */
static bool service_writer_healthy(struct sup *s)
{
	uint64_t period_ms = s->svc.notify.watchdog_usec / 1000;

	if (s->store_lost || s->writes_off || s->commit_fail_streak > 0)
		return false;
	return s->ops_n == 0 || clock_mono_ms() - s->last_commit_ms < period_ms;
}

/* Describe the drain in one line for the service manager, by what it does now:
 *   starting workers: 1/4 up
 *   draining: 15/16 phases (93.8%), 224.6/min, ETA 0s, 4 failed
 *   idle: waiting for phases; 16 done, 4 failed
 *   paused: 2 in flight, 12 queued; 4/18 phases done, 1 failed
 *   breaker tripped, dispatch paused: 0 in flight, 12 queued; 4/16 phases done, 3 failed
 *   stopping (REASON): 2 in flight; 14/16 phases done, 1 failed
 *   database lost
 * each count of failures followed by ", N handed back" when attempts were (a pause, a
 * stop, a scale-down or a lost worker sent their phase back to the queue).
 * The stop's reason comes first, so that a long one cut to the room of STATUS= still
 * says why. */
void service_status_line(struct sup *s, char *buf, size_t n)
{
	struct progress p;
	int64_t queued;
	char line[200], back[48] = "";

	if (s->store_lost) {
		snprintf(buf, n, "database lost");
		return;
	}
	if (!s->svc.ready_sent && !s->stopping) {
		snprintf(buf, n, "starting workers: %d/%d up", service_workers_live(s), s->target);
		return;
	}
	if (!service_ended)
		progress_compute(s, &service_last);
	p = service_last;
	queued = p.remaining > s->in_flight ? p.remaining - s->in_flight : 0;
	if (p.handed_back > 0)
		snprintf(back, sizeof back, ", %lld handed back", (long long)p.handed_back);
	if (s->stopping) {
		snprintf(buf, n,
		    "stopping%s%s%s: %lld in flight; %lld/%lld phases done, %lld failed%s",
		    s->stop_reason != NULL ? " (" : "",
		    s->stop_reason != NULL ? s->stop_reason : "", s->stop_reason != NULL ? ")" : "",
		    (long long)s->in_flight, (long long)p.done, (long long)p.total,
		    (long long)p.failed, back);
	} else if (s->paused || s->crash_loop) {
		snprintf(buf, n,
		    "%s: %lld in flight, %lld queued; %lld/%lld phases done, %lld failed%s",
		    s->paused ? "paused" : "breaker tripped, dispatch paused",
		    (long long)s->in_flight, (long long)queued, (long long)p.done,
		    (long long)p.total, (long long)p.failed, back);
	} else if (p.remaining == 0) {
		snprintf(buf, n, "idle: waiting for phases; %lld done, %lld failed%s",
		    (long long)p.done, (long long)p.failed, back);
	} else {
		progress_line(&p, line, sizeof line);
		snprintf(buf, n, "draining: %s", line);
	}
}

/* Note how sending `what` went (rc from notify_send; 1: nothing was sent): the first
 * failure, and the first after a success, is logged with its cause, for the service
 * manager then never learns that the supervisor is ready or alive (a Type=notify unit is
 * timed out, its watchdog fires); the first success after failures is logged too. */
static void service_sent(struct sup *s, int rc, const char *what)
{
	if (rc > 0)
		return;
	if (rc != 0 && !s->svc.send_failing)
		log_warn(
		    "cannot send %s to the service manager at NOTIFY_SOCKET=%s: %s; it will not"
		    " learn that the supervisor is ready or alive",
		    what, s->svc.notify.name, strerror(-rc));
	else if (rc == 0 && s->svc.send_failing)
		log_info("the service manager at NOTIFY_SOCKET=%s is reachable again",
		    s->svc.notify.name);
	s->svc.send_failing = rc != 0;
}

/* Send one notification, noting how it went. */
static void service_send(struct sup *s, const char *assignments)
{
	service_sent(s, notify_send(&s->svc.notify, assignments), assignments);
}

/* Send the status line when it changed. It is made longer than a STATUS= holds, so that
 * notify_status cuts it, between characters. */
static void service_status(struct sup *s)
{
	char line[1024];

	if (s->svc.notify.fd < 0)
		return;
	service_status_line(s, line, sizeof line);
	service_sent(s, notify_status(&s->svc.notify, line), "STATUS");
}

/* After each loop iteration: READY=1 and STOPPING=1 when they become true. */
static void service_check_cb(uv_check_t *h)
{
	struct sup *s = h->data;

	if (!s->svc.ready_sent && !s->stopping && service_workers_up(s)) {
		s->svc.ready_sent = true;
		service_extend_stop();
		service_status(s);
		service_send(s, "READY=1");
		log_debug("told the service manager: ready");
	}
	if (!s->svc.stopping_sent && s->stopping) {
		s->svc.stopping_sent = true;
		service_extend_stop();
		service_send(s, "STOPPING=1");
		service_status(s);
	}
}

/* Each second: send the status line if it changed. */
static void service_status_cb(uv_timer_t *t)
{
	service_status(t->data);
}

/* Half a watchdog period: ping while healthy, say why not otherwise. */
static void service_watchdog_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	if (service_writer_healthy(s)) {
		service_send(s, "WATCHDOG=1");
		s->svc.watchdog_missed = false;
	} else if (!s->svc.watchdog_missed) {
		s->svc.watchdog_missed = true;
		log_warn("not pinging the service manager's watchdog: %s",
		    s->store_lost || s->writes_off ? "the database was lost or cannot be written" :
		        s->commit_fail_streak      ? "commits are failing" :
		                                     "queued writes wait for a commit");
	}
}

/* Read the service manager's variables, exit 1 when they are malformed; under a service
 * manager, start asking it for more time while the start works (until READY=1). */
void service_open(struct sup *s)
{
	char err[256];

	if (notify_open(&s->svc.notify, err, sizeof err) != 0)
		log_fatal(1, "%s", err);
	service_extend_start(s);
}

/* Start the readiness check and the status and watchdog timers. */
void service_init(struct sup *s)
{
	struct service *v = &s->svc;

	uv_check_init(s->loop, &v->check);
	uv_timer_init(s->loop, &v->status_timer);
	uv_timer_init(s->loop, &v->watchdog_timer);
	v->check.data = v->status_timer.data = v->watchdog_timer.data = s;
	if (v->notify.fd < 0)
		return;
	uv_check_start(&v->check, service_check_cb);
	uv_timer_start(&v->status_timer, service_status_cb, SERVICE_STATUS_MS, SERVICE_STATUS_MS);
	if (v->notify.watchdog_usec > 0) {
		/* At least 50 ms: notify_open takes no shorter period. */
		uint64_t half = v->notify.watchdog_usec / 2000;

		uv_timer_start(&v->watchdog_timer, service_watchdog_cb, half, half);
	}
	uv_unref((uv_handle_t *)&v->check);
	uv_unref((uv_handle_t *)&v->status_timer);
	uv_unref((uv_handle_t *)&v->watchdog_timer);
}

/* Say STOPPING=1 if not yet said, send the last status (from the progress of the last
 * one: the queue is gone by now) and close. */
void service_finish(struct sup *s)
{
	service_ended = true;
	service_extend_stop();
	if (!s->svc.stopping_sent)
		service_send(s, "STOPPING=1");
	service_status(s);
	notify_close(&s->svc.notify);
}
