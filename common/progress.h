/* How far a drain is and when it will end: the figures `autopack-ctl status`, `watch`, the
 * dashboard and the service manager's status line show. The supervisor computes them
 * (supervisor/progress.c) and carries them in its status document; this file holds the
 * figures, their JSON form and their one-line text, so every reader shows the same. */
#ifndef AUTOPACK_PROGRESS_H
#define AUTOPACK_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* What the ETA was worked out from. */
enum progress_basis {
	PROGRESS_BASIS_NONE,     /* nothing to go on yet: no finished attempt, no rate */
	PROGRESS_BASIS_MEDIAN,   /* the median attempt duration per task category */
	PROGRESS_BASIS_RATE,     /* the phases finished per minute so far */
	PROGRESS_BASIS_FINISHED, /* nothing is left */
	PROGRESS_BASIS_COUNT
};

struct progress {
	int64_t done;        /* phases this drain finished: they left the queue for good */
	int64_t remaining;   /* phases eligible or in flight */
	int64_t total;       /* done + remaining */
	int64_t failed;      /* attempts of this drain that did not do what was asked */
	int64_t handed_back; /* attempts ended by a pause, a stop, a scale-down or a lost
	                      * worker whose phase went back to the queue: no failure */
	double percent;      /* 100 * done / total; 100 when total is 0 */
	double per_minute;   /* phases finished per minute over the last ten minutes */
	double eta_seconds;  /* until nothing is left; negative when unknown */
	enum progress_basis basis;
};

/* The name of a basis: "none", "median_duration_per_category", "rate", "finished". */
const char *progress_basis_name(enum progress_basis b);
/* The figures as a JSON object (eta_seconds null when unknown). */
json_t *progress_to_json(const struct progress *p);
/* Read the figures from progress_to_json's object; a missing or mistyped member reads as
 * 0 (eta_seconds: unknown). */
void progress_from_json(json_t *o, struct progress *p);
/* Write "12/40 phases (30.0%), 3.2/min, ETA 9m12s, 2 failed" into buf of size n (always
 * NUL-terminated), ", 1 handed back" after it when some were; returns the length the whole
 * line needs, as snprintf does. */
int progress_line(const struct progress *p, char *buf, size_t n);
/* Write a duration in seconds as "45s", "9m12s", "2h05m" or "3d04h" into buf of size n;
 * "?" when negative (unknown). */
void progress_duration_text(double seconds, char *buf, size_t n);

#endif
