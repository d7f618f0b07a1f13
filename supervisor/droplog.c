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

void droplog_warn(struct droplog *d, const char *fmt, ...)
{
	uint64_t now = clock_mono_ms();
	char line[1024];
	va_list ap;

	pthread_mutex_lock(&d->lock);
	if (d->held > 0 || (d->logged && now - d->last_ms < d->interval_ms)) {
		d->held++;
		pthread_mutex_unlock(&d->lock);
		return;
	}
	d->logged = true;
	d->last_ms = now;
	pthread_mutex_unlock(&d->lock);
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	log_warn("%s", line);
}

void droplog_flush(struct droplog *d, bool at_end)
{
	uint64_t now = clock_mono_ms(), held, span;

	pthread_mutex_lock(&d->lock);
	if (d->held == 0 || (!at_end && now - d->last_ms < d->interval_ms)) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	held = d->held;
	span = now - d->last_ms;
	d->held = 0;
	d->last_ms = now;
	pthread_mutex_unlock(&d->lock);
	log_warn("%llu more %s in the last %.1f s", (unsigned long long)held, d->what,
	    (double)span / 1000.0);
}
