#include <errno.h>
#include <string.h>

#include "proto/path.h"
#include "proto/schema.h"
#include "common/utf8.h"

/* Check a string's length, NUL bytes and UTF-8; a negative errno with err set. */
int proto_check_str(const struct proto_field *f, const void *s, size_t n,
    const struct proto_path *p, struct proto_err *err)
{
	const char *nul;
	size_t bad;

	if (n > (size_t)f->max) {
		proto_errf(err, p, "string of %zu bytes exceeds limit %lld", n, (long long)f->max);
		return -EMSGSIZE;
	}
	nul = memchr(s, '\0', n);
	if (nul != NULL) {
		proto_errf(err, p, "string holds a NUL byte at offset %zu",
		    (size_t)(nul - (const char *)s));
		return -EINVAL;
	}
	bad = utf8_check(s, n);
	if (bad < n) {
		proto_errf(err, p, "invalid UTF-8 at byte %zu", bad);
		return -EINVAL;
	}
	return 0;
}

/* Check an integer against the field's range; -EINVAL with err set. */
int proto_check_i64(
    const struct proto_field *f, int64_t v, const struct proto_path *p, struct proto_err *err)
{
	if (v < f->min || v > f->max) {
		proto_errf(err, p, "integer %lld out of range [%lld, %lld]", (long long)v,
		    (long long)f->min, (long long)f->max);
		return -EINVAL;
	}
	return 0;
}
