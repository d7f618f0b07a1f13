/* libFuzzer target for the frame reader and the strict decoder. Each input is decoded
 * directly as one map and read as a stream of frames, once in one piece and once in small
 * pieces. Properties checked (abort on violation):
 *   - the decoder's one walk and the exact decoding (scan, then decode) agree on every map;
 *   - whatever decodes packs again, and the packed frame decodes to an equal message;
 *   - the frames yielded from the one-piece feed are a prefix of those from the split feed,
 *     all of them when neither run fails, and both runs agree on whether the stream fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/scan.h"
#include "proto/wire.h"

#define FUZZ_MAX_FRAME 2048

/* Abort with a message: a property failed. */
static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "PROPERTY FAILED: %s: %s\n", what, detail);
	abort();
}

/* Pack m, decode the frame again and require an equal message; appends the frame to out. */
static void check_roundtrip(const struct proto_msg *m, struct proto_buf *out)
{
	struct proto_msg back;
	struct proto_err err;
	size_t start = out->len;

	if (proto_msg_pack(m, out, &err) != 0)
		fail("a decoded message does not pack", err.text);
	if (proto_decode(out->data + start + 4, out->len - start - 4, &back, &err) != 0)
		fail("a packed message does not decode", err.text);
	if (!proto_msg_equal(m, &back))
		fail("round trip", "decoded message differs from the one packed");
	proto_msg_free(&back);
}

struct run {
	struct proto_buf frames; /* every yielded message, re-packed */
	size_t count;
	int failed;
};

/* Take every whole frame from r into run; returns -1 once the reader refused. */
static int run_drain(struct proto_reader *r, struct run *run)
{
	struct proto_msg m;
	struct proto_err err;
	int rc;

	while ((rc = proto_reader_next(r, &m, &err)) == 1) {
		check_roundtrip(&m, &run->frames);
		proto_msg_free(&m);
		run->count++;
	}
	return rc;
}

/* Feed data to a fresh reader in pieces of 1..16 bytes (piece == 0: all at once). */
static void run_stream(const uint8_t *data, size_t size, int pieces, struct run *run)
{
	struct proto_reader r;
	struct proto_err err;
	uint32_t state = (uint32_t)size * 2654435761u + 1;
	size_t off = 0;

	proto_buf_init(&run->frames);
	run->count = 0;
	run->failed = 0;
	proto_reader_init(&r, FUZZ_MAX_FRAME);
	while (off < size && !run->failed) {
		size_t k = size - off;

		if (pieces) {
			state = state * 1103515245u + 12345u;
			k = 1 + (state >> 16) % 16;
			if (k > size - off)
				k = size - off;
		}
		if (proto_reader_feed(&r, data + off, k, &err) < 0 || run_drain(&r, run) < 0)
			run->failed = 1;
		off += k;
	}
	if (!run->failed && run_drain(&r, run) < 0)
		run->failed = 1;
	proto_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_msg m, exact;
	struct proto_err err, exact_err;
	struct proto_buf scratch;
	struct run whole, split;

	proto_buf_init(&scratch);
	if (proto_decode(data, size, &m, &err) == 0) {
		check_roundtrip(&m, &scratch);
		if (proto_decode_scanned(data, size, &exact, &exact_err) != 0)
			fail("one walk", exact_err.text);
		if (!proto_msg_equal(&m, &exact))
			fail("one walk", "decodes differently from the exact decoding");
		proto_msg_free(&exact);
		proto_msg_free(&m);
	} else if (m.type != 0 || err.text[0] == '\0') {
		fail("refused map", "left a type set or no error text");
	} else if (proto_decode_scanned(data, size, &exact, &exact_err) == 0 ||
	    strcmp(err.text, exact_err.text) != 0) {
		fail("one walk", "refuses differently from the exact decoding");
	}
	proto_buf_free(&scratch);

	run_stream(data, size, 0, &whole);
	run_stream(data, size, 1, &split);
	if (whole.failed != split.failed)
		fail("split feed", "one-piece and split feeds disagree on failure");
	if (whole.count > split.count || whole.frames.len > split.frames.len ||
	    (whole.frames.len > 0 &&
	        memcmp(whole.frames.data, split.frames.data, whole.frames.len) != 0))
		fail("split feed", "one-piece frames are not a prefix of the split frames");
	if (!whole.failed && (whole.count != split.count || whole.frames.len != split.frames.len))
		fail("split feed", "one-piece and split feeds yield different frames");
	proto_buf_free(&whole.frames);
	proto_buf_free(&split.frames);
	return 0;
}
