/*
 * The events of the running attempt that were sent and not yet acknowledged, counted. The
 * supervisor acknowledges an event (ack {att, seq}: every event up to seq) only once it is
 * committed: a bounded window of at most `cap` unacknowledged events. When the window is
 * full the worker waits for acks before it sends the next event (backpressure). No event
 * is ever sent twice (a worker whose socket breaks ends, and its attempt with it), so
 * none is kept. The result follows the events on the same socket:
 * the supervisor commits an attempt's end in the transaction of its events or after them,
 * and acknowledges them with that commit. The next job may come first (a lease opened
 * ahead): the events still kept are then dropped, and acks of them ignored.
 */
#ifndef AUTOPACK_OUTBOX_H
#define AUTOPACK_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBOX_CAP_DEFAULT 64
#define OUTBOX_CAP_MAX 4096

struct outbox {
	uint64_t attempt_id;
	uint64_t sent;  /* seq of the last event sent (0: none) */
	uint64_t acked; /* every event up to this seq is acknowledged */
	size_t cap;
};

/* Start an empty outbox keeping at most `cap` (1..OUTBOX_CAP_MAX) events. */
void outbox_init(struct outbox *o, size_t cap);
/* Begin attempt `attempt_id`: no event sent yet, the next seq is 1. Events of the previous
 * attempt not acknowledged are forgotten. */
void outbox_start(struct outbox *o, uint64_t attempt_id);
/* The events sent and not acknowledged. */
size_t outbox_pending(const struct outbox *o);
/* Whether the window is full: the next event must wait for an ack. */
bool outbox_full(const struct outbox *o);
/* The seq the next event gets. */
uint64_t outbox_next_seq(const struct outbox *o);
/* Count the next event (its seq is outbox_next_seq) as sent; the window must not be full.
 * Returns its seq. */
uint64_t outbox_add(struct outbox *o);
/* Apply an ack: events of `attempt_id` up to `seq` are released. An ack of another attempt
 * is ignored (0). Returns 0, or -1 when the ack names an event that was never sent. */
int outbox_ack(struct outbox *o, uint64_t attempt_id, uint64_t seq);

#endif
