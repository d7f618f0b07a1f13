/* op_arena: pieces are zeroed, aligned and apart; a release keeps blocks for reuse up to a
 * bound and frees the rest. */
#include "supervisor/sup.h"
#include "tests/unit/test.h"

#include <stdalign.h>
#include <stdint.h>

TEST(op_arena_pieces_are_zeroed_aligned_and_apart)
{
	static struct sup s;
	struct op_arena a = { 0 };
	unsigned char *p[600];
	size_t n[600];

	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < 600; i++) {
			/* mostly event-sized pieces, and a few larger than a block */
			n[i] = i % 97 == 0 ? 100000 + i : 200 + i % 300;
			p[i] = op_arena_alloc(&s, &a, n[i]);
			CHECK((uintptr_t)p[i] % alignof(max_align_t) == 0);
			for (size_t k = 0; k < n[i]; k++)
				CHECK(p[i][k] == 0);
			memset(p[i], (int)(i % 251) + 1, n[i]);
		}
		for (size_t i = 0; i < 600; i++)
			for (size_t k = 0; k < n[i]; k++)
				CHECK(p[i][k] == (unsigned char)(i % 251 + 1));
		op_arena_release(&s, &a);
		CHECK(a.head == NULL && a.used == 0);
		CHECK(s.op_nspare > 0 && s.op_nspare <= 64);
	}
	op_arena_free_spare(&s);
	CHECK(s.op_spare == NULL && s.op_nspare == 0);
}
