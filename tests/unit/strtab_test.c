#include "common/strtab.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>

TEST(strtab_gives_each_string_the_next_index_when_first_added)
{
	struct strtab t;
	bool added;

	strtab_init(&t, 0, false);
	CHECK_EQ_INT(strtab_add(&t, "tests", &added), 0);
	CHECK(added);
	CHECK_EQ_INT(strtab_add(&t, "docs", &added), 1);
	CHECK(added);
	CHECK_EQ_INT(strtab_add(&t, "tests", &added), 0);
	CHECK(!added);
	CHECK_EQ_INT(strtab_add(&t, "", &added), 2);
	CHECK(added);
	CHECK_EQ_INT(strtab_add(&t, "docs", NULL), 1);
	CHECK_EQ_INT(t.n, 3);
	CHECK_EQ_STR(strtab_key(&t, 0), "tests");
	CHECK_EQ_STR(strtab_key(&t, 1), "docs");
	CHECK_EQ_STR(strtab_key(&t, 2), "");
	strtab_free(&t);
	CHECK(t.slot == NULL && t.key == NULL && t.n == 0);
}

/* An equal string found again gives back the pointer added first (what interning
 * needs), never the one looked up with. */
TEST(strtab_keeps_the_first_copy_of_equal_strings)
{
	char a[] = "implementation", b[] = "implementation";
	struct strtab t;

	strtab_init(&t, 1, false);
	CHECK(strtab_key(&t, strtab_add(&t, a, NULL)) == a);
	CHECK(strtab_key(&t, strtab_add(&t, b, NULL)) == a);
	CHECK_EQ_INT(t.n, 1);
	strtab_free(&t);
}

/* Pairs are equal only when both strings are: (a, bc) and (ab, c) are two pairs, and a
 * string table would take "a" and "a" as one key. */
TEST(strtab_pairs_differ_when_either_string_does)
{
	struct strtab t;
	bool added;

	strtab_init(&t, 0, true);
	CHECK_EQ_INT(strtab_add_pair(&t, "a", "bc", &added), 0);
	CHECK(added);
	CHECK_EQ_INT(strtab_add_pair(&t, "ab", "c", &added), 1);
	CHECK(added);
	CHECK_EQ_INT(strtab_add_pair(&t, "a", "c", &added), 2);
	CHECK(added);
	CHECK_EQ_INT(strtab_add_pair(&t, "c", "a", &added), 3);
	CHECK(added);
	CHECK_EQ_INT(strtab_add_pair(&t, "ab", "c", &added), 1);
	CHECK(!added);
	CHECK_EQ_INT(strtab_add_pair(&t, "a", "bc", NULL), 0);
	CHECK_EQ_INT(t.n, 4);
	CHECK_EQ_STR(strtab_key(&t, 3), "c");
	CHECK_EQ_STR(strtab_key2(&t, 3), "a");
	CHECK_EQ_STR(strtab_key(&t, 1), "ab");
	CHECK_EQ_STR(strtab_key2(&t, 1), "c");
	strtab_free(&t);
}

/* Grown from the smallest table past many doublings, and sized ahead for them, every key
 * keeps its index and every index its key; the table stays at most half full. */
TEST(strtab_keeps_every_index_as_it_grows)
{
	const size_t N = 20000;
	char(*name)[16] = xcalloc(N, sizeof *name);

	for (size_t i = 0; i < N; i++)
		snprintf(name[i], sizeof name[i], "cat%zu", i);
	for (size_t expect = 0; expect <= N; expect += N) {
		struct strtab s, p;

		strtab_init(&s, expect, false);
		strtab_init(&p, expect, true);
		for (size_t i = 0; i < N; i++) {
			bool added;

			CHECK_EQ_INT(strtab_add(&s, name[i], &added), i);
			CHECK(added);
			/* (cat_i, cat_{i%7}): the same first strings as s, in pairs of their own. */
			CHECK_EQ_INT(strtab_add_pair(&p, name[i], name[i % 7], &added), i);
			CHECK(added);
			CHECK(2 * s.n <= s.mask + 1 && 2 * p.n <= p.mask + 1);
		}
		for (size_t i = N; i-- > 0;) {
			bool added;

			CHECK_EQ_INT(strtab_add(&s, name[i], &added), i);
			CHECK(!added);
			CHECK_EQ_INT(strtab_add_pair(&p, name[i], name[i % 7], &added), i);
			CHECK(!added);
			CHECK(strtab_key(&s, i) == name[i]);
			CHECK(strtab_key(&p, i) == name[i] && strtab_key2(&p, i) == name[i % 7]);
		}
		CHECK_EQ_INT(strtab_add_pair(&p, name[1], name[2], NULL), N);
		CHECK_EQ_INT(s.n, N);
		CHECK_EQ_INT(p.n, N + 1);
		strtab_free(&s);
		strtab_free(&p);
	}
	free(name);
}

/* Keys that all hash to the last of 16 slots are told apart by their text: each probe
 * wraps past the table's end and walks past the others. */
TEST(strtab_tells_apart_keys_whose_probes_collide)
{
	struct strtab t;
	char name[8][8];
	size_t n = 0;

	for (size_t i = 0; i < 4096 && n < 8; i++) {
		char s[8];

		snprintf(s, sizeof s, "k%zu", i);
		if ((str_hash(s) & 15) == 15)
			strlcpy_ap(name[n++], s, sizeof name[0]);
	}
	CHECK_EQ_INT(n, 8);
	strtab_init(&t, 0, false);
	CHECK_EQ_INT(t.mask, 15);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ_INT(strtab_add(&t, name[i], NULL), i);
	CHECK_EQ_INT(t.mask, 15);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ_INT(strtab_add(&t, name[i], NULL), i);
	/* The ninth key doubles the table: every key is placed again and still found. */
	CHECK_EQ_INT(strtab_add(&t, "k", NULL), 8);
	CHECK_EQ_INT(t.mask, 31);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ_INT(strtab_add(&t, name[i], NULL), i);
	CHECK_EQ_STR(strtab_key(&t, 8), "k");
	strtab_free(&t);
}
