/* The log lines about connections the supervisor drops or refuses (control peers, HTTP
 * clients), and about signals it is sent, at most one a second (or a minute) for each
 * cause: a peer that connects without end, or a storm of signals, must not flood the log
 * or the journal. The first drop of a cause is logged
 * in full; the next ones within its interval are counted, and summed up in one line once
 * the interval is over ("N more ... in the last X s"), so every drop is in the log, in a
 * line of its own or in a count. Safe to use from any thread. */
#ifndef AUTOPACK_SUPERVISOR_DROPLOG_H
#define AUTOPACK_SUPERVISOR_DROPLOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The least time between two lines of one cause: a second for faults, a minute for the
 * closes a busy control socket makes by design (idle connections, room made). */
#define DROPLOG_SECOND 1000
#define DROPLOG_MINUTE 60000

/* One cause of drops. */
struct droplog {
	const char *what;     /* what the summary counts: "control connection(s) closed idle" */
	uint64_t interval_ms; /* the least time between two lines */
	pthread_mutex_t lock;
	uint64_t last_ms; /* monotonic time of this cause's last line */
	uint64_t held;    /* drops since that line, counted, not logged */
	bool logged;      /* a line of this cause was logged */
	int held_level;   /* the highest level (enum log_level) of those held */
};

#define DROPLOG_INIT(what_, ms_)                                                                   \
	{                                                                                          \
		.what = (what_), .interval_ms = (ms_), .lock = PTHREAD_MUTEX_INITIALIZER           \
	}

/* Set up d, counting `what` (a constant string), a line at most every `ms`, as
 * DROPLOG_INIT does. */
void droplog_init(struct droplog *d, const char *what, uint64_t ms);
/* Log one drop of cause d at warn level (printf-style): in full when no line of d was
 * logged in the last interval and none is held, else counted for droplog_flush. */
void droplog_warn(struct droplog *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same at `level` (an enum log_level: a signal that comes again and again is told at
 * info or error); the summary of those held is logged at the highest of their levels. */
void droplog_log(struct droplog *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Log the drops of d counted and not yet told, in one line ("N more <what> in the last
 * X s"), once the interval has passed since d's last line, or at once with `at_end` (so
 * that none is left untold). Nothing when none is held. */
void droplog_flush(struct droplog *d, bool at_end);

#endif
