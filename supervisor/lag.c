/* The loop's own lag: a timer that should fire every LAG_TICK_MS measures how late it
 * fires, and the lateness adds up to the time the supervisor itself did not run its loop
 * (the process was stopped, starved of CPU, or blocked in a long call). The deadlines the
 * supervisor keeps on its workers (a heartbeat, a phase's backstop) count only the time
 * its loop was running, so a gap the supervisor caused never kills a worker; and after a
 * stall, what the workers sent meanwhile is read before any of them is judged. */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/store/db_waited.h"

#define LAG_TICK_MS 100
#define LAG_STALL_MS 1000 /* lateness logged as a stall */
#define LAG_READ_MS 50    /* after a stall, judge nobody before the frames are read */

/* Measure the lateness of each tick. */
static void lag_tick_cb(uv_timer_t *t)
{
	lag_note(t->data);
}

void lag_init(struct sup *s)
{
	uv_timer_init(s->loop, &s->lag_timer);
	s->lag_timer.data = s;
	/* The time the start took (opening the database, reading the queue) is no stall. */
	uv_update_time(s->loop);
	s->lag_last_ms = uv_now(s->loop);
	uv_timer_start(&s->lag_timer, lag_tick_cb, LAG_TICK_MS, LAG_TICK_MS);
}

/* Log a stall of `late` ms, from loop time `due` to `now`: one spent mostly waiting for
 * the database (PostgreSQL's answers; on SQLite, a lock another process held, a
 * checkpoint, a slow disk) names the database and the statement that waited longest, not
 * the supervisor. */
static void lag_stall_log(struct sup *s, uint64_t late, uint64_t due, uint64_t now)
{
	char sql[120];
	/* The loop's clock is coarser than the statements': a few ms either side. */
	uint64_t db = db_waited(due > 10 ? due - 10 : 0, now + 10, sql, sizeof sql);
	bool pg = s->st != NULL && s->st->backend == DB_PG;

	if (db * 2 < late) {
		log_warn(
		    "the supervisor itself stalled for %.1f s (stopped, starved or blocked); the "
		    "workers' deadlines are extended by it, and what they sent meanwhile is read "
		    "before any of them is judged",
		    (double)late / 1000.0);
		return;
	}
	log_warn("the supervisor's loop stalled for %.1f s waiting for the database: its "
	         "statements waited %.1f s %s (the longest: %s), %s, not for the supervisor "
	         "itself; the workers' deadlines are extended by it, and what they sent "
	         "meanwhile is read before any of them is judged",
	    (double)late / 1000.0, (double)db / 1000.0,
	    pg ? "for the server's answers" : "in SQLite", sql,
	    pg ? "for a lock another session held or a slow server or network" :
	         "for a lock another process held (a write transaction, a checkpoint) or a "
	         "slow disk");
}

uint64_t lag_note(struct sup *s)
{
	uint64_t now = uv_now(s->loop), due = s->lag_last_ms + LAG_TICK_MS;

	if (now > due) {
		uint64_t late = now - due;

		s->lag_total_ms += late;
		if (late >= LAG_STALL_MS) {
			s->n.stalls++;
			s->judge_after_ms = now + LAG_READ_MS;
			lag_stall_log(s, late, due, now);
		}
	}
	if (now > s->lag_last_ms)
		s->lag_last_ms = now;
	return s->lag_total_ms;
}

uint64_t lag_wait_ms(struct sup *s, uint64_t since_ms, uint64_t lag_at, uint64_t span_ms)
{
	uint64_t lag = lag_note(s) - lag_at, now = uv_now(s->loop);
	uint64_t ran = now > since_ms ? now - since_ms : 0, wait;

#ifdef AUTOPACK_MUTANT_stall_judged_as_hang
	return ran < span_ms ? span_ms - ran : 0;
#endif
	ran = ran > lag ? ran - lag : 0;
	wait = ran < span_ms ? span_ms - ran : 0;
	if (s->judge_after_ms > now && s->judge_after_ms - now > wait)
		wait = s->judge_after_ms - now;
	return wait;
}
