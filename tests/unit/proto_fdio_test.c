/* A frame channel over a socket says when the message it returned last came from a read,
 * in that call, of all the socket held, and nothing of that read is left
 * (proto_fd_emptied). */
#include "proto/fdio.h"
#include "tests/unit/proto_samples.h"
#include "tests/unit/test.h"

#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

/* Acks enough for two reads and more (each some 40 bytes; fewer than a socket buffer
 * holds, so that they are written before any is read). */
#define ACKS_MANY 2500

/* Queue `n` ack samples on `to` and write them in one go. */
static void send_acks(struct proto_fd *to, size_t n)
{
	struct proto_err err;
	struct proto_msg m;

	for (size_t i = 0; i < n; i++) {
		proto_sample_build(SAMPLE_ACK, SAMPLE_TYPICAL, &m);
		CHECK_EQ_INT(proto_fd_queue(to, &m, &err), 0);
		proto_msg_free(&m);
	}
	CHECK_EQ_INT(proto_fd_flush(to), 0);
}

/* Take one message from `c`, waiting at most timeout_ms: 1 when one came, else 0. */
static int take(struct proto_fd *c, int timeout_ms)
{
	struct proto_err err;
	struct proto_msg m;
	enum proto_fd_rc rc = proto_fd_recv(c, &m, timeout_ms, &err);

	CHECK(rc == PROTO_FD_MSG || rc == PROTO_FD_TIMEOUT);
	if (rc == PROTO_FD_MSG) {
		CHECK_EQ_INT(m.type, PROTO_ACK);
		proto_msg_free(&m);
	}
	return rc == PROTO_FD_MSG;
}

TEST(proto_fd_emptied_once_its_read_took_all_the_socket_held)
{
	struct proto_fd a, b;
	size_t n;
	int sv[2];

	CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	proto_fd_init(&a, sv[0], 0);
	proto_fd_init(&b, sv[1], 0);
	CHECK(!proto_fd_emptied(&a)); /* nothing read yet */

	/* One frame: the read took it all. */
	send_acks(&b, 1);
	CHECK_EQ_INT(take(&a, -1), 1);
	CHECK(proto_fd_emptied(&a));

	/* Two frames in one read: not while the second is left, nor once it is taken
	 * without a read of its own (the socket may have taken more since). */
	send_acks(&b, 2);
	CHECK_EQ_INT(take(&a, -1), 1);
	CHECK(!proto_fd_emptied(&a));
	CHECK_EQ_INT(take(&a, 0), 1);
	CHECK(!proto_fd_emptied(&a));
	CHECK_EQ_INT(take(&a, 0), 0);
	CHECK(!proto_fd_emptied(&a));

	/* One frame again, by a zero-wait receive: its read took it all. */
	send_acks(&b, 1);
	CHECK_EQ_INT(take(&a, 0), 1);
	CHECK(proto_fd_emptied(&a));

	/* More than one read takes (64 KiB): not after the first read, which was full;
	 * whenever it says so, a receive right after finds nothing. */
	send_acks(&b, ACKS_MANY);
	CHECK_EQ_INT(take(&a, -1), 1);
	CHECK(!proto_fd_emptied(&a));
	for (n = 1;; n++) {
		bool emptied = proto_fd_emptied(&a);

		if (!take(&a, 0))
			break;
		CHECK(!emptied);
	}
	CHECK_EQ_INT(n, ACKS_MANY);

	/* A zero-timeout receive that finds nothing leaves it as it was. */
	send_acks(&b, 1);
	CHECK_EQ_INT(take(&a, -1), 1);
	CHECK(proto_fd_emptied(&a));
	CHECK_EQ_INT(take(&a, 0), 0);
	CHECK(proto_fd_emptied(&a));
	proto_fd_free(&a);
	proto_fd_free(&b);
	close(sv[0]);
	close(sv[1]);
}
