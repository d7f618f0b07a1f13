/* The supervisor's lifecycle: the signals, the stop levels (graceful: dispatch nothing new
 * and let the attempts in flight finish; now: kill the workers, requeue their phases), the
 * drain's time budget, the end of the loop once a stop has finished, and the check that
 * the database path still names the file that was opened. */
#include "supervisor/sup.h"
#include "supervisor/droplog.h"
#include "common/log.h"
#include "common/store/store_fleet.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#define IDENTITY_CHECK_MS 1000

/* The drain's time budget is spent: dispatch nothing more. */
static void deadline_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	lifecycle_stop_for(s, STOP_GRACEFUL, STOP_CAUSE_POLICY,
	    "%lld minutes elapsed (--max-total-minutes)", (long long)s->cfg.max_total_minutes);
}

/* The lines about SIGHUP and the signals ignored, at most one a second for each (the rest
 * counted, droplog.h): a storm of them (`kill` in a loop, a process group signalled again
 * and again) must not flood the log. Each SIGHUP still reopens the log. */
/* A signal during a fast stop gives its writes up only once they have waited this long (or
 * a commit failed). */
#define STOP_GIVE_UP_MS 1000
/* When the fast stop began (monotonic ms). */
static uint64_t stop_now_ms;
static struct droplog stop_storm_log = DROPLOG_INIT(
    "stop signal(s) received while the fast stop's writes were being committed", DROPLOG_SECOND);
static struct droplog sighup_log = DROPLOG_INIT(
    "SIGHUP(s) handled (the log file reopened each time it could be)", DROPLOG_SECOND);
/* One for each of ignored_signums, in its order. */
static struct droplog ignored_log[] = {
	DROPLOG_INIT("SIGUSR1(s) received and ignored", DROPLOG_SECOND),
	DROPLOG_INIT("SIGUSR2(s) received and ignored", DROPLOG_SECOND),
	DROPLOG_INIT("SIGALRM(s) received and ignored", DROPLOG_SECOND),
};

/* Tell the signals counted and not told yet: those whose second is over, or all with
 * `at_end`. */
static void lifecycle_signals_flush(bool at_end)
{
	droplog_flush(&sighup_log, at_end);
	droplog_flush(&stop_storm_log, at_end);
	for (size_t i = 0; i < ARRAY_SIZE(ignored_log); i++)
		droplog_flush(&ignored_log[i], at_end);
}

/* Check the database's identity once a second, schedule what another program queued in
 * it, report failing checkpoints, and tell the signals counted. */
static void identity_timer_cb(uv_timer_t *t)
{
	lifecycle_identity_check(t->data);
	foreign_check(t->data);
	checkpoint_report(t->data);
	lifecycle_signals_flush(false);
}

/* Escalate a graceful stop that took too long. */
static void stop_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	log_warn("graceful stop timed out; stopping now");
	lifecycle_stop(s, STOP_NOW);
}

/* The first SIGINT/SIGTERM stops gracefully, the second at once; one more while the
 * fast stop still waits for its writes to commit gives them up, when they wait on the
 * database (a commit failed since, or they have waited STOP_GIVE_UP_MS): the supervisor
 * exits 3 as soon as its workers are gone. One that comes while the writes are merely
 * being committed (a storm of signals, milliseconds after the one before) is said once a
 * second and changes nothing: giving them up would end a healthy drain with exit 3. */
