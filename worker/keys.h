/*
 * The provider keys of this worker. The supervisor hands them over on a pipe it sends on
 * the socket the worker made once not dumpable (proto/hand.h), or, run by hand, on an
 * inherited descriptor (--keys-fd): "NAME=value" entries separated by NUL bytes, read
 * once and closed. Keys given in the worker's own environment are taken too, and wiped
 * from it. They never travel in a frame, and nothing the worker starts inherits them.
 */
#ifndef AUTOPACK_KEYS_H
#define AUTOPACK_KEYS_H

#include <stddef.h>

#include "proto/hand.h"

#define KEYS_BYTES_MAX HAND_KEYS_MAX /* what the descriptor may hold */

/* Take the keys from the environment (wiping them there), then from descriptor `fd` when
 * it is not -1 (closing it). Returns 0, or -1 with `err` when the descriptor cannot be
 * read or holds something else. */
int keys_load(int fd, char *err, size_t errlen);
/* The key held for environment variable `variable` (ANTHROPIC_API_KEY, OPENAI_API_KEY),
 * or NULL. Before keys_load, the environment as it is now (for the unit tests). */
const char *keys_get(const char *variable);

#endif
