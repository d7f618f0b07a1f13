/* Capturing a check command's output stream into its log file with a cap on its size. */
#include "worker/capture.h"
#include "common/util.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void capture_init(struct capture *c, int in, int out)
{
	memset(c, 0, sizeof *c);
	c->in = in;
	c->out = out;
	fcntl(in, F_SETFL, fcntl(in, F_GETFL) | O_NONBLOCK);
}

/* Write all of buf to the file, counting what it took in c->kept when the bytes are the
 * stream's (`own`, not the marker); a failure is recorded once and the bytes are lost. */
static void capture_write(struct capture *c, const char *buf, size_t n, bool own)
{
	while (n > 0 && c->write_errno == 0) {
		ssize_t w = write(c->out, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			c->write_errno = w < 0 ? errno : EIO;
			return;
		}
		buf += w;
		n -= (size_t)w;
		if (own)
			c->kept += (uint64_t)w;
	}
}

/* Keep bytes past the head in the ring, the oldest overwritten. */
static void capture_keep(struct capture *c, const char *buf, size_t n)
{
	if (c->tail == NULL)
		c->tail = xmalloc(CAPTURE_TAIL_MAX);
	while (n > 0) {
		size_t k = CAPTURE_TAIL_MAX - c->tail_end;

		if (k > n)
			k = n;
		memcpy(c->tail + c->tail_end, buf, k);
		c->tail_end = (c->tail_end + k) % CAPTURE_TAIL_MAX;
		c->tail_len = c->tail_len + k > CAPTURE_TAIL_MAX ? CAPTURE_TAIL_MAX :
		                                                   c->tail_len + k;
		buf += k;
		n -= k;
	}
}

/* Keep the last CAPTURE_LAST_MAX bytes of the stream. */
static void capture_last_keep(struct capture *c, const char *buf, size_t n)
{
	if (n >= CAPTURE_LAST_MAX) {
		memcpy(c->last, buf + n - CAPTURE_LAST_MAX, CAPTURE_LAST_MAX);
		c->last_len = CAPTURE_LAST_MAX;
		return;
	}
	if (c->last_len + n > CAPTURE_LAST_MAX) {
		size_t drop = c->last_len + n - CAPTURE_LAST_MAX;

		memmove(c->last, c->last + drop, c->last_len - drop);
		c->last_len -= drop;
	}
	memcpy(c->last + c->last_len, buf, n);
	c->last_len += n;
}

size_t capture_last(const struct capture *c, char *out, size_t n)
{
	size_t k = c->last_len < n - 1 ? c->last_len : n - 1;

	memcpy(out, c->last + c->last_len - k, k);
	out[k] = '\0';
	for (size_t i = 0; i < k; i++)
		if ((unsigned char)out[i] < 0x20 && out[i] != '\n')
			out[i] = ' ';
	return k;
}

int capture_read(struct capture *c)
{
	/* Static, off the stack (all of it under a small `ulimit -s`): the worker reads one
	 * stream at a time, on its one thread, and keeps nothing here between calls. */
	static char buf[65536];
	int reads = 0;

	/* At most 1 MiB a call: a stream that never pauses still leaves the caller its turn. */
	while (c->in >= 0 && reads++ < 16) {
		ssize_t n = read(c->in, buf, sizeof buf);
		size_t k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n <= 0) {
			int e = errno;

			c->in = -1;
			errno = e;
			return n == 0 ? 0 : -1;
		}
		c->total += (uint64_t)n;
		capture_last_keep(c, buf, (size_t)n);
		k = c->head < CAPTURE_HEAD_MAX ? CAPTURE_HEAD_MAX - c->head : 0;
		if (k > (size_t)n)
			k = (size_t)n;
		if (k > 0) {
			capture_write(c, buf, k, true);
			c->head += k;
		}
		if ((size_t)n > k)
			capture_keep(c, buf + k, (size_t)n - k);
	}
	return c->in >= 0 ? 1 : 0;
}

uint64_t capture_finish(struct capture *c)
{
	uint64_t dropped = c->total - c->head - c->tail_len;

	if (c->tail != NULL) {
		size_t start = (c->tail_end + CAPTURE_TAIL_MAX - c->tail_len) % CAPTURE_TAIL_MAX;
		size_t first = start + c->tail_len > CAPTURE_TAIL_MAX ? CAPTURE_TAIL_MAX - start :
		                                                        c->tail_len;

		if (dropped > 0) {
			char mark[256];
			int n = snprintf(mark, sizeof mark,
			    "\n[autopack: %llu bytes of output dropped here; this log keeps the "
			    "first %u and the last %u bytes of %llu]\n",
			    (unsigned long long)dropped, CAPTURE_HEAD_MAX, CAPTURE_TAIL_MAX,
			    (unsigned long long)c->total);

			capture_write(c, mark, (size_t)n, false);
		}
		capture_write(c, c->tail + start, first, true);
		capture_write(c, c->tail, c->tail_len - first, true);
		free(c->tail);
		c->tail = NULL;
	}
	return dropped;
}