static void signal_cb(uv_signal_t *h, int signum)
{
	struct sup *s = h->data;
	bool waiting = s->stopping == STOP_NOW && !s->writes_off &&
	    (s->ops_n > 0 || s->sync.nheld > 0);

	if (waiting && s->commit_fail_streak == 0 &&
	    clock_mono_ms() - stop_now_ms < STOP_GIVE_UP_MS) {
		droplog_log(&stop_storm_log, LOG_WARN,
		    "received %s while stopping now: the %lld write(s) of the stop are being "
		    "committed; one more while they wait on the database (%d ms, or a commit that "
		    "fails) gives them up",
		    strsignal(signum), (long long)s->ops_n + (long long)s->sync.nheld,
		    STOP_GIVE_UP_MS);
		return;
	}
	if (waiting) {
		log_error("received %s while stopping now: exiting without the %lld write(s) not"
		          " yet committed and the %lld committed group(s) not yet on disk, none of"
		          " them acknowledged; the next supervisor recovers their attempts",
		    strsignal(signum), (long long)s->ops_n, (long long)s->sync.nheld);
		s->writes_off = true;
		s->exit_code = 3;
		lifecycle_check_done(s);
		return;
	}
	lifecycle_stop_for(s, s->stopping ? STOP_NOW : STOP_GRACEFUL, STOP_CAUSE_OPERATOR,
	    "received %s", strsignal(signum));
}

/* SIGHUP: open --log-file again (log rotation); nothing else changes. Said at most once a
 * second, the others counted. */
static void sighup_cb(uv_signal_t *h, int signum)
{
	struct sup *s = h->data;
	int rc = log_reopen();

	(void)signum;
	if (s->cfg.log_file == NULL)
		droplog_log(
		    &sighup_log, LOG_INFO, "SIGHUP: no --log-file to reopen; nothing changes");
	else if (rc != 0)
		droplog_log(&sighup_log, LOG_ERROR, "SIGHUP: cannot reopen the log file %s: %s; %s",
		    s->cfg.log_file, log_open_error(rc),
		    log_to_file() ?
		        "logging goes on to the old one" :
		        "the old one was removed too: logging goes on to standard error");
	else
		droplog_log(&sighup_log, LOG_INFO, "SIGHUP: log file reopened");
}

/* SIGXCPU: the soft limit of CPU time (ulimit -t, LimitCPU=) is used up. The first
 * stops gracefully, as a time budget would; the kernel sends another each second of CPU
 * after it (raising the soft limit by one each time), and one that finds the hard limit
 * (SIGKILL) three seconds away or less stops at once, so that the session's end is
 * recorded before the kill. */
static void sigxcpu_cb(uv_signal_t *h, int signum)
{
	struct sup *s = h->data;
	struct rlimit lim;
	struct rusage ru;
	char hard[32];
	double used;
	bool near;

	(void)signum;
	if (getrlimit(RLIMIT_CPU, &lim) != 0 || getrusage(RUSAGE_SELF, &ru) != 0)
		lim.rlim_max = RLIM_INFINITY, used = 0;
	else
		used = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	near = lim.rlim_max != RLIM_INFINITY && used + 3.0 >= (double)lim.rlim_max;
	if (near && s->stopping < STOP_NOW)
		lifecycle_stop_for(s, STOP_NOW, STOP_CAUSE_POLICY,
		    "the CPU time limit was reached (%.1f s of CPU used; ulimit -t, LimitCPU=), and"
		    " the hard limit (%s), which kills, is %.1f s of CPU away; raise it to drain"
		    " longer",
		    used, cpulimit_text(lim.rlim_max, hard, sizeof hard),
		    (double)lim.rlim_max - used);
	else if (!s->stopping)
		lifecycle_stop_for(s, STOP_GRACEFUL, STOP_CAUSE_POLICY,
		    "the CPU time limit was reached (%.1f s of CPU used; ulimit -t, LimitCPU=;"
		    " the hard limit %s); raise it to drain longer",
		    used, cpulimit_text(lim.rlim_max, hard, sizeof hard));
}

/* Signals whose default action would end the supervisor at once, without a word and
 * without recording the end of its session, and which mean nothing to it: each is logged
 * and ignored. */
static const int ignored_signums[] = { SIGUSR1, SIGUSR2, SIGALRM };
static uv_signal_t ignored_sigs[ARRAY_SIZE(ignored_signums)];

