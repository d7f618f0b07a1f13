#include "common/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

/* Report exhaustion and abort. */
static void oom(size_t n)
{
	fprintf(stderr, "autopack: out of memory allocating %zu bytes\n", n);
	abort();
}

/* Allocate n bytes or abort. */
void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

/* Allocate zeroed memory or abort. */
void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

/* Resize an allocation or abort. */
void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

/* Copy a string or abort. */
char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* Copy at most n bytes of a string or abort. */
char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Format into a new heap string or abort. */
char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom(strlen(fmt));
	va_end(ap);
	return s;
}

/* Read the monotonic clock in milliseconds. */
uint64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Read the wall clock in milliseconds since the epoch. */
int64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the wall clock in microseconds since the epoch. */
int64_t clock_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A second formatted once: each thread keeps one per format (`have` once one is; no
 * value of `last` could say "none", the second before 1970 is -1). */
struct time_secs {
	bool have;
	time_t last;
	size_t n;
	char s[24];
};

/* The first and the last second of the years TIME_DB_YEAR_MIN to TIME_DB_YEAR_MAX (UTC). */
#define TIME_SECS_FIRST (-62135596800LL)
#define TIME_SECS_LAST 253402300799LL

/* Put second t as "YYYY-MM-DD?HH:MM:SS" with `sep` for ? (cached in *c), a '.', and `frac`
 * as `digits` digits at buf; returns the length put. A second before or after the years
 * TIME_DB_YEAR_MIN to TIME_DB_YEAR_MAX is put as the first or the last of them. */
static size_t time_put(struct time_secs *c, char sep, time_t t, int64_t frac, int digits, char *buf)
{
	struct tm tm;

	/* Past the four-digit years the text would not fit the caller's 32 bytes. */
	if (t < TIME_SECS_FIRST)
		t = TIME_SECS_FIRST;
	else if (t > TIME_SECS_LAST)
		t = TIME_SECS_LAST;
	if (!c->have || t != c->last) {
		gmtime_r(&t, &tm);
		/* %04d: strftime's %Y puts a year before 1000 in fewer digits */
		c->n = (size_t)snprintf(c->s, sizeof c->s, "%04d-%02d-%02d%c%02d:%02d:%02d",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, sep, tm.tm_hour, tm.tm_min,
		    tm.tm_sec);
		c->last = t;
		c->have = true;
	}
	memcpy(buf, c->s, c->n);
	buf[c->n] = '.';
	for (int i = digits; i >= 1; i--, frac /= 10)
		buf[c->n + (size_t)i] = (char)('0' + frac % 10);
	return c->n + 1 + (size_t)digits;
}

/* Format epoch milliseconds as ISO 8601 UTC with a Z. */
void time_iso8601(int64_t ms, char buf[32])
{
	static _Thread_local struct time_secs c;
	int64_t frac = ((ms % 1000) + 1000) % 1000;
	size_t n = time_put(&c, 'T', (time_t)(ms / 1000 - (ms < 0 && frac != 0)), frac, 3, buf);

	buf[n] = 'Z';
	buf[n + 1] = '\0';
}

/* Format epoch microseconds in the database timestamp format. */
void time_db(int64_t us, char buf[32])
{
	static _Thread_local struct time_secs c;
	int64_t frac = ((us % 1000000) + 1000000) % 1000000;
	size_t n = time_put(&c, ' ', (time_t)(us / 1000000 - (us < 0 && frac != 0)), frac, 6, buf);

	buf[n] = '\0';
}

/* Format the current time in the database timestamp format. */
void time_db_now(char buf[32])
{
	time_db(clock_wall_us(), buf);
}

/* Read exactly `n` digits at *p into *out and advance; -1 if they are not all digits. */
static int time_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Read an optional zone suffix at p (Z, +HH:MM, -HH:MM, +HHMM, +HH) into *offset_s,
 * seconds east of UTC; -1 if p holds anything else. */
static int time_zone_parse(const char *p, long *offset_s)
{
	int sign, h, m = 0;

	*offset_s = 0;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return 0;
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if (time_digits(&p, 2, &h) != 0 || h > 23)
		return -1;
	if (*p == ':')
		p++;
	if (*p != '\0' && (time_digits(&p, 2, &m) != 0 || m > 59))
		return -1;
	if (*p != '\0')
		return -1;
	*offset_s = sign * (h * 3600L + m * 60L);
	return 0;
}

