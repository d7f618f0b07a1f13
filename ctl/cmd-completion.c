/* completion bash: a bash completion script for autopack-ctl, generated from the command
 * table: the command names, and for each command the options named in its usage line and
 * in the indented option lines of its help ("  --name VALUE ..."); an option takes a
 * value when an upper-case word follows it; --reason completes with the failure reasons.
 * `make install` installs the script. */
#include "ctl/cmd.h"
#include "common/util.h"
#include "common/vocab.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An option a command names. */
struct comp_opt {
	char name[40];
	bool value;   /* takes a value */
	bool is_file; /* the value is a file or directory */
};

struct comp_opts {
	struct comp_opt v[48];
	size_t n;
};

/* Add `name` (with its value kind) unless it is already listed. */
static void comp_add(struct comp_opts *o, const char *name, size_t len, bool value, bool is_file)
{
	size_t i;

	if (len >= sizeof o->v[0].name)
		return;
	for (i = 0; i < o->n; i++) {
		if (strlen(o->v[i].name) == len && strncmp(o->v[i].name, name, len) == 0) {
			o->v[i].value |= value;
			o->v[i].is_file |= is_file;
			return;
		}
	}
	if (o->n == ARRAY_SIZE(o->v))
		return;
	memcpy(o->v[o->n].name, name, len);
	o->v[o->n].name[len] = '\0';
	o->v[o->n].value = value;
	o->v[o->n].is_file = is_file;
	o->n++;
}

/* Collect the "--name [VALUE]" tokens of `text` into o. */
static void comp_scan(struct comp_opts *o, const char *text)
{
	const char *p = text;

	while ((p = strstr(p, "--")) != NULL) {
		const char *name = p;
		size_t len = 2;
		bool value = false, is_file = false;

		if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '-')) {
			p += 2;
			continue;
		}
		while (islower((unsigned char)name[len]) || isdigit((unsigned char)name[len]) ||
		    (name[len] == '-' && islower((unsigned char)name[len + 1])))
			len++;
		p = name + len;
		if (len == 2)
			continue;
		if ((*p == ' ' || *p == '=') && isupper((unsigned char)p[1])) {
			value = true;
			is_file = strncmp(p + 1, "PATH", 4) == 0 ||
			    strncmp(p + 1, "FILE", 4) == 0 || strncmp(p + 1, "DIR", 3) == 0;
		}
		comp_add(o, name, len, value, is_file);
	}
}

/* The options of command e, the common ones included. */
static void comp_options(const struct cmd_entry *e, struct comp_opts *o)
{
	o->n = 0;
	comp_add(o, "--db", 4, true, false);
	comp_add(o, "--json", 6, false, false);
	comp_add(o, "--help", 6, false, false);
	comp_scan(o, e->args);
	for (const char *line = e->help; *line != '\0'; line += strcspn(line, "\n") + 1) {
		const char *p = line + strspn(line, " ");
		char *copy;

		if (p - line < 2 || strncmp(p, "--", 2) != 0)
			continue;
		copy = xstrndup(p, strcspn(p, "\n"));
		comp_scan(o, copy);
		free(copy);
		if (line[strcspn(line, "\n")] == '\0')
			break;
	}
}

/* Print the names of the options in o that take a value of kind `is_file`, '|'-joined. */
static void comp_print_valued(FILE *out, const struct comp_opts *o, bool is_file, bool *first)
{
	for (size_t i = 0; i < o->n; i++) {
		if (o->v[i].value && o->v[i].is_file == is_file) {
			fprintf(out, "%s%s", *first ? "" : "|", o->v[i].name);
			*first = false;
		}
	}
}

/* Whether o holds the option `name`. */
static bool comp_has(const struct comp_opts *o, const char *name)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->v[i].name, name) == 0)
			return true;
	return false;
}

/* Print the case that completes --reason with the failure reasons, in any case typed. */
static void comp_print_reasons(FILE *out)
{
	fprintf(out, "--reason) COMPREPLY=($(compgen -W \"");
	for (int r = REASON_NONE + 1; r < REASON_COUNT; r++)
		fprintf(out, "%s%s", r > REASON_NONE + 1 ? " " : "", reason_name((enum reason)r));
	fprintf(out, "\" -- \"${cur^^}\")); return ;;\n\t");
}

/* Print the first words of the command names, each once, space-separated. */
static void comp_print_first_words(FILE *out)
{
	for (size_t i = 0; i < cmd_table_size; i++) {
		const char *n = cmd_table[i]->name;
		size_t len = strcspn(n, " "), j;

		for (j = 0; j < i; j++)
			if (strncmp(cmd_table[j]->name, n, len) == 0 &&
			    strcspn(cmd_table[j]->name, " ") == len)
				break;
		if (j == i)
			fprintf(out, " %.*s", (int)len, n);
	}
}

