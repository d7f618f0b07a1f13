/* The frame reader takes bytes in pieces of any size and yields exactly the frames sent,
 * says how much came of a frame cut short, refuses oversize frames from their header
 * alone, and stays closed after an error. */
#include "common/util.h"
#include "proto/wire.h"
#include "tests/unit/proto_samples.h"
#include "tests/unit/test.h"

/* Every typical and min sample, packed back to back into b; returns how many. */
static size_t pack_all(struct proto_buf *b, struct proto_msg *msgs, size_t cap)
{
	size_t n = 0;

	for (int v = SAMPLE_MIN; v <= SAMPLE_TYPICAL; v++) {
		for (size_t i = 0; i < proto_sample_count(); i++) {
			CHECK(n < cap);
			proto_sample_build(i, (enum proto_sample_variant)v, &msgs[n]);
			CHECK_EQ_INT(proto_pack(&msgs[n], b), 0);
			n++;
		}
	}
	return n;
}

/* Take every whole frame out of r, checking each against want[*got]. */
static void drain(struct proto_reader *r, struct proto_msg *want, size_t nwant, size_t *got)
{
	struct proto_msg m;
	struct proto_err err;
	int rc;

	while ((rc = proto_reader_next(r, &m, &err)) == 1) {
		CHECK(*got < nwant);
		CHECK(proto_msg_equal(&m, &want[*got]));
		proto_msg_free(&m);
		(*got)++;
	}
	if (rc != 0) {
		fprintf(stderr, "reader: %s\n", err.text);
		exit(1);
	}
}

/* A small deterministic generator for split points. */
static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Free the expected messages. */
static void free_all(struct proto_msg *msgs, size_t n)
{
	for (size_t j = 0; j < n; j++)
		proto_msg_free(&msgs[j]);
}

TEST(proto_reader_yields_frames_fed_one_byte_at_a_time)
{
	struct proto_msg want[32];
	struct proto_buf b;
	struct proto_reader r;
	struct proto_err err;
	size_t n, got = 0;

	proto_buf_init(&b);
	n = pack_all(&b, want, ARRAY_SIZE(want));
	proto_reader_init(&r, 0);
	for (size_t k = 0; k < b.len; k++) {
		CHECK_EQ_INT(proto_reader_feed(&r, b.data + k, 1, &err), 0);
		drain(&r, want, n, &got);
	}
	CHECK_EQ_INT(got, n);
	CHECK_EQ_INT(r.len, 0);
	proto_reader_free(&r);
	proto_buf_free(&b);
	free_all(want, n);
}

TEST(proto_reader_says_how_much_came_of_a_frame_cut_short)
{
	struct proto_msg want[32];
	struct proto_buf b;
	struct proto_reader r;
	struct proto_err err;
	size_t n, got = 0, start = 0;
	char text[sizeof err.text];

	proto_buf_init(&b);
	n = pack_all(&b, want, ARRAY_SIZE(want));
	proto_reader_init(&r, 0);
	CHECK(!proto_reader_cut(&r, &err));
	for (size_t k = 0; k < b.len; k++) {
		const uint8_t *f = b.data + start;
		size_t have = k + 1 - start,
		       body = (size_t)f[0] << 24 | (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3];

		CHECK_EQ_INT(proto_reader_feed(&r, b.data + k, 1, &err), 0);
		if (k % 2 == 0) /* whole frames taken out, or left in: neither is a cut */
			drain(&r, want, n, &got);
		if (have >= 4 && have == 4 + body) {
			CHECK(!proto_reader_cut(&r, &err));
			start = k + 1;
			continue;
		}
		CHECK(proto_reader_cut(&r, &err));
		if (have < 4)
			snprintf(text, sizeof text,
			    "frame: cut short by the end of the stream: %zu of the 4 bytes of its "
			    "length came",
			    have);
		else
			snprintf(text, sizeof text,
			    "frame: cut short by the end of the stream: %zu of its %zu bytes came",
			    have - 4, body);
		CHECK_EQ_STR(err.text, text);
	}
	drain(&r, want, n, &got);
	CHECK_EQ_INT(got, n);
	CHECK(!proto_reader_cut(&r, &err));
	proto_reader_free(&r);
	proto_buf_free(&b);
	free_all(want, n);
}