/* Log a signal that the supervisor ignores (at most a line a second, the rest counted). */
static void ignored_cb(uv_signal_t *h, int signum)
{
	size_t i = 0;

	(void)h;
	while (i + 1 < ARRAY_SIZE(ignored_signums) && ignored_signums[i] != signum)
		i++;
	droplog_warn(&ignored_log[i],
	    "received %s (signal %d): ignored; the supervisor stops on SIGINT and SIGTERM "
	    "and reopens its log on SIGHUP",
	    strsignal(signum), signum);
}

/* Start the signal handlers and the lifecycle's timers. */
void lifecycle_init(struct sup *s, void (*stop_workers)(struct sup *s, enum stop_level level))
{
	s->stop_workers = stop_workers;
	uv_signal_init(s->loop, &s->sigint);
	uv_signal_init(s->loop, &s->sigterm);
	uv_signal_init(s->loop, &s->sighup);
	s->sigint.data = s->sigterm.data = s->sighup.data = s;
	uv_signal_start(&s->sigint, signal_cb, SIGINT);
	uv_signal_start(&s->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&s->sighup, sighup_cb, SIGHUP);
	uv_signal_init(s->loop, &s->sigxcpu);
	s->sigxcpu.data = s;
	uv_signal_start(&s->sigxcpu, sigxcpu_cb, SIGXCPU);
	uv_unref((uv_handle_t *)&s->sigxcpu);
	for (size_t i = 0; i < ARRAY_SIZE(ignored_signums); i++) {
		uv_signal_init(s->loop, &ignored_sigs[i]);
		uv_signal_start(&ignored_sigs[i], ignored_cb, ignored_signums[i]);
		uv_unref((uv_handle_t *)&ignored_sigs[i]);
	}
	uv_timer_init(s->loop, &s->stop_timer);
	s->stop_timer.data = s;
	uv_timer_init(s->loop, &s->identity_timer);
	s->identity_timer.data = s;
	uv_timer_start(&s->identity_timer, identity_timer_cb, IDENTITY_CHECK_MS, IDENTITY_CHECK_MS);
	uv_timer_init(s->loop, &s->deadline_timer);
	s->deadline_timer.data = s;
	/* From the session's start: a supervisor that joined it has what is left. */
	if (s->cfg.max_total_minutes > 0) {
		int64_t ms = s->cfg.max_total_minutes * 60000 - s->session_elapsed_ms;

		uv_timer_start(&s->deadline_timer, deadline_timer_cb, ms > 0 ? (uint64_t)ms : 0, 0);
	}
	foreign_init(s);
}

/* The database is no longer the one opened (err says how): write nothing more, exit 3. */
static void lifecycle_store_lost(struct sup *s, const struct store_err *err)
{
	s->store_lost = s->writes_off = true;
	s->exit_code = 3;
	log_error("DATABASE LOST: %s; no further writes or dispatches. Workers are stopped;"
	          " open attempts are recovered by the next supervisor on that database.",
	    err->text);
	lifecycle_stop(s, STOP_NOW);
}

/* Check that the database path still names the opened file; exit 3 if not. */
void lifecycle_identity_check(struct sup *s)
{
	struct store_err err;

	if (s->store_lost || store_identity_changed(s->st, &err) == 0)
		return;
	lifecycle_store_lost(s, &err);
}

/* After a failed commit: check as lifecycle_identity_check, and read the database's
 * uuid and count of commits again even when no other connection committed since they were
 * last read: a commit that fails on rows that are gone (a foreign key) may be the first
 * to meet an older copy of the database put in the file. Exit 3 if it is not the
 * database opened. */
static void lifecycle_identity_recheck(struct sup *s)
{
	struct store_err err;

	if (s->store_lost || store_identity_recheck(s->st, &err) == 0)
		return;
	lifecycle_store_lost(s, &err);
}

/* The connection to the database server is gone: stop watching it and begin connecting
 * again (fleet_reconnect), unless that is under way. Returns whether it was gone. */
bool lifecycle_reconnect(struct sup *s)
{
	if (!store_connection_lost(s->st))
		return false;
	if (s->reconnecting)
		return true;
	/* The socket watched for notifications is gone, and the next one is another. */
	fleet_unlisten(s);
	fleet_reconnect(s);
	return true;
}

