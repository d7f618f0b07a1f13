/* A minimal unit-test harness. TEST(name) { ... } registers a test; the runner
 * (tests/unit/main.c) lists them (--list) or runs one by name, in the current directory,
 * which the caller makes a fresh temporary directory. A failed CHECK prints where and
 * exits 1. */
#ifndef AUTOPACK_TEST_H
#define AUTOPACK_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
	struct test_case *next;
};

void test_register(struct test_case *tc);

#define TEST(name)                                                                                 \
	static void test_##name(void);                                                             \
	static struct test_case test_case_##name = { #name, test_##name, 0 };                      \
	__attribute__((constructor)) static void test_reg_##name(void)                             \
	{                                                                                          \
		test_register(&test_case_##name);                                                  \
	}                                                                                          \
	static void test_##name(void)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (a_ != b_) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,        \
			    __LINE__, #a, #b, a_, b_);                                             \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                             \
			fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__,    \
			    __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");             \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_NEAR(a, b, eps)                                                                      \
	do {                                                                                       \
		double a_ = (a), b_ = (b);                                                         \
		if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps))) {                                     \
			fprintf(stderr, "%s:%d: %s ~= %s failed: %.6f != %.6f\n", __FILE__,        \
			    __LINE__, #a, #b, a_, b_);                                             \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#endif
