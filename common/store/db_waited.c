/* The long waits of this process's statements (db_waited.h). */
#include "common/store/db_waited.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

static struct {
	uint64_t start, end;
	char sql[120];
} waited[DB_WAITED_KEPT];
static unsigned waited_next;
static pthread_mutex_t waited_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t db_waited_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void db_waited_note(uint64_t start, uint64_t end, const char *sql)
{
	unsigned i;

	if (end < start + DB_WAITED_MIN_MS)
		return;
	pthread_mutex_lock(&waited_lock);
	i = waited_next++ % DB_WAITED_KEPT;
	waited[i].start = start;
	waited[i].end = end;
	snprintf(waited[i].sql, sizeof waited[i].sql, "%s", sql != NULL ? sql : "");
	pthread_mutex_unlock(&waited_lock);
}

uint64_t db_waited(uint64_t from, uint64_t to, char *sql, size_t n)
{
	uint64_t total = 0, longest = 0;

	snprintf(sql, n, "%s", "");
	pthread_mutex_lock(&waited_lock);
	for (unsigned i = 0; i < DB_WAITED_KEPT; i++) {
		uint64_t a = waited[i].start > from ? waited[i].start : from;
		uint64_t b = waited[i].end < to ? waited[i].end : to;

		if (waited[i].end == 0 || b <= a)
			continue;
		total += b - a;
		if (b - a > longest) {
			longest = b - a;
			snprintf(sql, n, "%s", waited[i].sql);
		}
	}
	pthread_mutex_unlock(&waited_lock);
	return total;
}