TEST(proto_reader_yields_frames_fed_in_random_splits)
{
	struct proto_msg want[32];
	struct proto_buf b;
	struct proto_err err;
	uint32_t seed = 0x9e3779b9u;
	size_t n;

	proto_buf_init(&b);
	n = pack_all(&b, want, ARRAY_SIZE(want));
	for (int round = 0; round < 200; round++) {
		struct proto_reader r;
		size_t off = 0, got = 0;
		/* small pieces in some rounds, pieces spanning several frames in others */
		uint32_t span = round % 2 ? 7 : 2000;

		proto_reader_init(&r, 0);
		while (off < b.len) {
			size_t k = 1 + xorshift(&seed) % span;

			if (k > b.len - off)
				k = b.len - off;
			CHECK_EQ_INT(proto_reader_feed(&r, b.data + off, k, &err), 0);
			off += k;
			if (xorshift(&seed) % 3 != 0)
				drain(&r, want, n, &got);
		}
		drain(&r, want, n, &got);
		CHECK_EQ_INT(got, n);
		proto_reader_free(&r);
	}
	proto_buf_free(&b);
	free_all(want, n);
}

TEST(proto_reader_yields_many_frames_from_one_feed)
{
	struct proto_msg want[32];
	struct proto_buf b;
	struct proto_reader r;
	struct proto_err err;
	size_t n, got = 0;

	proto_buf_init(&b);
	n = pack_all(&b, want, ARRAY_SIZE(want));
	proto_reader_init(&r, 0);
	CHECK_EQ_INT(proto_reader_feed(&r, b.data, b.len, &err), 0);
	drain(&r, want, n, &got);
	CHECK_EQ_INT(got, n);
	proto_reader_free(&r);
	proto_buf_free(&b);
	free_all(want, n);
}

TEST(proto_reader_refuses_oversize_frame_from_its_header)
{
	static const uint8_t bytes[] = { 0x01, 0x00, 0x00, 0x00, 0x80, 0x80, 0x80, 0x80 };
	struct proto_reader r;
	struct proto_err err;
	struct proto_msg m;

	proto_reader_init(&r, 0);
	CHECK_EQ_INT(proto_reader_feed(&r, bytes, sizeof bytes, &err), -1);
	CHECK_EQ_STR(err.text, "frame: declared length 16777216 exceeds limit 4194304");
	CHECK_EQ_INT(r.len, 4); /* nothing after the header was buffered */
	CHECK_EQ_INT(proto_reader_next(&r, &m, &err), -1);
	CHECK_EQ_STR(err.text, "reader: closed after an earlier error");
	CHECK_EQ_INT(proto_reader_feed(&r, bytes, 1, &err), -1);
	proto_reader_free(&r);
}

TEST(proto_reader_accepts_frame_of_exactly_the_limit)
{
	struct proto_msg m = { .type = PROTO_SHUTDOWN }, back;
	struct proto_buf b;
	struct proto_reader r;
	struct proto_err err;
	size_t len;

	proto_buf_init(&b);
	CHECK_EQ_INT(proto_pack(&m, &b), 0);
	len = b.len - 4;
	proto_reader_init(&r, len);
	CHECK_EQ_INT(proto_reader_feed(&r, b.data, b.len, &err), 0);
	CHECK_EQ_INT(proto_reader_next(&r, &back, &err), 1);
	proto_msg_free(&back);
	proto_reader_free(&r);
	proto_reader_init(&r, len - 1);
	CHECK_EQ_INT(proto_reader_feed(&r, b.data, b.len, &err), -1);
	CHECK(strstr(err.text, "exceeds limit") != NULL);
	proto_reader_free(&r);
	proto_buf_free(&b);
}

