/* A table of distinct strings, or of distinct pairs of strings, each given a dense index
 * 0..n-1 in the order first added: an open addressing hash table (linear probing, at most
 * half full, doubling as it fills) over the caller's own strings. The table borrows its
 * keys: they must stay unchanged until strtab_free. Allocation failure aborts
 * (common/util.h). */
#ifndef AUTOPACK_STRTAB_H
#define AUTOPACK_STRTAB_H

#include <stdbool.h>
#include <stddef.h>

struct strtab {
	const char **key; /* key i, or pair i as key[2i], key[2i+1] */
	size_t *slot;     /* 1 + the index whose key(s) hash there; 0 when empty */
	size_t mask;      /* slots - 1 (a power of two) */
	size_t n;         /* distinct keys or pairs: the next index */
	size_t room;      /* keys or pairs key[] has room for */
	bool pairs;       /* a table of pairs (strtab_add_pair) */
};

/* Make t an empty table of strings (pairs false) or of pairs of strings (pairs true),
 * sized for `expect` keys without growing (0: the smallest). */
void strtab_init(struct strtab *t, size_t expect, bool pairs);
/* Find string s (not NULL) in a table of strings, or add it with the next index. Returns
 * its index; *added (when not NULL) says whether it was added. */
size_t strtab_add(struct strtab *t, const char *s, bool *added);
/* Find the pair (a, b) (neither NULL) in a table of pairs, or add it with the next index.
 * Returns its index; *added (when not NULL) says whether it was added. */
size_t strtab_add_pair(struct strtab *t, const char *a, const char *b, bool *added);
/* The string of index i (i < t->n), the one added first: in a table of pairs the pair's
 * first. */
const char *strtab_key(const struct strtab *t, size_t i);
/* The second string of pair i (i < t->n) in a table of pairs. */
const char *strtab_key2(const struct strtab *t, size_t i);
/* Free what the table holds (not its keys) and zero t: strtab_init makes it a table
 * again. */
void strtab_free(struct strtab *t);

#endif
