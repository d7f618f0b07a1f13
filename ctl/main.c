/* autopack-ctl: `autopack-ctl [--db URL] COMMAND [ARGS]`. Finds the command in
 * cmd_table[] and runs it. */
#include "common/helpjson.h"
#include "common/stacklimit.h"
#include "common/umaskcheck.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/store/pg/db_pg_wait.h"
#include "common/util.h"
#include "ctl/cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The global usage lines and what follows them in --help, before the command list. */
#define CTL_USAGE                                                                                  \
	"usage: autopack-ctl [--db URL] [--json] [--] COMMAND [ARGS]\n"                            \
	"       autopack-ctl COMMAND --help\n"                                                     \
	"       autopack-ctl --version | --help\n"
#define CTL_USAGE_DB                                                                               \
	"The database is named by --db URL, else AUTOPACK_DB_URL, else DATABASE_URL:\n"            \
	"sqlite:///relative/path.db, sqlite:////absolute/path.db or\n"                             \
	"postgresql://user@host:port/dbname. There is no default.\n"

/* Print the global usage and the command list to `out`. */
static void ctl_usage(FILE *out)
{
	fprintf(out, CTL_USAGE "\n" CTL_USAGE_DB "\nCommands:\n");
	for (size_t i = 0; i < cmd_table_size; i++)
		fprintf(out, "  %-20s %s\n", cmd_table[i]->name, cmd_table[i]->summary);
}

/* Print --help as text, or with --json as one object: {"command": "autopack-ctl",
 * "usage", "options", "help", "commands": [{"command", "usage", "summary"}]}, from the
 * same lines and command table. */
static void ctl_help(bool json)
{
	json_t *cmds, *j;

	if (!json) {
		ctl_usage(stdout);
		return;
	}
	cmds = json_array();
	for (size_t i = 0; i < cmd_table_size; i++)
		json_array_append_new(cmds, cmd_help_entry_json(cmd_table[i]));
	j = help_json_program("autopack-ctl", CTL_USAGE, CTL_USAGE_DB);
	json_object_set_new(j, "commands", cmds);
	cmd_json_print(j);
}

/* Print --version as text, or with --json as {"command": "autopack-ctl", "version"}. */
static void ctl_version(bool json)
{
	if (json)
		cmd_json_print(help_json_version("autopack-ctl"));
	else
		printf("autopack-ctl %s\n", AUTOPACK_VERSION);
}

/* Return how many words of argv (from argv[0]) the entry's name matches, or 0. */
static int ctl_match(const struct cmd_entry *e, int argc, char **argv)
{
	const char *name = e->name;
	int words = 0;

	while (*name != '\0') {
		size_t n = strcspn(name, " ");

		if (words >= argc || strlen(argv[words]) != n || strncmp(argv[words], name, n) != 0)
			return 0;
		words++;
		name += n;
		name += *name == ' ';
	}
	return words;
}

/* With --json, say on stdout as JSON what was said on stderr: a usage error. */
static void ctl_json_usage(bool json, const char *msg)
{
	if (json)
		cmd_json_error(STORE_EINVAL, msg);
}

/* Report a command that is not in the table, listing a group's commands if the first
 * word names a group; returns the exit code. */
static int ctl_unknown(int argc, char **argv, bool json)
{
	size_t n = strlen(argv[0]);
	bool group = false;
	/* GROUP --help, --json before or after it. */
	int h = argc > 2 && strcmp(argv[1], "--json") == 0 ? 2 : 1;
	bool help = argc > h && (strcmp(argv[h], "--help") == 0 || strcmp(argv[h], "-h") == 0);
	FILE *out = help ? stdout : stderr;
	json_t *cmds = json_array();

	for (size_t i = 0; i < cmd_table_size; i++) {
		const char *name = cmd_table[i]->name;

		if (strncmp(name, argv[0], n) == 0 && name[n] == ' ') {
			if (!group && !(help && json))
				fprintf(out,
				    help ? "%s commands:\n" :
				           "autopack-ctl: unknown %s "
				           "command%s%s; %s commands are:\n",
				    argv[0], argc > 1 && !help ? " " : "",
				    argc > 1 && !help ? cmd_shown(argv[1]) : "", argv[0]);
			group = true;
			json_array_append_new(cmds, cmd_help_entry_json(cmd_table[i]));
			if (!(help && json))
				fprintf(
				    out, "  autopack-ctl %-20s %s\n", name, cmd_table[i]->summary);
		}
	}
	/* GROUP --help --json: {"group", "commands": [{"command", "usage", "summary"}]}. */
	if (group && help && json)
		cmd_json_print(json_pack("{s:s, s:o}", "group", argv[0], "commands", cmds));
	else
		json_decref(cmds);
	if (group) {
		if (!help) {
			char *msg = xasprintf("unknown %s command%s%s", argv[0],
			    argc > 1 ? " " : "", argc > 1 ? argv[1] : "");

			ctl_json_usage(json, msg);
			free(msg);
		}
		return help ? CMD_EXIT_OK : CMD_EXIT_UNUSABLE;
	}
	fprintf(stderr, "autopack-ctl: unknown command '%s'\n", cmd_shown(argv[0]));
	ctl_usage(stderr);
	if (json) {
		char *msg = xasprintf("unknown command '%s'", argv[0]);

		ctl_json_usage(json, msg);
		free(msg);
	}
	return CMD_EXIT_UNUSABLE;
}

/* Flush standard output and return `rc`; when the output could not all be written (a
 * full disk, a reader gone, a closed descriptor) say so and fail, rather than exit 0 with
 * the output cut short. */
static int ctl_flush_stdout(int rc)
{
	if (stdout_finish("autopack-ctl", cmd_stdout_errno) == 0)
		return rc;
	return rc != CMD_EXIT_OK ? rc : cmd_exit_code(STORE_EIO);
}

