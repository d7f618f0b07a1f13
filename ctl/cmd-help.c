/* A command's help, as text or as JSON, from its entry of the command table: the usage
 * line, the summary and the help text are the one source of both. */
#include "ctl/cmd.h"
#include "common/helpjson.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

		json_object_set_new(j, "options", help_json_options(usage));
		json_object_set_new(j, "help", json_string(e->help));
		cmd_json_print(j);
	} else {
		printf("usage: %s\n\n%s\n\n%s", usage, e->summary, e->help);
	}
	free(usage);
}
