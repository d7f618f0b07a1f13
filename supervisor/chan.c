#include "supervisor/chan.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct chan_write {
	uv_write_t req;
	struct chan *c;
	struct proto_buf buf;
};

/* Initialise a channel on the loop; its pipe is opened or accepted into next. */
int chan_init(
    uv_loop_t *loop, struct chan *c, size_t max_frame, chan_msg_cb on_msg, chan_close_cb on_close)
{
	memset(c, 0, sizeof *c);
	proto_reader_init(&c->rd, max_frame);
	c->on_msg = on_msg;
	c->on_close = on_close;
	c->open = true;
	return uv_pipe_init(loop, &c->pipe, 0);
}

/* Release the reader and report the close. */
static void chan_closed_cb(uv_handle_t *h)
{
	struct chan *c = container_of((uv_pipe_t *)h, struct chan, pipe);
	char *why = c->why;

	proto_reader_free(&c->rd);
	proto_buf_free(&c->out);
	free(c->rbuf);
	c->rbuf = NULL;
	c->open = false;
	c->why = NULL;
	c->on_close(c, why);
	free(why);
}

/* Close the channel once, with a reason (NULL: clean). */
void chan_close(struct chan *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	c->why = why != NULL ? xstrdup(why) : NULL;
	uv_close((uv_handle_t *)&c->pipe, chan_closed_cb);
}

#define CHAN_READ_SIZE 65536

/* Hand libuv the channel's read buffer: its bytes are fed to the reader before the next
 * read. */
static void chan_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct chan *c = container_of((uv_pipe_t *)h, struct chan, pipe);

	(void)hint;
	if (c->rbuf == NULL)
		c->rbuf = xmalloc(CHAN_READ_SIZE);
	buf->base = c->rbuf;
	buf->len = CHAN_READ_SIZE;
}

/* A frame was refused as malformed: hand the reason to on_refused, or close at once. The
 * reader is not used again either way. */
static void chan_refuse(struct chan *c, const char *why)
{
	if (c->on_refused != NULL && !c->last && !c->closing)
		c->on_refused(c, why);
	else
		chan_close(c, why);
}

/* Stop reading a serial channel while a reply is being written. */
static void chan_read_pause(struct chan *c)
{
	if (c->reading && uv_read_stop((uv_stream_t *)&c->pipe) == 0)
		c->reading = false;
}

/* Hand buffered frames to on_msg: every one, or on a serial channel one at a time while
 * no reply is being written; reading resumes once the buffer is used up. A malformed
 * frame closes the channel. */
static void chan_dispatch(struct chan *c)
{
	struct proto_err err;
	struct proto_msg m;
	int rc;

	while (!c->closing && !c->last) {
		if (c->serial && c->queued > 0) {
			chan_read_pause(c);
			return;
		}
		if ((rc = proto_reader_next(&c->rd, &m, &err)) < 0) {
			chan_refuse(c, err.text);
			return;
		}
		if (rc == 0) {
			if (!c->reading && chan_start(c) != 0)
				chan_close(c, "cannot read the peer");
			return;
		}
		c->on_msg(c, &m);
	}
}

/* Feed bytes to the reader and dispatch the whole frames; close on any error. */
static void chan_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct chan *c = container_of((uv_pipe_t *)s, struct chan, pipe);
	struct proto_err err;

	(void)buf;
	if (n < 0) {
		/* A peer that half-closes in the middle of a frame is told so, when the
		 * channel tells its refusals (on_refused). */
		if (n == UV_EOF && c->on_refused != NULL && proto_reader_cut(&c->rd, &err)) {
			chan_refuse(c, err.text);
			return;
		}
		/* A peer that exits with our frames unread resets the connection: that is
		 * an end of stream like EOF, not a protocol error. */
		chan_close(c, n == UV_EOF || n == UV_ECONNRESET ? NULL : uv_strerror((int)n));
		return;
	}
	if (n > 0 && proto_reader_feed(&c->rd, buf->base, (size_t)n, &err) != 0) {
		chan_refuse(c, err.text);
		return;
	}
	chan_dispatch(c);
}

/* Start reading; a libuv error. */
int chan_start(struct chan *c)
{
	int rc = uv_read_start((uv_stream_t *)&c->pipe, chan_alloc_cb, chan_read_cb);

	c->reading = rc == 0;
	return rc;
}

/* Close once the queued output is written. */
void chan_close_after_write(struct chan *c)
{
	c->last = true;
	chan_read_pause(c);
	if (c->queued == 0)
		chan_close(c, NULL);
}

/* Free a finished write; a failed one closes the channel. */
static void chan_write_cb(uv_write_t *req, int status)
{
	struct chan_write *w = container_of(req, struct chan_write, req);

	assert(w->c->queued >= w->buf.len);
	w->c->queued -= w->buf.len;
	if (status < 0 && status != UV_ECANCELED)
		chan_close(w->c, uv_strerror(status));
	else if (w->c->queued == 0 && w->c->last)
		chan_close(w->c, NULL);
	else if (w->c->queued == 0 && w->c->serial)
		chan_dispatch(w->c);
	proto_buf_free(&w->buf);
	free(w);
}

/* Write the frames in c->out: at once when nothing is queued before them and the pipe
 * takes them, the rest (or all, on any error, which the write then reports) queued. A
 * serial channel's reply is always queued: its peer is not read again before the next
 * loop turn, so one peer that pipelines requests cannot hold the loop. */
static int chan_flush(struct chan *c)
{
	struct chan_write *w;
	size_t off = 0;
	uv_buf_t b;
	int rc;

	if (c->out.len == 0)
		return 0;
	if (c->closing) {
		proto_buf_reset(&c->out);
		return UV_EPIPE;
	}
	if (c->queued == 0 && !c->serial) {
		b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
		rc = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
		if (rc > 0)
			off = (size_t)rc;
	}
	if (off == c->out.len) {
		proto_buf_reset(&c->out);
		return 0;
	}
	w = xcalloc(1, sizeof *w);
	w->c = c;
	proto_buf_init(&w->buf);
	proto_buf_append(&w->buf, c->out.data + off, c->out.len - off);
	proto_buf_reset(&c->out);
	b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
	c->queued += w->buf.len;
	if ((rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, chan_write_cb)) != 0) {
		c->queued -= w->buf.len;
		proto_buf_free(&w->buf);
		free(w);
		chan_close(c, uv_strerror(rc));
		return rc;
	}
	/* A peer that does not read what it asked for is dropped before its replies pile up
	 * in memory. */
	if (c->max_queued > 0 &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > c->max_queued) {
		char why[160];

		snprintf(why, sizeof why,
		    "it does not read its replies (%zu bytes unread, the limit is %zu)",
		    uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe), c->max_queued);
		chan_close(c, why);
		return UV_ENOBUFS;
	}
	return 0;
}

/* Encode one message and write it, or gather it while the channel is corked; see chan.h
 * for the errors. */
int chan_send(struct chan *c, const struct proto_msg *m, struct proto_err *err)
{
	struct proto_err perr;
	int rc;

	if (c->closing)
		return UV_EPIPE;
	if ((rc = proto_msg_pack(m, &c->out, err != NULL ? err : &perr)) != 0) {
		log_error("cannot encode a %s message: %s", proto_type_name(m->type),
		    (err != NULL ? err : &perr)->text);
		return rc;
	}
	return c->corked ? 0 : chan_flush(c);
}

void chan_cork(struct chan *c)
{
	c->corked = true;
}

int chan_uncork(struct chan *c)
{
	c->corked = false;
	return chan_flush(c);
}