/* Rewrite an ISO 8601 timestamp in the database format; -1 if it is not one. */
int time_db_parse(const char *in, char out[32])
{
	int y, mo, d, h = 0, mi = 0, sec = 0;
	long us = 0, offset;
	const char *p = in;
	struct tm tm = { 0 }, back;
	time_t t;

	out[0] = '\0';
	if (time_digits(&p, 4, &y) != 0 || *p++ != '-' || time_digits(&p, 2, &mo) != 0 ||
	    *p++ != '-' || time_digits(&p, 2, &d) != 0)
		return -1;
	if (*p == 'T' || *p == 't' || (*p == ' ' && isdigit((unsigned char)p[1]))) {
		p++;
		if (time_digits(&p, 2, &h) != 0 || *p++ != ':' || time_digits(&p, 2, &mi) != 0)
			return -1;
		if (*p == ':') {
			p++;
			if (time_digits(&p, 2, &sec) != 0)
				return -1;
			if (*p == '.' || *p == ',') {
				int k = 0;

				if (!isdigit((unsigned char)*++p))
					return -1;
				for (; isdigit((unsigned char)*p); p++, k++)
					if (k < 6)
						us = us * 10 + (*p - '0');
				for (; k < 6; k++)
					us *= 10;
			}
		}
	}
	if (time_zone_parse(p, &offset) != 0 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
	    sec > 59)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (gmtime_r(&t, &back) == NULL || back.tm_mday != d || back.tm_mon != mo - 1)
		return -1;
	t -= offset;
	if (gmtime_r(&t, &back) == NULL || back.tm_year + 1900 < TIME_DB_YEAR_MIN ||
	    back.tm_year + 1900 > TIME_DB_YEAR_MAX)
		return -1;
	time_db((int64_t)t * 1000000 + us, out);
	return 0;
}

/* The cause of the first failed flush of standard output: the stream keeps only its
 * error flag, and a later flush finds nothing left to write. */
static int stdout_first_cause;

int stdout_flush(int earlier)
{
	int cause;

	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	/* errno is the cause when this flush failed; an earlier one lost it */
	cause = errno != 0 ? errno : earlier != 0 ? earlier : stdout_first_cause;
	if (cause == 0)
		cause = EIO;
	if (stdout_first_cause == 0)
		stdout_first_cause = cause;
	return cause;
}

int stdout_finish(const char *prog, int earlier)
{
	int cause = stdout_flush(earlier);

	if (cause != 0)
		fprintf(stderr,
		    "%s: writing standard output failed: %s; the output is incomplete\n", prog,
		    strerror(cause));
	return cause;
}

/* Format a message into err and return -1. */
int errbuf_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_velide(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

bool str_eq(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Copy a string into a bounded buffer, always terminated; returns strlen(src). */
size_t strlcpy_ap(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);

	if (n > 0) {
		size_t k = len < n - 1 ? len : n - 1;
		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return len;
}

char *str_elide(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src), head, tail, room;
	char mark[64];
	int m;

	if (len < n) {
		memcpy(dst, src, len + 1);
		return dst;
	}
	/* The marker's count is at most len; its length with it is what room is left for. */
	m = snprintf(mark, sizeof mark, " [... %zu bytes left out ...] ", len);
	room = n - 1 - (size_t)m;
	head = room * 2 / 3;
	tail = room - head;
	while (head > 0 && ((unsigned char)src[head] & 0xC0) == 0x80)
		head--;
	while (tail > 0 && ((unsigned char)src[len - tail] & 0xC0) == 0x80)
		tail--;
	m = snprintf(mark, sizeof mark, " [... %zu bytes left out ...] ", len - head - tail);
	memcpy(dst, src, head);
	memcpy(dst + head, mark, (size_t)m);
	memcpy(dst + head + (size_t)m, src + len - tail, tail);
	dst[head + (size_t)m + tail] = '\0';
	return dst;
}

void str_velide(char *dst, size_t n, const char *fmt, va_list ap)
{
	va_list again;
	char *whole;
	int len;

	va_copy(again, ap);
	len = vsnprintf(dst, n, fmt, ap);
	if (len >= 0 && (size_t)len >= n && n >= 64 && vasprintf(&whole, fmt, again) >= 0) {
		str_elide(dst, whole, n);
		free(whole);
	}
	va_end(again);
}

/* Read an open descriptor to its end, up to `max` bytes; 0, -EFBIG or -errno. */
int fd_read_all(int fd, size_t max, char **text, size_t *len)
{
	size_t cap = 0, n = 0;
	char *buf = NULL;
	int rc = 0;

	*text = NULL;
	*len = 0;
	for (;;) {
		ssize_t r;

		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 65536;
			if (cap > max + 2)
				cap = max + 2;
			buf = xrealloc(buf, cap);
		}
		if (n > max) {
			rc = -EFBIG;
			break;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (rc != 0) {
		free(buf);
		return rc;
	}
	buf = buf != NULL ? buf : xmalloc(1);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

/* Read a file whole, up to `max` bytes; 0, -EFBIG or -errno. */
int file_read_all(
    const char *path, size_t max, bool regular_only, char **text, size_t *len, bool *regular)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (regular_only ? O_NONBLOCK : 0));
	struct stat sb;
	int rc;

	*text = NULL;
	*len = 0;
	*regular = false;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) == 0)
		*regular = S_ISREG(sb.st_mode);
	if (regular_only && !*regular) {
		close(fd);
		return 0;
	}
	rc = fd_read_all(fd, max, text, len);
	close(fd);
	return rc;
}

/* Return 3 when `s` starts with EF BB BF. */
size_t utf8_bom_len(const char *s, size_t len)
{
	return len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

/* Create a directory and its missing parents; 0 or -errno. */
int mkdir_p(const char *path, unsigned mode)
{
	return mkdir_p_noting(path, mode, NULL, NULL);
}

int mkdir_p_noting(
    const char *path, unsigned mode, void (*made)(void *arg, const char *dir), void *arg)
{
	char *p = xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, (mode_t)mode) == 0) {
				if (made != NULL)
					made(arg, p);
			} else if (errno != EEXIST) {
				rc = -errno;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}
