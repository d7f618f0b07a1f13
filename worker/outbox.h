/*
 * The events of the running attempt that were sent and not yet acknowledged. The
 * supervisor acknowledges an event (ack {att, seq}: every event up to seq) only once it is
 * committed, so the worker keeps each event until then: a bounded window of at most `cap`
 * unacknowledged events. When the window is full the worker waits for acks before it
 * sends the next event (backpressure). The result follows the events on the same socket:
 * the supervisor commits an attempt's end in the transaction of its events or after them,
 * and acknowledges them with that commit. The next job may come first (a lease opened
 * ahead): the events still kept are then dropped, and acks of them ignored.
 */
#ifndef AUTOPACK_OUTBOX_H
#define AUTOPACK_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define OUTBOX_CAP_DEFAULT 64
#define OUTBOX_CAP_MAX 4096

struct outbox {
	uint64_t attempt_id;
	uint64_t sent;  /* seq of the last event sent (0: none) */
	uint64_t acked; /* every event up to this seq is acknowledged */
	size_t cap;
	struct proto_buf *frames; /* the frame of seq s at frames[s % cap] */
};

/* Start an empty outbox keeping at most `cap` (1..OUTBOX_CAP_MAX) events. */
void outbox_init(struct outbox *o, size_t cap);
/* Release the kept frames. */
void outbox_free(struct outbox *o);
/* Begin attempt `attempt_id`: no event sent yet, the next seq is 1. Events of the previous
 * attempt still kept are dropped. */
void outbox_start(struct outbox *o, uint64_t attempt_id);
/* The events sent and not acknowledged. */
size_t outbox_pending(const struct outbox *o);
/* Whether the window is full: the next event must wait for an ack. */
bool outbox_full(const struct outbox *o);
/* The seq the next event gets. */
uint64_t outbox_next_seq(const struct outbox *o);
/* Keep a copy of the frame of the next event (its seq is outbox_next_seq); the window
 * must not be full. Returns its seq. */
uint64_t outbox_add(struct outbox *o, const uint8_t *frame, size_t len);
/* Apply an ack: events of `attempt_id` up to `seq` are released. An ack of another attempt
 * is ignored (0). Returns 0, or -1 when the ack names an event that was never sent. */
int outbox_ack(struct outbox *o, uint64_t attempt_id, uint64_t seq);

#endif
