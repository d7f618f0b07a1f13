/* Random small edits of a text, for the tests that hold a reader to a reference reader
 * over many mutated inputs. */
#ifndef AUTOPACK_TEST_MUTATE_H
#define AUTOPACK_TEST_MUTATE_H

#include <stddef.h>
#include <stdint.h>

/* Copy `text` into buf (cap bytes) and make 1 to 3 edits to it, each a byte replaced by
 * one of `alphabet`, the text cut, a byte inserted or a byte deleted, drawn from the
 * generator state *seed (advanced). Stops early once the text is empty. Returns the new
 * length; buf is NUL-terminated. */
size_t test_mutate(char *buf, size_t cap, const char *text, const char *alphabet, uint64_t *seed);

#endif
