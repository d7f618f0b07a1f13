/* An LD_PRELOAD shim for a host whose clock is off: the wall clock (clock_gettime of
 * CLOCK_REALTIME and CLOCK_REALTIME_COARSE, gettimeofday, time) reads
 * AUTOPACK_CLOCK_SHIM_OFFSET seconds (an integer, negative for a clock behind) away from
 * the machine's. The monotonic clocks, and everything else, pass through; without the
 * variable set nothing is moved.
 * Built by the Makefile for the tests only (clock-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

/* The offset in seconds, read once. */
static long long shim_offset(void)
{
	static int have;
	static long long offset;

	if (!have) {
		const char *v = getenv("AUTOPACK_CLOCK_SHIM_OFFSET");

		offset = v != NULL ? atoll(v) : 0;
		have = 1;
	}
	return offset;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	int rc;

	if (real == NULL)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	rc = real(id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += (time_t)shim_offset();
	return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	static int (*real)(struct timeval *restrict, void *restrict);
	int rc;

	if (real == NULL)
		real = (int (*)(struct timeval *restrict, void *restrict))dlsym(
		    RTLD_NEXT, "gettimeofday");
	rc = real(tv, tz);
	if (rc == 0)
		tv->tv_sec += (time_t)shim_offset();
	return rc;
}

time_t time(time_t *out)
{
	struct timespec ts;
	time_t t = clock_gettime(CLOCK_REALTIME, &ts) == 0 ? ts.tv_sec : (time_t)-1;

	if (out != NULL)
		*out = t;
	return t;
}
