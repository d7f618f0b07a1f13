#include "common/relpath.h"

#include <string.h>

const char *relpath_norm(const char *in, char *out, size_t n)
{
	const char *s = in;
	size_t len = 0;

	if (in[0] == '\0')
		return "empty path";
	if (in[0] == '/')
		return "absolute paths are not allowed";
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			return "backslashes are not allowed";
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return "control characters are not allowed";
	}
	s = in;
	while (*s != '\0') {
		const char *e = strchr(s, '/');
		size_t k = e != NULL ? (size_t)(e - s) : strlen(s);

		if (k == 2 && s[0] == '.' && s[1] == '.')
			return "'..' components are not allowed";
		if (k == 4 && memcmp(s, ".git", 4) == 0)
			return "the .git directory is reserved";
		if (k == 9 && memcmp(s, ".autopack", 9) == 0 && len == 0)
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