uint64_t lifecycle_reconnect_ms(const struct sup *s)
{
	int64_t t = s->cfg.lease_timeout_ms / 2;

	return (uint64_t)(t < 1000 ? 1000 : t > 10000 ? 10000 : t);
}

/* An attempt to connect again ended with rc (err): log it; a server that now answers
 * for another database is a lost database (exit 3). */
void lifecycle_reconnected(struct sup *s, int rc, const struct store_err *err)
{
	if (rc == STORE_EMOVED)
		lifecycle_store_lost(s, err);
	else if (rc != 0)
		log_warn("the connection to the database is lost; %s (retrying)", err->text);
	else
		log_info("connected to %s again", s->st->url);
}

/* Another supervisor declared this one lost: say so, refuse and count what waits, no
 * further writes, exit 3. Nothing when already noted. */
void lifecycle_lost_note(struct sup *s)
{
	struct store_err err;
	int64_t n = (int64_t)s->ops_n;

	if (s->fleet_lost)
		return;
	s->fleet_lost = s->writes_off = true;
	s->exit_code = 3;
	s->n.rejected_lost += (uint64_t)n;
	log_error("DECLARED LOST: another supervisor declared supervisor %lld lost (no heartbeat"
	          " for longer than its lease timeout, %.1f s), closed its open attempts as"
	          " supervisor_lost and requeued their phases; %lld late write(s) refused and"
	          " nothing more is written. Workers are stopped; exiting with status 3.",
	    (long long)s->fleet_id, (double)s->cfg.lease_timeout_ms / 1000.0, (long long)n);
	if (store_fleet_count_rejected(s->sd, (int64_t)s->n.rejected_lost, &err) != 0)
		log_error("%s", err.text);
}

/* Another supervisor declared this one lost: refuse and count what waits, stop, exit 3. */
void lifecycle_declared_lost(struct sup *s)
{
	if (s->fleet_lost)
		return;
	lifecycle_lost_note(s);
	lifecycle_stop_because(s, STOP_NOW, "declared lost by another supervisor");
}

/* Give up on the database (`why` logged, `stop` the stop's reason): nothing more is
 * written, the workers stop, exit 3. Nothing when writes are off already. */
static void lifecycle_writes_end(struct sup *s, const char *why, const char *stop)
{
	if (s->writes_off)
		return;
	s->writes_off = true;
	s->exit_code = 3;
	log_error("giving up on the database: %s; no further writes. Workers are stopped; open"
	          " attempts are recovered by the next supervisor on that database.",
	    why);
	lifecycle_stop_because(s, STOP_NOW, "%s", stop);
}

uint64_t lifecycle_write_failed(struct sup *s, const char *what, const struct store_err *err)
{
	bool busy = store_err_busy(err), gone;
	uint64_t delay = COMMIT_RETRY_MS;

	s->n.commit_failures++;
	s->commit_fail_streak++;
	gone = lifecycle_reconnect(s);
	lifecycle_identity_recheck(s);
	if (s->writes_off)
		return 0;
	if (s->commit_fail_streak >=
	    (busy || gone ? COMMIT_MAX_FAILURES : COMMIT_MAX_HARD_FAILURES)) {
		char why[sizeof err->text + 160], stop[64];

		snprintf(why, sizeof why, "%d transactions failed in a row, the last %s: %s",
		    s->commit_fail_streak, what, err->text);
		snprintf(stop, sizeof stop, "the database refused %d commits in a row",
		    s->commit_fail_streak);
		lifecycle_writes_end(s, why, stop);
		return 0;
	}
	/* A busy database already waited its busy timeout; anything else backs off. */
	for (int i = 1; !busy && i < s->commit_fail_streak && delay < COMMIT_RETRY_MAX_MS; i++)
		delay *= 2;
	return delay < COMMIT_RETRY_MAX_MS ? delay : COMMIT_RETRY_MAX_MS;
}

