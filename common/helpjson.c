/* --help and --version as JSON, from the text --help prints. */
#include "common/helpjson.h"
#include "common/jsondump.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether the option `name` (its n bytes) is in `arr` already. */
static bool help_has(json_t *arr, const char *name, size_t n)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o)
	{
		const char *s = json_string_value(json_object_get(o, "name"));

		if (strlen(s) == n && strncmp(s, name, n) == 0)
			return true;
	}
	return false;
}

json_t *help_json_options(const char *text)
{
	json_t *arr = json_array();
	const char *p = text;

	while ((p = strstr(p, "--")) != NULL) {
		const char *name = p, *v;
		size_t n = 2, vn = 0;
		char *nm, *val = NULL;

		while (isalnum((unsigned char)p[n]) || p[n] == '-')
			n++;
		p += n;
		if (n == 2)
			continue;
		v = p[0] == ' ' || p[0] == '=' ? p + 1 : NULL;
		if (v != NULL) {
			vn = strcspn(v, " []\n,;)");
			if (isupper((unsigned char)v[0]) ||
			    (islower((unsigned char)v[0]) && memchr(v, '|', vn) != NULL))
				val = xstrndup(v, vn);
		}
		if (!help_has(arr, name, n)) {
			nm = xstrndup(name, n);
			json_array_append_new(arr,
			    json_pack("{s:s, s:o}", "name", nm, "value",
			        val != NULL ? json_string(val) : json_null()));
			free(nm);
		}
		free(val);
	}
	return arr;
}

json_t *help_json_program(const char *prog, const char *usage, const char *help)
{
	char *both = xasprintf("%s%s", usage, help);
	json_t *j = json_pack("{s:s, s:s, s:o, s:s}", "command", prog, "usage", usage, "options",
	    help_json_options(both), "help", help);

	free(both);
	return j;
}

json_t *help_json_text(const char *prog, const char *text)
{
	const char *blank = strstr(text, "\n\n");
	size_t n = blank != NULL ? (size_t)(blank - text) + 1 : strlen(text);
	char *usage = xstrndup(text, n);
	json_t *j = help_json_program(prog, usage, blank != NULL ? blank + 2 : "");

	free(usage);
	return j;
}

json_t *help_json_version(const char *prog)
{
	return json_pack("{s:s, s:s}", "command", prog, "version", AUTOPACK_VERSION);
}

bool help_json_asked(char *const *argv)
{
	for (int i = 1; argv[i] != NULL && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0)
			return true;
	return false;
}

int help_json_print(const char *prog, json_t *j)
{
	errno = 0;
	json_dumpf_short(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(j);
	return stdout_finish(prog, errno) == 0 ? 0 : 1;
}
