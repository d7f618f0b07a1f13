/* The window of unacknowledged events (see outbox.h). */
#include "worker/outbox.h"

#include <assert.h>

/* Start an empty window of cap events. */
void outbox_init(struct outbox *o, size_t cap)
{
	assert(cap >= 1 && cap <= OUTBOX_CAP_MAX);
	*o = (struct outbox){ .cap = cap };
}

/* Begin an attempt with nothing sent. */
void outbox_start(struct outbox *o, uint64_t attempt_id)
{
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

/* Count the next event as sent; returns its seq. */
uint64_t outbox_add(struct outbox *o)
{
	assert(!outbox_full(o));
	return ++o->sent;
}

/* Release the events an ack covers; -1 for an event never sent. */
int outbox_ack(struct outbox *o, uint64_t attempt_id, uint64_t seq)
{
	if (attempt_id != o->attempt_id)
		return 0;
	if (seq > o->sent)
		return -1;
	if (seq > o->acked)
		o->acked = seq;
	assert(outbox_pending(o) <= o->cap);
	return 0;
}
