/* Rate-limited log lines about dropped peers (see droplog.h). */
#include "supervisor/droplog.h"
#include "common/log.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>

void droplog_init(struct droplog *d, const char *what, uint64_t ms)
{
	*d = (struct droplog){ .what = what, .interval_ms = ms };
	pthread_mutex_init(&d->lock, NULL);
}

/* Log or hold one line of d at `level` (see droplog_log). */
static void droplog_vlog(struct droplog *d, int level, const char *fmt, va_list ap)
{
	uint64_t now = clock_mono_ms();
	char line[1024];

	pthread_mutex_lock(&d->lock);
	if (d->held > 0 || (d->logged && now - d->last_ms < d->interval_ms)) {
		d->held++;
		if (level > d->held_level)
			d->held_level = level;
		pthread_mutex_unlock(&d->lock);
		return;
	}
	d->logged = true;
	d->last_ms = now;
	pthread_mutex_unlock(&d->lock);
	vsnprintf(line, sizeof line, fmt, ap);
	log_msg((enum log_level)level, "%s", line);
}

void droplog_warn(struct droplog *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	droplog_vlog(d, LOG_WARN, fmt, ap);
	va_end(ap);
}

void droplog_log(struct droplog *d, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	droplog_vlog(d, level, fmt, ap);
	va_end(ap);
}

void droplog_flush(struct droplog *d, bool at_end)
{
	uint64_t now = clock_mono_ms(), held, span;
	int level;

	pthread_mutex_lock(&d->lock);
	if (d->held == 0 || (!at_end && now - d->last_ms < d->interval_ms)) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	held = d->held;
	level = d->held_level;
	span = now - d->last_ms;
	d->held = 0;
	d->held_level = 0;
	d->last_ms = now;
	pthread_mutex_unlock(&d->lock);
	log_msg((enum log_level)level, "%llu more %s in the last %.1f s", (unsigned long long)held,
	    d->what, (double)span / 1000.0);
}