/* Give up on the database: nothing more is written, the workers stop, exit 3. */
void lifecycle_give_up(struct sup *s, const char *why)
{
	lifecycle_writes_end(s, why, why);
}

/* A failed fsync of the write-ahead log: nothing held is acknowledged, nothing more is
 * written, exit 3. */
void lifecycle_sync_failed(struct sup *s, const char *path, int err, int64_t held)
{
	s->n.commit_failures++;
	if (s->writes_off)
		return;
	s->writes_off = true;
	s->exit_code = 3;
	log_error("writes failed: fdatasync of the write-ahead log %s failed: %s (errno %d); the"
	          " %lld committed group(s) it was to make durable may not be on disk, so none of"
	          " them is acknowledged, and a failed fsync cannot be retried safely: no further"
	          " writes. Workers are stopped; open attempts are recovered by the next"
	          " supervisor on that database.",
	    path, strerror(err), err, (long long)held);
	lifecycle_stop_because(s, STOP_NOW, "fdatasync of %s failed: %s", path, strerror(err));
}

/* Escalate a graceful stop after ms. */
void lifecycle_stop_timeout(struct sup *s, uint64_t ms)
{
	uv_timer_start(&s->stop_timer, stop_timer_cb, ms, 0);
}

/* Record the first stop's reason and cause, then stop at `level`. */
static void lifecycle_vstop(
    struct sup *s, enum stop_level level, enum stop_cause cause, const char *fmt, va_list ap)
{
	if (s->stop_reason == NULL) {
		vsnprintf(s->stop_buf, sizeof s->stop_buf, fmt, ap);
		s->stop_reason = s->stop_buf;
		s->stop_cause = cause;
		log_about(LOG_INFO, &(struct log_about){ .session = s->session_id }, "[STOP] %s",
		    s->stop_buf);
	}
	lifecycle_stop(s, level);
}

/* Stop, recording the first reason given. */
void lifecycle_stop_because(struct sup *s, enum stop_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lifecycle_vstop(s, level, STOP_CAUSE_NONE, fmt, ap);
	va_end(ap);
}

/* Stop, recording the first reason given and what caused it. */
void lifecycle_stop_for(
    struct sup *s, enum stop_level level, enum stop_cause cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lifecycle_vstop(s, level, cause, fmt, ap);
	va_end(ap);
}

/* Raise the stop level, stop the workers accordingly, and check for the end. */
void lifecycle_stop(struct sup *s, enum stop_level level)
{
	assert(level > STOP_NONE && level < STOP_LEVEL_COUNT);
	if (level <= s->stopping)
		return;
	s->stopping = level;
	if (level == STOP_NOW)
		stop_now_ms = clock_mono_ms();
	lease_ahead_release(s, OUTCOME_SUPERVISOR_STOPPED, "the supervisor is stopping");
	if (level == STOP_GRACEFUL)
		log_info("stopping: no new dispatch; %lld attempt(s) in flight finish first",
		    (long long)s->in_flight);
	else
		log_info("stopping now: killing workers and requeueing their phases");
	s->stop_workers(s, level);
	lifecycle_check_done(s);
}

/* Stop when drained (after a last look for what another program queued); end the loop
 * once the stop has finished. */
void lifecycle_check_done(struct sup *s)
{
	bool done;

	if (!s->stopping && s->cfg.exit_when_drained && sched_drained(s)) {
		/* What another program queued since the last read is drained too. */
#ifndef AUTOPACK_MUTANT_foreign_left_at_drain_end
		if (foreign_drain_end(s))
			return;
#endif
		lifecycle_stop_for(s, STOP_GRACEFUL, STOP_CAUSE_DRAINED, "drained");
		return;
	}
	/* An fsync on the threadpool is waited for even when writing was given up. */
	done = s->stopping && s->live == 0 && !s->sync.running &&
	    ((s->ops_n == 0 && s->sync.nheld == 0 && !s->commit_doubt) || s->writes_off);
	if (done) {
		lifecycle_signals_flush(true);
		uv_stop(s->loop);
	}
}
