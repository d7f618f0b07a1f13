/* The incremental frame reader: bytes in, whole decoded messages out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "proto/wire.h"

#define READER_MIN_CAP 4096

/* Start an empty reader. */
void proto_reader_init(struct proto_reader *r, size_t max_frame)
{
	memset(r, 0, sizeof *r);
	r->max_frame = max_frame ? max_frame : PROTO_FRAME_MAX_DEFAULT;
}

/* Free the reader's buffer. */
void proto_reader_free(struct proto_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->off = r->cap = r->scan = 0;
}

/* Read the 4-byte big-endian length at p. */
static size_t be32(const uint8_t *p)
{
	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

/* Append n bytes, first dropping consumed frames from the front, then growing. */
static void reader_append(struct proto_reader *r, const uint8_t *p, size_t n)
{
	if (r->cap - r->len < n && r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->scan -= r->off;
		r->off = 0;
	}
	if (r->cap - r->len < n) {
		size_t cap = r->cap ? r->cap : READER_MIN_CAP;

		while (cap - r->len < n)
			cap *= 2;
		r->buf = xrealloc(r->buf, cap);
		r->cap = cap;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
}

/* Report a reader that already refused its peer. */
static int reader_dead(struct proto_err *err)
{
	snprintf(err->text, sizeof err->text, "reader: closed after an earlier error");
	return -1;
}

/* Buffer bytes; -1 with err set on a length over the limit. */
int proto_reader_feed(struct proto_reader *r, const void *data, size_t n, struct proto_err *err)
{
	const uint8_t *p = data;

	if (r->failed)
		return reader_dead(err);
	/* Take only as many bytes as complete the current header or body, so a bad header
	 * is seen before anything after it is buffered. */
	for (;;) {
		size_t have = r->len - r->scan, need, take, declared;

		if (have >= 4) {
			declared = be32(r->buf + r->scan);
			if (declared > r->max_frame) {
				r->failed = true;
				snprintf(err->text, sizeof err->text,
				    "frame: declared length %zu exceeds limit %zu", declared,
				    r->max_frame);
				return -1;
			}
			if (have - 4 >= declared) {
				r->scan += 4 + declared;
				continue;
			}
			need = 4 + declared - have;
		} else {
			need = 4 - have;
		}
		if (n == 0)
			return 0;
		take = n < need ? n : need;
		reader_append(r, p, take);
		p += take;
		n -= take;
	}
}

/* Decode the next whole frame: 1, 0 for none yet, -1 when malformed. */
int proto_reader_next(struct proto_reader *r, struct proto_msg *out, struct proto_err *err)
{
	size_t len;
	int rc;

	if (r->failed)
		return reader_dead(err);
	if (r->scan == r->off)
		return 0;
	len = be32(r->buf + r->off);
	rc = proto_decode(r->buf + r->off + 4, len, out, err);
	r->off += 4 + len;
	if (r->off == r->len)
		r->off = r->len = r->scan = 0;
	if (rc < 0) {
		r->failed = true;
		return -1;
	}
	return 1;
}

/* Say how much came of the frame not yet whole, if any. */
bool proto_reader_cut(const struct proto_reader *r, struct proto_err *err)
{
	size_t have = r->len - r->scan;

	if (have == 0)
		return false;
	if (have < 4)
		snprintf(err->text, sizeof err->text,
		    "frame: cut short by the end of the stream: %zu of the 4 bytes of its length came",
		    have);
	else
		snprintf(err->text, sizeof err->text,
		    "frame: cut short by the end of the stream: %zu of its %zu bytes came",
		    have - 4, be32(r->buf + r->scan));
	return true;
}
