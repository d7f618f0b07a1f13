#include "common/relpath.h"
#include "common/utf8.h"
#include "common/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Name the rule the bytes at s break among the characters no path may hold, or return
 * NULL; *skip is set to the bytes to step over. */
static const char *relpath_char_rule(const unsigned char *s, size_t *skip)
{
	*skip = 1;
	if (*s == '\\')
		return "backslashes are not allowed";
	if (*s < 0x20 || *s == 0x7f || (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f))
		return "control characters are not allowed";
	if (s[0] == 0xe2 &&
	    ((s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) ||
	        (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9)))
		return "bidirectional-text controls (U+202A-U+202E, U+2066-U+2069) are not "
		       "allowed";
	return NULL;
}

/* Name the rule one component of length k breaks (its length, its spaces), or return
 * NULL. */
static const char *relpath_component_rule(const char *s, size_t k)
{
	if (k > RELPATH_NAME_MAX)
		return "a component is longer than 255 bytes (the file system's NAME_MAX)";
	if (k > 0 && (s[0] == ' ' || s[k - 1] == ' '))
		return "a component is blank or starts or ends with a space";
	return NULL;
}

const char *relpath_norm(const char *in, char *out, size_t n)
{
	const char *s = in;
	size_t len = 0;

	if (in[0] == '\0')
		return "empty path";
	if (in[0] == '/')
		return "absolute paths are not allowed";
	while (*s != '\0') {
		size_t skip;
		const char *rule;

		/* printable ASCII but the backslash breaks no rule */
		if (*s > 0x20 && *s < 0x7f && *s != '\\') {
			s++;
			continue;
		}
		if ((rule = relpath_char_rule((const unsigned char *)s, &skip)) != NULL)
			return rule;
		s += skip;
	}
	s = in;
	while (*s != '\0') {
		const char *e = strchr(s, '/');
		size_t k = e != NULL ? (size_t)(e - s) : strlen(s);
		const char *rule = relpath_component_rule(s, k);

		if (rule != NULL)
			return rule;

		if (k == 2 && s[0] == '.' && s[1] == '.')
			return "'..' components are not allowed";
		/* In any case: a case-folding file system (ext4's casefold, vfat, CIFS) opens
		 * .git for .GIT. */
		if (k == 4 && strncasecmp(s, ".git", 4) == 0)
			return "the .git directory is reserved";
		if (k == 9 && strncasecmp(s, ".autopack", 9) == 0 && len == 0)
			return "the .autopack directory is reserved";
		if (k > 0 && !(k == 1 && s[0] == '.')) {
			if (len + k + 2 > n)
				return "path too long";
			if (len > 0)
				out[len++] = '/';
			memcpy(out + len, s, k);
			len += k;
		}
		s += k;
		if (*s == '/')
			s++;
	}
	out[len] = '\0';
	return len == 0 ? "names the workspace itself, not a file in it" : NULL;
}

bool relpath_under(const char *rel, const char *entry)
{
	size_t k = strlen(entry);

	return strncmp(rel, entry, k) == 0 && (rel[k] == '\0' || rel[k] == '/');
}

const char *relpath_file(const char *in, char *out, size_t n)
{
	const char *rule = relpath_norm(in, out, n);
	size_t k = strlen(in);

	if (rule == NULL && in[k - 1] == '/')
		return "ends with \"/\": it names a directory, not a file";
	return rule;
}

/* Order paths component by component ("/" below every other byte), so that a path is
 * followed at once by the paths under it. */
static int relpath_cmp(const void *a, const void *b)
{
	const unsigned char *x = **(const unsigned char *const *const *)a;
	const unsigned char *y = **(const unsigned char *const *const *)b;

	for (; *x != '\0' && *x == *y; x++, y++)
		;
	if (*x == *y)
		return 0;
	if (*x == '\0' || *y == '\0')
		return *x == '\0' ? -1 : 1;
	if (*x == '/' || *y == '/')
		return *x == '/' ? -1 : 1;
	return *x < *y ? -1 : 1;
}

int relpath_files_check(
    const char *what, const char *const *paths, size_t count, char *why, size_t n)
{
	char norm[PATH_MAX + 1], shown_a[101], shown_b[101];
	/* One path has no other to clash with: its normal form is not kept. */
	char ***sorted = count > 1 ? xcalloc(count, sizeof *sorted) : NULL;
	char **names = count > 1 ? xcalloc(count, sizeof *names) : NULL;
	int rc = 0;
	size_t i;

	for (i = 0; i < count; i++) {
		const char *rule = relpath_file(paths[i], norm, sizeof norm);

		if (rule != NULL) {
			snprintf(why, n, "%s[%zu] \"%s\": %s", what, i,
			    utf8_one_line(shown_a, paths[i], sizeof shown_a), rule);
			rc = -1;
			goto out;
		}
		if (names != NULL) {
			names[i] = xstrdup(norm);
			sorted[i] = &names[i];
		}
	}
	if (sorted != NULL)
		qsort(sorted, count, sizeof *sorted, relpath_cmp);
	for (i = 0; i + 1 < count; i++) {
		const char *a = *sorted[i], *b = *sorted[i + 1];
		size_t ia = (size_t)(sorted[i] - names), ib = (size_t)(sorted[i + 1] - names);

		if (strcmp(a, b) == 0 || relpath_under(b, a)) {
			if (ia > ib) {
				size_t t = ia;

				ia = ib;
				ib = t;
			}
			snprintf(why, n,
			    strcmp(a, b) == 0 ?
			        "%s[%zu] \"%s\" and %s[%zu] \"%s\" name "
			        "the same file" :
			        "%s[%zu] \"%s\" and %s[%zu] \"%s\": one "
			        "would be both a file and the directory of the other",
			    what, ia, utf8_one_line(shown_a, paths[ia], sizeof shown_a), what, ib,
			    utf8_one_line(shown_b, paths[ib], sizeof shown_b));
			rc = -1;
			goto out;
		}
	}
out:
	for (i = 0; names != NULL && i < count; i++)
		free(names[i]);
	free(names);
	free(sorted);
	return rc;
}
