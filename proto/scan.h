/* Structural check of one msgpack map before anything is decoded from it. Internal to
 * proto/. */
#ifndef AUTOPACK_PROTO_SCAN_H
#define AUTOPACK_PROTO_SCAN_H

#include <stddef.h>

#include "proto/mp.h"
#include "proto/wire.h"

/* The top map's "v" and "t" values as the scan met them, so that decoding need not walk
 * the top map for them again. */
struct proto_scan_top {
	struct mp_item v, t;
	bool have_v, have_t;
	char dup; /* the first of 'v' and 't' met a second time, or 0 */
};

/* Walk the len bytes at p and check that they are exactly one map; that every str, bin and
 * ext payload and every array or map fits in the bytes left (each element needs a byte,
 * each entry two) before anything is read from it; that nesting is at most
 * PROTO_DEPTH_MAX; that every map key is a string; and that no reserved byte appears.
 * Returns 0, or -1 with err naming the path ("frame.p.dl") and the reason. */
int proto_scan(const void *p, size_t len, struct proto_err *err);
/* Check the one value at *cur, inside `depth` containers, as proto_scan checks every value,
 * and step *cur over it; 0, or -1 (the reason is not kept). */
int proto_scan_value(struct mp_cur *cur, int depth);
/* proto_scan, also filling *top from the top map's keys. */
int proto_scan_top(const void *p, size_t len, struct proto_err *err, struct proto_scan_top *top);
/* proto_decode without its one walk over frames packed the usual way: the whole map is
 * scanned first, then decoded (proto_decode falls back to this for any frame its one walk
 * does not accept, and the fuzzer checks that both agree). */
int proto_decode_scanned(const void *map, size_t len, struct proto_msg *out, struct proto_err *err);

#endif