/* Say what a statement the database leaves unanswered waits for, and that it goes on. */
static void ctl_db_waiting(double seconds, const char *what)
{
	fprintf(stderr,
	    "autopack-ctl: the database has not answered for %.0f s: %s; still waiting, and "
	    "saying so every %d s (Ctrl-C stops)\n",
	    seconds, what, DB_PG_WAIT_EVERY_MS / 1000);
}

/* The longest a stop signal's cancel request may wait for the server's answer (a server
 * behind a network gone dark connects it and never answers) before the command ends
 * without it. */
#define CTL_CANCEL_WAIT_S 2

/* The stop signal being taken, for ctl_cancel_late. */
static volatile sig_atomic_t ctl_stopping;

/* SIGALRM while a stop signal's cancel request waits: end by the stop signal now (its
 * action is the default again, and it is not held back). */
static void ctl_cancel_late(int sig)
{
	(void)sig;
	raise(ctl_stopping);
}

/* SIGINT or SIGTERM: cancel the statement waiting on the server, if any, for at most
 * CTL_CANCEL_WAIT_S, then end as the signal's default action does (nothing of an
 * unfinished transaction is kept). The handler is the default again from its start and the
 * signal is not held back (SA_RESETHAND, SA_NODEFER), so a second one ends it at once. */
static void ctl_stop_signal(int sig)
{
	struct sigaction late = { .sa_handler = ctl_cancel_late };

	ctl_stopping = sig;
	cmd_out_abandon();
	sigemptyset(&late.sa_mask);
	sigaction(SIGALRM, &late, NULL);
	alarm(CTL_CANCEL_WAIT_S);
	db_pg_wait_cancel();
	raise(sig);
}

/* Parse the global options, find the command and run it. */
int main(int argc, char **argv)
{
	/* Static: the --db copy it holds lives as long as the process. */
	static struct cmd_ctx ctx;
	const struct cmd_entry *best = NULL;
	int i, words = 0;

	procs_stdio_open();
	stack_limit_require("autopack-ctl", 1);
	umask_require("autopack-ctl", 1);
	/* A reader that went away (`| head`) fails the writes with EPIPE instead of killing
	 * the process with the database open: it is closed as after any command (a reading
	 * command removes the -wal and -shm files it made) and the failure is reported. */
	signal(SIGPIPE, SIG_IGN);
	/* Likewise a write past the file size limit (ulimit -f) fails with EFBIG, reported,
	 * instead of killing it mid-write. */
	signal(SIGXFSZ, SIG_IGN);
	log_init("autopack-ctl", LOG_INFO);
	{
		static const struct db_pg_watch watch = { .waiting = ctl_db_waiting };
		static const int stops[] = { SIGINT, SIGTERM };
		struct sigaction sa = { .sa_handler = ctl_stop_signal,
			.sa_flags = SA_RESETHAND | SA_NODEFER };

		db_pg_wait_watch(&watch);
		sigemptyset(&sa.sa_mask);
		/* A signal the parent had ignored stays ignored. */
		for (size_t k = 0; k < ARRAY_SIZE(stops); k++) {
			struct sigaction old;

			if (sigaction(stops[k], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
				sigaction(stops[k], &sa, NULL);
		}
	}
	/* --json anywhere asks for JSON: a usage error found before the parse reaches it (an
	 * unknown option ahead of it, a command misspelt) is one JSON object too. */
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--json") == 0)
			ctx.json = true;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			/* The end of the options, as getopt takes it: the command follows. */
			i++;
			break;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			ctl_help(ctx.json);
			return ctl_flush_stdout(CMD_EXIT_OK);
		} else if (strcmp(argv[i], "--version") == 0) {
			ctl_version(ctx.json);
			return ctl_flush_stdout(CMD_EXIT_OK);
		} else if ((strcmp(argv[i], "--db") == 0 && i + 1 < argc) ||
		    strncmp(argv[i], "--db=", 5) == 0) {
			char *v = argv[i][4] == '=' ? argv[i] + 5 : argv[++i], *shown;

			if (!cmd_db_flag_set(&ctx, v, &shown)) {
				char *msg = xasprintf("--db given twice with different URLs ('%s', "
				                      "'%s'); name one database",
				    shown, v);

				fprintf(stderr, "autopack-ctl: %s\n", cmd_shown(msg));
				ctl_json_usage(ctx.json, msg);
				free(msg);
				free(shown);
				return CMD_EXIT_UNUSABLE;
			}
		} else if (strcmp(argv[i], "--json") == 0) {
			ctx.json = true;
		} else {
			char *msg = xasprintf(
			    "unknown option, or an option missing its value: '%s'", argv[i]);

			fprintf(stderr, "autopack-ctl: %s\n", cmd_shown(msg));
			ctl_usage(stderr);
			ctl_json_usage(ctx.json, msg);
			free(msg);
			return CMD_EXIT_UNUSABLE;
		}
	}
	if (i == argc) {
		fprintf(stderr, "autopack-ctl: no command given\n");
		ctl_usage(stderr);
		ctl_json_usage(ctx.json, "no command given");
		return CMD_EXIT_UNUSABLE;
	}
	for (size_t k = 0; k < cmd_table_size; k++) {
		int w = ctl_match(cmd_table[k], argc - i, argv + i);

		if (w > words) {
			words = w;
			best = cmd_table[k];
		}
	}
	if (best == NULL)
		return ctl_flush_stdout(ctl_unknown(argc - i, argv + i, ctx.json));
	ctx.entry = best;
	optind = 0;
	opterr = 0;
	i += words - 1;
	return ctl_flush_stdout(best->exec(&ctx, argc - i, argv + i));
}
