/* Helpers shared by the unit tests that work on database files in the test's own
 * temporary directory (the current directory). Failures end the test via CHECK. */
#ifndef AUTOPACK_TESTUTIL_H
#define AUTOPACK_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/store/store.h"

/* The absolute path of `name` in the current directory (heap string). */
char *test_path(const char *name);
/* Read up to 1 MiB of a file into a heap buffer; *len receives its length. */
char *test_slurp(const char *path, size_t *len);
/* Run `sql` on the SQLite file at `path` directly, outside the store (creates it). */
void test_sql(const char *path, const char *sql);
/* The integer result of `sql` on the file at `path`, opened read-only. */
int64_t test_count(const char *path, const char *sql);
/* The integer result of `sql` on an open store. */
int64_t test_query(struct store *st, const char *sql);
/* Create a new autopack database `name` in the current directory and open it for
 * writing into `st`. */
void test_store_new(struct store *st, const char *name);

#endif
