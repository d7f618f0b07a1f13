#include "tests/unit/mutate.h"

#include <string.h>

/* Advance the generator (a 64-bit LCG) and return its new state. */
static uint64_t mutate_next(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	return *seed;
}

size_t test_mutate(char *buf, size_t cap, const char *text, const char *alphabet, uint64_t *seed)
{
	size_t n = strlen(text), na = strlen(alphabet), k;
	int edits;

	if (n >= cap)
		n = cap - 1;
	memcpy(buf, text, n);
	edits = 1 + (int)((mutate_next(seed) >> 33) % 3);
	for (int e = 0; e < edits && n > 0; e++) {
		uint64_t r = mutate_next(seed);

		k = (size_t)((r >> 33) % n);
		switch ((r >> 20) % 4) {
		case 0: /* replace a byte */ buf[k] = alphabet[(r >> 40) % na]; break;
		case 1: /* cut the text */ n = k; break;
		case 2: /* insert a byte */
			if (n + 1 < cap) {
				memmove(buf + k + 1, buf + k, n - k);
				buf[k] = alphabet[(r >> 40) % na];
				n++;
			}
			break;
		default: /* delete a byte */ memmove(buf + k, buf + k + 1, n - k - 1); n--;
		}
	}
	buf[n] = '\0';
	return n;
}
