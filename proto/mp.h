/* A bounds-checked cursor over raw msgpack bytes. Internal to proto/: it reads one item
 * header at a time and never allocates. */
#ifndef AUTOPACK_PROTO_MP_H
#define AUTOPACK_PROTO_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mp_kind {
	MP_NIL,
	MP_BOOL,
	MP_UINT, /* any integer >= 0, whatever its encoding */
	MP_NINT, /* any integer < 0 */
	MP_FLOAT,
	MP_STR,
	MP_BIN,
	MP_ARRAY,
	MP_MAP,
	MP_EXT,
};

struct mp_item {
	enum mp_kind kind;
	bool b;             /* MP_BOOL */
	uint64_t u;         /* MP_UINT */
	int64_t i;          /* MP_NINT */
	const uint8_t *ptr; /* MP_STR, MP_BIN, MP_EXT: the payload */
	uint32_t len;       /* payload bytes, or elements of an array, or entries of a map */
};

struct mp_cur {
	const uint8_t *p;
	const uint8_t *end;
};

enum mp_status {
	MP_OK = 0,
	MP_ETRUNC = -1,    /* the header itself is cut off */
	MP_ERESERVED = -2, /* the reserved type byte 0xc1 */
	MP_EPAYLOAD = -3,  /* str/bin/ext declares more bytes than remain; item is filled */
};

/* Start a cursor over n bytes at p. */
void mp_cur_init(struct mp_cur *c, const void *p, size_t n);
/* Bytes left after the cursor. */
size_t mp_cur_left(const struct mp_cur *c);
/* Read the next item's header (and step over a str/bin/ext payload; array elements and map
 * entries follow as separate items). Returns MP_OK or a negative mp_status; on error the
 * cursor does not move. */
int mp_next(struct mp_cur *c, struct mp_item *it);
/* Step over one whole item, containers included. The bytes must already have passed
 * proto_scan; returns MP_OK or a negative mp_status for bytes that did not. */
int mp_skip(struct mp_cur *c);
/* "string", "integer", ... for error texts. */
const char *mp_kind_name(enum mp_kind k);

#endif
