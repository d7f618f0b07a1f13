/* Dotted field paths ("job.p.dl[3]") for error texts, and error formatting. Internal to
 * proto/. */
#ifndef AUTOPACK_PROTO_PATH_H
#define AUTOPACK_PROTO_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define PROTO_PATH_TEXT 160
#define PROTO_PATH_SEGS 24

/* A path is kept as its segments (pointers into the frame being read), and formatted
 * only for an error message. */
struct proto_path {
	struct {
		const void *key; /* NULL: an index */
		size_t n;        /* the key's length, or the index */
	} seg[PROTO_PATH_SEGS];
	size_t len; /* segments in use; those past PROTO_PATH_SEGS are not kept */
};

/* Start a path at `root` ("frame", "job", ...). */
void proto_path_init(struct proto_path *p, const char *root);
/* Append ".key" (escaped, shortened if long); returns the length to restore with pop. */
size_t proto_path_push_key(struct proto_path *p, const void *key, size_t n);
/* Append "[i]"; returns the length to restore with pop. */
size_t proto_path_push_index(struct proto_path *p, uint64_t i);
/* Cut the path back to `len`. */
void proto_path_pop(struct proto_path *p, size_t len);
/* Set err to "<path>: <formatted reason>"; returns -1. */
int proto_errf(struct proto_err *err, const struct proto_path *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write at most `max` bytes of s[0..n) into out (size outsz) with non-printable bytes,
 * quotes and backslashes escaped, and "..." when shortened. */
void proto_escape(char *out, size_t outsz, const void *s, size_t n, size_t max);

#endif
