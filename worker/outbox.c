/* The window of unacknowledged events (see outbox.h). */
#include "worker/outbox.h"
#include "common/util.h"

#include <assert.h>
#include <stdlib.h>

/* Start an empty window of cap events. */
void outbox_init(struct outbox *o, size_t cap)
{
	assert(cap >= 1 && cap <= OUTBOX_CAP_MAX);
	*o = (struct outbox){ .cap = cap };
	o->frames = xcalloc(cap, sizeof *o->frames);
	for (size_t i = 0; i < cap; i++)
		proto_buf_init(&o->frames[i]);
}

/* Free the kept frames. */
void outbox_free(struct outbox *o)
{
	for (size_t i = 0; i < o->cap; i++)
		proto_buf_free(&o->frames[i]);
	free(o->frames);
	o->frames = NULL;
}

/* Begin an attempt with nothing sent. */
void outbox_start(struct outbox *o, uint64_t attempt_id)
{
	for (size_t i = 0; i < o->cap; i++)
		proto_buf_reset(&o->frames[i]);
	o->attempt_id = attempt_id;
	o->sent = o->acked = 0;
}

/* Count the events sent and not acknowledged. */
size_t outbox_pending(const struct outbox *o)
{
	assert(o->acked <= o->sent);
	return (size_t)(o->sent - o->acked);
}

/* Whether the next event must wait for an ack. */
bool outbox_full(const struct outbox *o)
{
	return outbox_pending(o) >= o->cap;
}

/* The seq the next event gets. */
uint64_t outbox_next_seq(const struct outbox *o)
{
	return o->sent + 1;
}

/* Keep a copy of the next event's frame; returns its seq. */
uint64_t outbox_add(struct outbox *o, const uint8_t *frame, size_t len)
{
	struct proto_buf *b;

	assert(!outbox_full(o));
	b = &o->frames[++o->sent % o->cap];
	assert(b->len == 0);
	proto_buf_append(b, frame, len);
	return o->sent;
}

/* Release the events an ack covers; -1 for an event never sent. */
int outbox_ack(struct outbox *o, uint64_t attempt_id, uint64_t seq)
{
	if (attempt_id != o->attempt_id)
		return 0;
	if (seq > o->sent)
		return -1;
	for (; o->acked < seq; o->acked++)
		proto_buf_reset(&o->frames[(o->acked + 1) % o->cap]);
	assert(outbox_pending(o) <= o->cap);
	return 0;
}
