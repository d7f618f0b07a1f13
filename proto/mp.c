#include "proto/mp.h"

#include <string.h>

/* Start a cursor over n bytes. */
void mp_cur_init(struct mp_cur *c, const void *p, size_t n)
{
	c->p = p;
	c->end = c->p + n;
}

/* Bytes left after the cursor. */
size_t mp_cur_left(const struct mp_cur *c)
{
	return (size_t)(c->end - c->p);
}

/* Read a big-endian unsigned integer of n bytes. */
static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t k = 0; k < n; k++)
		v = v << 8 | p[k];
	return v;
}

/* Fill `it` with a signed value, folding non-negative ones into MP_UINT. */
static void set_int(struct mp_item *it, int64_t v)
{
	if (v >= 0) {
		it->kind = MP_UINT;
		it->u = (uint64_t)v;
	} else {
		it->kind = MP_NINT;
		it->i = v;
	}
}

/* Sign-extend the low `bits` bits of v. */
static int64_t sext(uint64_t v, unsigned bits)
{
	uint64_t m = 1ull << (bits - 1);

	v &= bits == 64 ? ~0ull : (1ull << bits) - 1;
	return (int64_t)((v ^ m) - m);
}

/* The shape of a type byte: how many header bytes follow and what they mean. */
struct mp_shape {
	enum mp_kind kind;
	uint8_t extra;  /* header bytes after the type byte */
	bool sized;     /* extra holds a length / count */
	uint8_t fixed;  /* fixext payload size */
	bool is_signed; /* extra holds a signed integer */
};

/* Describe the type byte b; returns false for the reserved 0xc1. */
static bool shape_of(uint8_t b, struct mp_shape *s)
{
	memset(s, 0, sizeof *s);
	if (b <= 0x7f || b >= 0xe0) {
		s->kind = MP_UINT;
		return true;
	}
	if (b >= 0x80 && b <= 0x8f) {
		s->kind = MP_MAP;
		return true;
	}
	if (b >= 0x90 && b <= 0x9f) {
		s->kind = MP_ARRAY;
		return true;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		s->kind = MP_STR;
		return true;
	}
	switch (b) {
	case 0xc0: s->kind = MP_NIL; return true;
	case 0xc2:
	case 0xc3: s->kind = MP_BOOL; return true;
	case 0xc4:
		s->kind = MP_BIN;
		s->extra = 1;
		s->sized = true;
		return true;
	case 0xc5:
		s->kind = MP_BIN;
		s->extra = 2;
		s->sized = true;
		return true;
	case 0xc6:
		s->kind = MP_BIN;
		s->extra = 4;
		s->sized = true;
		return true;
	case 0xc7:
		s->kind = MP_EXT;
		s->extra = 2;
		s->sized = true;
		return true;
	case 0xc8:
		s->kind = MP_EXT;
		s->extra = 3;
		s->sized = true;
		return true;
	case 0xc9:
		s->kind = MP_EXT;
		s->extra = 5;
		s->sized = true;
		return true;
	case 0xca:
		s->kind = MP_FLOAT;
		s->extra = 4;
		return true;
	case 0xcb:
		s->kind = MP_FLOAT;
		s->extra = 8;
		return true;
	case 0xcc:
		s->kind = MP_UINT;
		s->extra = 1;
		return true;
	case 0xcd:
		s->kind = MP_UINT;
		s->extra = 2;
		return true;
	case 0xce:
		s->kind = MP_UINT;
		s->extra = 4;
		return true;
	case 0xcf:
		s->kind = MP_UINT;
		s->extra = 8;
		return true;
	case 0xd0:
		s->kind = MP_UINT;
		s->extra = 1;
		s->is_signed = true;
		return true;
	case 0xd1:
		s->kind = MP_UINT;
		s->extra = 2;
		s->is_signed = true;
		return true;
	case 0xd2:
		s->kind = MP_UINT;
		s->extra = 4;
		s->is_signed = true;
		return true;
	case 0xd3:
		s->kind = MP_UINT;
		s->extra = 8;
		s->is_signed = true;
		return true;
	case 0xd4:
		s->kind = MP_EXT;
		s->extra = 1;
		s->fixed = 1;
		return true;
	case 0xd5:
		s->kind = MP_EXT;
		s->extra = 1;
		s->fixed = 2;
		return true;
	case 0xd6:
		s->kind = MP_EXT;
		s->extra = 1;
		s->fixed = 4;
		return true;
	case 0xd7:
		s->kind = MP_EXT;
		s->extra = 1;
		s->fixed = 8;
		return true;
	case 0xd8:
		s->kind = MP_EXT;
		s->extra = 1;
		s->fixed = 16;
		return true;
	case 0xd9:
		s->kind = MP_STR;
		s->extra = 1;
		s->sized = true;
		return true;
	case 0xda:
		s->kind = MP_STR;
		s->extra = 2;
		s->sized = true;
		return true;
	case 0xdb:
		s->kind = MP_STR;
		s->extra = 4;
		s->sized = true;
		return true;
	case 0xdc:
		s->kind = MP_ARRAY;
		s->extra = 2;
		s->sized = true;
		return true;
	case 0xdd:
		s->kind = MP_ARRAY;
		s->extra = 4;
		s->sized = true;
		return true;
	case 0xde:
		s->kind = MP_MAP;
		s->extra = 2;
		s->sized = true;
		return true;
	case 0xdf:
		s->kind = MP_MAP;
		s->extra = 4;
		s->sized = true;
		return true;
	default: return false; /* 0xc1 */
	}
}

