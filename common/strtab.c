#include "common/strtab.h"
#include "common/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The hash of a key: a string's, or a pair's from its two strings'. */
static size_t strtab_hash(const char *a, const char *b)
{
	uint64_t h = str_hash(a);

	if (b != NULL)
		h = h * 31 + str_hash(b);
	return (size_t)h;
}

/* The first empty slot from hash h on. */
static size_t strtab_free_slot(const struct strtab *t, size_t h)
{
	size_t i = h & t->mask;

	while (t->slot[i] != 0)
		i = (i + 1) & t->mask;
	return i;
}

void strtab_init(struct strtab *t, size_t expect, bool pairs)
{
	size_t cap = 16;

	while (cap < 2 * expect)
		cap *= 2;
	memset(t, 0, sizeof *t);
	t->pairs = pairs;
	t->mask = cap - 1;
	t->slot = xcalloc(cap, sizeof *t->slot);
	t->room = expect > 8 ? expect : 8;
	t->key = xcalloc(t->room * (pairs ? 2 : 1), sizeof *t->key);
}

/* Make room for one more key: double the slots once it would be more than half full
 * (every index placed again by its hash), and the keys' array once it is full. */
static void strtab_grow(struct strtab *t)
{
	size_t width = t->pairs ? 2 : 1;

	if (2 * (t->n + 1) > t->mask + 1) {
		free(t->slot);
		t->mask = 2 * (t->mask + 1) - 1;
		t->slot = xcalloc(t->mask + 1, sizeof *t->slot);
		for (size_t i = 0; i < t->n; i++) {
			const char *b = t->pairs ? t->key[2 * i + 1] : NULL;

			t->slot[strtab_free_slot(t, strtab_hash(t->key[width * i], b))] = i + 1;
		}
	}
	if (t->n == t->room) {
		t->room *= 2;
		t->key = xrealloc(t->key, t->room * width * sizeof *t->key);
	}
}

/* Find the key a (with b in a table of pairs) or add it: its index and whether added. */
static size_t strtab_find_add(struct strtab *t, const char *a, const char *b, bool *added)
{
	size_t h = strtab_hash(a, b), i;

	for (i = h & t->mask; t->slot[i] != 0; i = (i + 1) & t->mask) {
		size_t k = t->slot[i] - 1;

		if (!t->pairs && strcmp(t->key[k], a) == 0)
			break;
		if (t->pairs && strcmp(t->key[2 * k], a) == 0 && strcmp(t->key[2 * k + 1], b) == 0)
			break;
	}
	if (added != NULL)
		*added = t->slot[i] == 0;
	if (t->slot[i] != 0)
		return t->slot[i] - 1;
	if (2 * (t->n + 1) > t->mask + 1 || t->n == t->room) {
		strtab_grow(t);
		i = strtab_free_slot(t, h);
	}
	if (t->pairs) {
		t->key[2 * t->n] = a;
		t->key[2 * t->n + 1] = b;
	} else {
		t->key[t->n] = a;
	}
	t->slot[i] = ++t->n;
	return t->n - 1;
}

size_t strtab_add(struct strtab *t, const char *s, bool *added)
{
	return strtab_find_add(t, s, NULL, added);
}

size_t strtab_add_pair(struct strtab *t, const char *a, const char *b, bool *added)
{
	return strtab_find_add(t, a, b, added);
}

const char *strtab_key(const struct strtab *t, size_t i)
{
	return t->key[t->pairs ? 2 * i : i];
}

const char *strtab_key2(const struct strtab *t, size_t i)
{
	return t->key[2 * i + 1];
}

void strtab_free(struct strtab *t)
{
	free(t->slot);
	free(t->key);
	memset(t, 0, sizeof *t);
}