/* Print the script to `out`. */
static void comp_print_bash(FILE *out)
{
	struct comp_opts all = { 0 }, o;
	bool first;
	size_t i, j;

	for (i = 0; i < cmd_table_size; i++) {
		comp_options(cmd_table[i], &o);
		for (j = 0; j < o.n; j++)
			comp_add(
			    &all, o.v[j].name, strlen(o.v[j].name), o.v[j].value, o.v[j].is_file);
	}
	fprintf(out,
	    "# bash completion for autopack-ctl %s, generated from its command table by\n"
	    "# `autopack-ctl completion bash`.\n"
	    "_autopack_ctl()\n{\n"
	    "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	    "\tlocal i w cmd= opts= words=()\n"
	    "\tCOMPREPLY=()\n"
	    "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	    "\t\tw=${COMP_WORDS[i]}\n"
	    "\t\tcase $w in\n\t\t",
	    AUTOPACK_VERSION);
	first = true;
	comp_print_valued(out, &all, false, &first);
	comp_print_valued(out, &all, true, &first);
	fprintf(out,
	    ") ((i++)) ;;\n"
	    "\t\t-*) ;;\n"
	    "\t\t*) words+=(\"$w\") ;;\n"
	    "\t\tesac\n"
	    "\tdone\n"
	    "\tcase $prev in\n\t");
	first = true;
	comp_print_valued(out, &all, true, &first);
	fprintf(out, ") COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n\t");
	if (comp_has(&all, "--reason"))
		comp_print_reasons(out);
	first = true;
	comp_print_valued(out, &all, false, &first);
	fprintf(out,
	    ") return ;;\n"
	    "\tesac\n"
	    "\tcase \"${words[0]} ${words[1]}\" in\n");
	for (i = 0; i < cmd_table_size; i++)
		if (strchr(cmd_table[i]->name, ' ') != NULL)
			fprintf(out, "\t\"%s\") cmd=\"%s\" ;;\n", cmd_table[i]->name,
			    cmd_table[i]->name);
	fprintf(out, "\t*)\n\t\tcase \"${words[0]}\" in\n");
	for (i = 0; i < cmd_table_size; i++)
		if (strchr(cmd_table[i]->name, ' ') == NULL)
			fprintf(out, "\t\t%s) cmd=%s ;;\n", cmd_table[i]->name, cmd_table[i]->name);
	fprintf(out,
	    "\t\tesac ;;\n\tesac\n"
	    "\tif [[ -z $cmd ]]; then\n"
	    "\t\tif ((${#words[@]} == 0)); then\n"
	    "\t\t\tCOMPREPLY=($(compgen -W \"--db --json --help --version");
	comp_print_first_words(out);
	fprintf(out,
	    "\" -- \"$cur\"))\n"
	    "\t\telif ((${#words[@]} == 1)); then\n"
	    "\t\t\tcase ${words[0]} in\n");
	for (i = 0; i < cmd_table_size; i++) {
		const char *n = cmd_table[i]->name, *sp = strchr(n, ' ');

		if (sp == NULL ||
		    (i > 0 && strncmp(cmd_table[i - 1]->name, n, (size_t)(sp - n + 1)) == 0))
			continue;
		fprintf(out, "\t\t\t%.*s) COMPREPLY=($(compgen -W \"", (int)(sp - n), n);
		for (j = i; j < cmd_table_size; j++)
			if (strncmp(cmd_table[j]->name, n, (size_t)(sp - n + 1)) == 0)
				fprintf(out, " %s", cmd_table[j]->name + (sp - n + 1));
		fprintf(out, "\" -- \"$cur\")) ;;\n");
	}
	fprintf(out, "\t\t\tesac\n\t\tfi\n\t\treturn\n\tfi\n\tcase $cmd in\n");
	for (i = 0; i < cmd_table_size; i++) {
		comp_options(cmd_table[i], &o);
		fprintf(out, "\t\"%s\") opts=\"", cmd_table[i]->name);
		for (j = 0; j < o.n; j++)
			fprintf(out, "%s%s", j > 0 ? " " : "", o.v[j].name);
		fprintf(out, "\" ;;\n");
	}
	fprintf(out,
	    "\tesac\n"
	    "\tif [[ $cur == -* ]]; then\n"
	    "\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
	    "\telse\n"
	    "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	    "\tfi\n"
	    "}\n"
	    "complete -F _autopack_ctl autopack-ctl\n");
}

static const struct option cmd_completion_opts[] = {
	CMD_OPTS_COMMON,
	{ NULL, 0, NULL, 0 },
};

/* completion bash: print the script. */
static int cmd_completion_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	int c, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_completion_opts, &ret)) != -1)
		if (c == CMD_OPT_DONE)
			return ret;
	if (optind == argc)
		return cmd_usage_error(ctx, "name the shell: bash");
	if (optind + 1 != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	if (strcmp(argv[optind], "bash") != 0)
		return cmd_usage_error(ctx, "\"%s\": only bash is supported", argv[optind]);
	if (ctx->json) {
		/* The script as the one JSON object --json promises. */
		char *script = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&script, &len);

		if (mem == NULL)
			return cmd_fail(
			    ctx, STORE_EIO, "cannot make the script: %s", strerror(errno));
		comp_print_bash(mem);
		fclose(mem);
		cmd_json_print(
		    json_pack("{s:b, s:s, s:s%}", "ok", 1, "shell", "bash", "script", script, len));
		free(script);
		return CMD_EXIT_OK;
	}
	comp_print_bash(stdout);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_completion_entry = {
	.name = "completion",
	.args = "bash",
	.summary = "print the bash completion script",
	.help = "Prints a bash completion script for autopack-ctl, made from its command table.\n"
	        "make install puts it in $(PREFIX)/share/bash-completion/completions; to try it\n"
	        "in a shell: source <(autopack-ctl completion bash)\n"
	        "\n"
	        "  --json  the script as {\"ok\": true, \"shell\": \"bash\", \"script\": ...}\n",
	.exec = cmd_completion_exec,
};