/* Read an item whose type byte b carries its whole header (fixint, fixmap, fixarray,
 * fixstr, nil): the common case, without the table of shapes. */
static int next_fixed(struct mp_cur *c, struct mp_item *it, uint8_t b)
{
	const uint8_t *p = c->p;

	memset(it, 0, sizeof *it);
	it->ptr = p + 1;
	if (b <= 0x7f) {
		it->kind = MP_UINT;
		it->u = b;
	} else if (b >= 0xe0) {
		it->kind = MP_NINT;
		it->i = (int8_t)b;
	} else if (b <= 0x8f) {
		it->kind = MP_MAP;
		it->len = b & 0x0f;
	} else if (b <= 0x9f) {
		it->kind = MP_ARRAY;
		it->len = b & 0x0f;
	} else if (b <= 0xbf) {
		it->kind = MP_STR;
		it->len = b & 0x1f;
		if (it->len > (size_t)(c->end - p) - 1)
			return MP_EPAYLOAD;
		c->p = p + 1 + it->len;
		return MP_OK;
	} else {
		it->kind = MP_NIL;
	}
	c->p = p + 1;
	return MP_OK;
}

/* Read the next item's header; an error code on a malformed or truncated item. */
int mp_next(struct mp_cur *c, struct mp_item *it)
{
	struct mp_shape s;
	const uint8_t *p = c->p;
	size_t left = mp_cur_left(c), hdr, payload = 0;
	uint8_t b;

	if (left < 1)
		return MP_ETRUNC;
	b = p[0];
	if (b <= 0xc0 || b >= 0xe0)
		return next_fixed(c, it, b);
	if (!shape_of(b, &s))
		return MP_ERESERVED;
	hdr = 1 + (size_t)s.extra;
	if (left < hdr)
		return MP_ETRUNC;
	memset(it, 0, sizeof *it);
	it->kind = s.kind;
	switch (s.kind) {
	case MP_NIL: break;
	case MP_BOOL: it->b = b == 0xc3; break;
	case MP_UINT:
		if (s.extra == 0)
			set_int(it, (int8_t)b);
		else if (s.is_signed)
			set_int(it, sext(be(p + 1, s.extra), 8u * s.extra));
		else
			it->u = be(p + 1, s.extra);
		break;
	case MP_FLOAT: break;
	case MP_STR:
	case MP_BIN:
	case MP_ARRAY:
	case MP_MAP:
		if (s.sized)
			it->len = (uint32_t)be(p + 1, s.extra);
		else
			it->len = b & (s.kind == MP_STR ? 0x1f : 0x0f);
		if (s.kind == MP_STR || s.kind == MP_BIN)
			payload = it->len;
		break;
	case MP_EXT:
		/* ext 8/16/32 carry length then type; fixext carry the type only */
		it->len = s.fixed ? s.fixed : (uint32_t)be(p + 1, s.extra - 1u);
		payload = it->len;
		break;
	case MP_NINT: break;
	}
	it->ptr = p + hdr;
	if (payload > left - hdr)
		return MP_EPAYLOAD;
	c->p = p + hdr + payload;
	return MP_OK;
}

/* Skip the next item and everything inside it; an error code when malformed. */
int mp_skip(struct mp_cur *c)
{
	struct mp_cur save = *c;
	struct mp_item it;
	uint64_t pending = 1;
	int rc;

	/* Iterative: each container adds its elements to the count of items still to read. */
	while (pending > 0) {
		rc = mp_next(c, &it);
		if (rc != MP_OK) {
			*c = save;
			return rc;
		}
		pending--;
		if (it.kind == MP_ARRAY)
			pending += it.len;
		else if (it.kind == MP_MAP)
			pending += 2ull * it.len;
	}
	return MP_OK;
}

/* Name an item kind for error messages. */
const char *mp_kind_name(enum mp_kind k)
{
	switch (k) {
	case MP_NIL: return "nil";
	case MP_BOOL: return "boolean";
	case MP_UINT: return "integer";
	case MP_NINT: return "integer";
	case MP_FLOAT: return "float";
	case MP_STR: return "string";
	case MP_BIN: return "binary";
	case MP_ARRAY: return "array";
	case MP_MAP: return "map";
	case MP_EXT: return "extension";
	}
	return "unknown";
}
