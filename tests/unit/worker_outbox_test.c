/* The worker's window of unacknowledged events: bounded, released by acks of its own
 * attempt only, refusing an ack of an event never sent. */
#include "tests/unit/test.h"
#include "worker/outbox.h"

TEST(outbox_window_fills_and_acks_release_it)
{
	struct outbox o;

	outbox_init(&o, 3);
	outbox_start(&o, 7);
	CHECK_EQ_INT(outbox_next_seq(&o), 1);
	CHECK_EQ_INT(outbox_add(&o), 1);
	CHECK_EQ_INT(outbox_add(&o), 2);
	CHECK(!outbox_full(&o));
	CHECK_EQ_INT(outbox_add(&o), 3);
	CHECK(outbox_full(&o));
	CHECK_EQ_INT(outbox_pending(&o), 3);

	/* An ack of another attempt changes nothing. */
	CHECK_EQ_INT(outbox_ack(&o, 6, 3), 0);
	CHECK(outbox_full(&o));
	/* Acks release up to their seq; an old ack is harmless. */
	CHECK_EQ_INT(outbox_ack(&o, 7, 1), 0);
	CHECK_EQ_INT(outbox_pending(&o), 2);
	CHECK(!outbox_full(&o));
	CHECK_EQ_INT(outbox_add(&o), 4);
	CHECK(outbox_full(&o));
	CHECK_EQ_INT(outbox_ack(&o, 7, 0), 0);
	CHECK_EQ_INT(outbox_pending(&o), 3);
	CHECK_EQ_INT(outbox_ack(&o, 7, 4), 0);
	CHECK_EQ_INT(outbox_pending(&o), 0);
}

TEST(outbox_refuses_an_ack_of_an_event_never_sent)
{
	struct outbox o;

	outbox_init(&o, 2);
	outbox_start(&o, 1);
	outbox_add(&o);
	CHECK_EQ_INT(outbox_ack(&o, 1, 2), -1);
	CHECK_EQ_INT(outbox_pending(&o), 1);
}

TEST(outbox_new_attempt_starts_at_seq_one)
{
	struct outbox o;

	outbox_init(&o, 1);
	outbox_start(&o, 1);
	outbox_add(&o);
	CHECK(outbox_full(&o));
	/* What the last attempt left unacknowledged is forgotten; its acks are ignored. */
	outbox_start(&o, 2);
	CHECK_EQ_INT(outbox_pending(&o), 0);
	CHECK_EQ_INT(outbox_next_seq(&o), 1);
	CHECK_EQ_INT(outbox_ack(&o, 1, 1), 0);
	CHECK_EQ_INT(outbox_pending(&o), 0);
}