TEST(proto_reader_does_not_allocate_what_a_header_declares)
{
	/* a header declaring the full 4 MiB, then one byte of it */
	static const uint8_t bytes[] = { 0x00, 0x40, 0x00, 0x00, 0x80 };
	struct proto_reader r;
	struct proto_err err;
	struct proto_msg m;

	proto_reader_init(&r, 0);
	CHECK_EQ_INT(proto_reader_feed(&r, bytes, sizeof bytes, &err), 0);
	CHECK_EQ_INT(proto_reader_next(&r, &m, &err), 0);
	CHECK(r.cap <= 4096);
	proto_reader_free(&r);
}

TEST(proto_reader_closes_after_a_malformed_frame)
{
	/* a valid cancel, then a frame holding {"v": 1, "t": "nope"} */
	static const uint8_t nope[] = { 0x00, 0x00, 0x00, 0x0b, 0x82, 0xa1, 'v', 0x01, 0xa1, 't',
		0xa4, 'n', 'o', 'p', 'e' };
	struct proto_msg m = { .type = PROTO_CANCEL }, back;
	struct proto_buf b;
	struct proto_reader r;
	struct proto_err err;

	proto_buf_init(&b);
	m.u.cancel.attempt_id = 3;
	CHECK_EQ_INT(proto_pack(&m, &b), 0);
	proto_buf_append(&b, nope, sizeof nope);
	CHECK_EQ_INT(proto_pack(&m, &b), 0);
	proto_reader_init(&r, 0);
	CHECK_EQ_INT(proto_reader_feed(&r, b.data, b.len, &err), 0);
	CHECK_EQ_INT(proto_reader_next(&r, &back, &err), 1);
	CHECK(proto_msg_equal(&m, &back));
	proto_msg_free(&back);
	CHECK_EQ_INT(proto_reader_next(&r, &back, &err), -1);
	CHECK_EQ_STR(err.text, "t: unknown message type \"nope\"");
	CHECK_EQ_INT(back.type, 0);
	CHECK_EQ_INT(proto_reader_next(&r, &back, &err), -1);
	CHECK_EQ_STR(err.text, "reader: closed after an earlier error");
	proto_reader_free(&r);
	proto_buf_free(&b);
}

TEST(proto_reader_refuses_empty_frame)
{
	static const uint8_t empty[] = { 0, 0, 0, 0 };
	struct proto_reader r;
	struct proto_err err;
	struct proto_msg m;

	proto_reader_init(&r, 0);
	CHECK_EQ_INT(proto_reader_feed(&r, empty, sizeof empty, &err), 0);
	CHECK_EQ_INT(proto_reader_next(&r, &m, &err), -1);
	CHECK_EQ_STR(err.text, "frame: empty, expected a map");
	proto_reader_free(&r);
}

TEST(proto_reader_reuses_its_buffer_across_frames)
{
	struct proto_msg m = { .type = PROTO_ACK }, back;
	struct proto_buf b;
	struct proto_reader r;
	struct proto_err err;

	proto_buf_init(&b);
	m.u.ack.attempt_id = 1;
	CHECK_EQ_INT(proto_pack(&m, &b), 0);
	proto_reader_init(&r, 0);
	for (int k = 0; k < 10000; k++) {
		m.u.ack.seq = (uint64_t)k;
		proto_buf_reset(&b);
		CHECK_EQ_INT(proto_pack(&m, &b), 0);
		CHECK_EQ_INT(proto_reader_feed(&r, b.data, b.len, &err), 0);
		CHECK_EQ_INT(proto_reader_next(&r, &back, &err), 1);
		CHECK_EQ_INT(back.u.ack.seq, k);
		proto_msg_free(&back);
	}
	CHECK(r.cap <= 4096);
	proto_reader_free(&r);
	proto_buf_free(&b);
}
