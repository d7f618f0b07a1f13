/* Structural check of one msgpack map before anything is decoded from it. Internal to
 * proto/. */
#ifndef AUTOPACK_PROTO_SCAN_H
#define AUTOPACK_PROTO_SCAN_H

#include <stddef.h>

#include "proto/wire.h"

/* Walk the len bytes at p and check that they are exactly one map; that every str, bin and
 * ext payload and every array or map fits in the bytes left (each element needs a byte,
 * each entry two) before anything is read from it; that nesting is at most
 * PROTO_DEPTH_MAX; that every map key is a string; and that no reserved byte appears.
 * Returns 0, or -1 with err naming the path ("frame.p.dl") and the reason. */
int proto_scan(const void *p, size_t len, struct proto_err *err);

#endif
