/* A command's help, as text or as JSON, from its entry of the command table: the usage
 * line, the summary and the help text are the one source of both. */
#include "ctl/cmd.h"
#include "common/util.h"

#include <ctype.h>
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

/* Read the options of a usage line: each "--name", and the placeholder of its value when
 * the next word is one (it starts with a capital letter: "S", "PATH", "ID|all"). */
json_t *cmd_help_options(const char *usage)
{
	json_t *arr = json_array();
	const char *p = usage;

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
		if (v != NULL && isupper((unsigned char)v[0])) {
			vn = strcspn(v, " []");
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

/* The usage line of `e`, on the heap. */
static char *help_usage(const struct cmd_entry *e)
{
	return xasprintf("autopack-ctl [--db URL] %s %s", e->name, e->args);
}

json_t *cmd_help_entry_json(const struct cmd_entry *e)
{
	char *usage = help_usage(e);
	json_t *j = json_pack(
	    "{s:s, s:s, s:s}", "command", e->name, "usage", usage, "summary", e->summary);

	free(usage);
	return j;
}

void cmd_help_print(const struct cmd_ctx *ctx, const struct cmd_entry *e)
{
	char *usage = help_usage(e);

	if (ctx->json) {
		json_t *j = cmd_help_entry_json(e);

		json_object_set_new(j, "options", cmd_help_options(usage));
		json_object_set_new(j, "help", json_string(e->help));
		cmd_json_print(j);
	} else {
		printf("usage: %s\n\n%s\n\n%s", usage, e->summary, e->help);
	}
	free(usage);
}
