/* Packing, framing and strict decoding of the messages in proto/proto.h. */
#ifndef AUTOPACK_WIRE_H
#define AUTOPACK_WIRE_H

#include "proto/proto.h"

/* A growable byte buffer holding one or more encoded frames. */
struct proto_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

void proto_buf_init(struct proto_buf *b);
void proto_buf_free(struct proto_buf *b);
void proto_buf_reset(struct proto_buf *b);
/* Append n bytes (aborts on out of memory). */
void proto_buf_append(struct proto_buf *b, const void *p, size_t n);

/* Why a frame was refused: the field as a dotted path and the reason, e.g.
 * "job.p.dl[3]: expected string, got integer", "event: missing field \"seq\"". Structural
 * errors (lengths, nesting, truncation) are named from "frame", e.g. "frame.x: ...". */
struct proto_err {
	char text[256];
};

/* Append `m` as one frame (length prefix + map) to `b`. Every value is checked against the
 * limits the decoder applies, so whatever packs decodes. Returns 0; -EMSGSIZE if the
 * encoded map exceeds PROTO_FRAME_MAX_DEFAULT or a string or list exceeds its limit;
 * -EINVAL for a NULL required string, invalid UTF-8, an integer out of its field's range,
 * or an unknown type or event kind. On error b is unchanged. */
int proto_pack(const struct proto_msg *m, struct proto_buf *b);
/* proto_pack that also says which field was refused and why. */
int proto_msg_pack(const struct proto_msg *m, struct proto_buf *b, struct proto_err *err);
/* Pack the entries "cap", "llm" and "est" of job `j` (keys and values, checked as
 * proto_msg_pack checks them) into `out`, emptied first, for j->shared: a job whose
 * `shared` points at them packs to the same bytes. Returns 0, or a negative errno with
 * `err` set and `out` empty. */
int proto_job_pack_shared(const struct proto_job *j, struct proto_buf *out, struct proto_err *err);

/* Decode one msgpack map of `len` bytes (no length prefix) into `out`. Every declared
 * length is checked against the bytes left before anything is allocated for it, and the
 * nesting depth is bounded (in one walk for a map packed as proto_pack packs one, else a
 * walk without allocating first); the map is decoded strictly: wrong v, unknown t, missing, mistyped, duplicate or out-of-range
 * fields are refused; unknown keys are ignored. Returns 0, or -1 with `err` set; on error
 * nothing is left allocated in `out`. */
int proto_decode(const void *map, size_t len, struct proto_msg *out, struct proto_err *err);

/* Release everything a decoded (or hand-built with heap strings) message owns, and zero it. */
void proto_msg_free(struct proto_msg *m);
/* The strings of a decoded event (its uuid and its body's): where each is held, its
 * length with its NUL, and their sum. */
struct proto_strings {
	char **at[2 * PROTO_FIELDS_MAX];
	size_t len[2 * PROTO_FIELDS_MAX];
	size_t n;
	size_t bytes;
};
/* Note the strings of ev in *ss. Cannot fail. */
void proto_event_strings(struct proto_event *ev, struct proto_strings *ss);
/* Copy the strings noted in *ss into `to` (ss->bytes bytes, which the caller keeps as long
 * as the event), free the originals and point the event at the copies: the event then
 * owns nothing, and must not be given to proto_msg_free. Cannot fail. */
void proto_strings_move(const struct proto_strings *ss, char *to);
/* Whether a and b are the same message, field by field. */
bool proto_msg_equal(const struct proto_msg *a, const struct proto_msg *b);

/* Incremental frame reader: feed bytes as they arrive, in pieces of any size. */
struct proto_reader {
	uint8_t *buf;
	size_t len; /* bytes buffered */
	size_t off; /* start of the next unread frame */
	size_t cap;
	size_t max_frame; /* largest map accepted */
	size_t scan;      /* end of the last frame known to be whole */
	bool failed;      /* a frame was refused: the peer must be dropped */
};

/* Start an empty reader; max_frame 0 means PROTO_FRAME_MAX_DEFAULT. */
void proto_reader_init(struct proto_reader *r, size_t max_frame);
/* Release the buffer; call proto_reader_init again before reusing r. */
void proto_reader_free(struct proto_reader *r);
/* Buffer `n` more bytes. Returns 0, or -1 with `err` set when the pending frame declares a
 * length over max_frame (nothing of that frame is buffered beyond its header) or the reader
 * already refused a frame. Memory grows with the bytes fed, never with a declared length. */
int proto_reader_feed(struct proto_reader *r, const void *data, size_t n, struct proto_err *err);
/* Take the next whole frame: 1 with `out` filled, 0 when more bytes are needed, -1 with
 * `err` set when the frame is malformed (the reader is then unusable: drop the peer). */
int proto_reader_next(struct proto_reader *r, struct proto_msg *out, struct proto_err *err);
/* Whether bytes of a frame not yet whole are buffered (what an end of stream then cuts
 * short): true with `err` saying how much of it came, false when none are. */
bool proto_reader_cut(const struct proto_reader *r, struct proto_err *err);

/* Names used on the wire; "unknown" for a value that is not a type or kind. */
const char *proto_type_name(enum proto_type t);
const char *proto_event_kind_name(enum proto_event_kind k);

#endif
