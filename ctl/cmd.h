/*
 * autopack-ctl's commands. Each command is a cmd_entry in one of the cmd-*.c files (one
 * file per command group), gathered in cmd_table[] (cmd.c). A command's name is one or
 * two words ("db check"); main.c matches the words, then calls exec with argv[0] set to
 * the last word of the name and the command's own arguments after it.
 */
#ifndef AUTOPACK_CTL_CMD_H
#define AUTOPACK_CTL_CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/store/store.h"

/* Exit codes of every command. */
enum cmd_exit {
	CMD_EXIT_OK = 0,
	CMD_EXIT_REFUSED = 1,  /* the command was refused: bad plan, run exists, busy, empty */
	CMD_EXIT_UNUSABLE = 2, /* bad usage, bad URL, or a database that cannot be used */
};

struct cmd_entry;

/* The most options a command has, the common ones included. */
#define CMD_OPTS_MAX 32

/* What a command runs with. */
struct cmd_ctx {
	const struct cmd_entry *entry;
	const char *db_flag; /* --db URL, before or after the command name; NULL if none */
	bool json;           /* --json: the result as JSON on stdout, everything else on stderr */
	/* The value each option of the command took, by its place in the command's options
	 * (cmd_getopt), so that one given again with another value is refused. */
	const char *given[CMD_OPTS_MAX];
	/* What cmd_lock tells to do when another process holds the database, in place of
	 * stopping it or sending the command through the supervisor; NULL for that. */
	const char *busy_advice;
};

struct cmd_entry {
	const char *name;    /* "db check" */
	const char *args;    /* what follows the name in the usage line */
	const char *summary; /* one line, for autopack-ctl --help */
	const char *help;    /* the body of COMMAND --help */
	int (*exec)(struct cmd_ctx *ctx, int argc, char **argv);
};

extern const struct cmd_entry *const cmd_table[];
extern const size_t cmd_table_size;

extern const struct cmd_entry cmd_db_init_entry;
extern const struct cmd_entry cmd_db_check_entry;
extern const struct cmd_entry cmd_db_migrate_entry;
extern const struct cmd_entry cmd_db_reidentify_entry;
extern const struct cmd_entry cmd_db_adopt_entry;
extern const struct cmd_entry cmd_seed_telemetry_run_entry;
extern const struct cmd_entry cmd_run_import_entry;
extern const struct cmd_entry cmd_status_entry;
extern const struct cmd_entry cmd_workers_entry;
extern const struct cmd_entry cmd_pause_entry;
extern const struct cmd_entry cmd_resume_entry;
extern const struct cmd_entry cmd_scale_entry;
extern const struct cmd_entry cmd_stop_entry;
extern const struct cmd_entry cmd_metrics_entry;
extern const struct cmd_entry cmd_retry_entry;
extern const struct cmd_entry cmd_failed_entry;
extern const struct cmd_entry cmd_completion_entry;
extern const struct cmd_entry cmd_cancel_entry;
extern const struct cmd_entry cmd_watch_entry;
extern const struct cmd_entry cmd_telemetry_report_entry;
extern const struct cmd_entry cmd_telemetry_import_entry;
extern const struct cmd_entry cmd_telemetry_export_entry;
extern const struct cmd_entry cmd_calibrate_entry;
extern const struct cmd_entry cmd_session_list_entry;
extern const struct cmd_entry cmd_session_show_entry;

/* Options every command accepts: --db URL, --json, --help. */
#define CMD_OPTS_COMMON                                                                            \
	{ "db", required_argument, NULL, CMD_OPT_DB },                                             \
	    { "json", no_argument, NULL, CMD_OPT_JSON },                                           \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

enum {
	CMD_OPT_DB = 0x100,
	CMD_OPT_JSON,
	CMD_OPT_DONE,
	CMD_OPT_FIRST_OWN
};

/* Record a copy of a --db value in ctx, and hide the password of `value` itself (the
 * command line, which every process of the machine reads); false (nothing changed, and
 * *shown the one given before without its password, on the heap) when a different one was
 * given before: two --db naming different URLs are refused. */
bool cmd_db_flag_set(struct cmd_ctx *ctx, char *value, char **shown);
/* Return the next command-specific option of argv (getopt_long over `opts`), or -1 at
 * the end. Handles the common options itself; on --help or a bad option it prints what
 * is due and returns CMD_OPT_DONE with the exit code in *exit_code. An option that takes
 * a value and is given again with another one is such a bad option (usage error, exit 2),
 * but for --run-id, which the telemetry commands and calibrate take as a list (and
 * telemetry import refuses twice itself). */
int cmd_getopt(
    struct cmd_ctx *ctx, int argc, char **argv, const struct option *opts, int *exit_code);
/* Print "autopack-ctl NAME: message" and the usage line to stderr, and with --json an
 * {"ok": false, "error": "EINVAL", "message"} object on stdout; returns 2. */
int cmd_usage_error(const struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 0 if path `value` (option or argument `what`) is not empty, else a usage error: 2. */
int cmd_path_given(const struct cmd_ctx *ctx, const char *what, const char *value);
/* Print a command's --help to stdout (ctl/cmd-help.c): its usage line, summary and help
 * text; with --json one object {"command", "usage", "summary", "options", "help"}, the
 * options read from the usage line (help_json_options, common/helpjson.h). */
void cmd_help_print(const struct cmd_ctx *ctx, const struct cmd_entry *e);
/* A command of the table as JSON: {"command", "usage", "summary"}. */
json_t *cmd_help_entry_json(const struct cmd_entry *e);

/* Map a STORE_E* code to the command's exit code. */
int cmd_exit_code(int store_rc);
/* Why a write to standard output a command checked failed (an errno), 0 if none did: the
 * stream forgets it once the failed buffer is dropped, and main reports it at exit. */
extern int cmd_stdout_errno;
/* Flush standard output; false, with the cause in cmd_stdout_errno, when it failed now or
 * earlier. */
bool cmd_stdout_flush(void);
/* Report a failure: "autopack-ctl: message" on one line of stderr (every control
 * character in it escaped, as cmd_shown does), and with --json an
 * {"ok": false, "error", "message"} object on stdout; a message over 1 KiB keeps its start
 * and its end (str_velide). Returns cmd_exit_code(code). */
int cmd_fail(const struct cmd_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Print {"ok": false, "error": the name of STORE_E* `code`, "message": msg} on stdout. */
void cmd_json_error(int code, const char *msg);
/* The stream for human-readable text: stderr with --json, else stdout. */
FILE *cmd_text_out(const struct cmd_ctx *ctx);

/* Resolve the database from --db and the environment; 0, or an exit code after
 * reporting the error. */
int cmd_db_resolve(const struct cmd_ctx *ctx, char **path, char **url);
/* Resolve the database URL silently: nonzero for a bad or missing one (reported later). */
int cmd_db_probe(const struct cmd_ctx *ctx, char **path, char **url);
/* Open the database read-only and, if `banner`, print its banner; 0 or an exit code. */
int cmd_open_read(const struct cmd_ctx *ctx, struct store *st, bool banner);
/* An output file being written (cmd-out.c). */
struct cmd_out {
	FILE *f;          /* where to write */
	const char *path; /* as given, for messages */
	char *tmp;        /* the temporary written, NULL when written in place */
	char *target;     /* the file the temporary is renamed to */
	mode_t mode;      /* the mode the file gets: the replaced one's, or 0666 less the umask */
	uid_t uid;        /* the replaced file's owner, given back by root */
	gid_t gid;
	bool owner; /* a file was replaced: uid and gid are its */
};
/* Open `path` to be written, unless it is one of the files of the SQLite database `st`
 * holds (the database, its -wal, -shm or -journal, by that name or another: a symbolic or
 * hard link) or another SQLite database's. A regular file, or a name where there is none,
 * is written through a temporary beside it (".NAME.XXXXXX.partial"), which cmd_out_close
 * renames over it once complete: whatever fails before, the file is as it was. Anything
 * else (a FIFO, a terminal, a device) is written in place; a FIFO that no process has open
 * for reading is refused at once, not waited on. 0, or -1 with `err` naming the file and
 * the reason (nothing made). */
int cmd_out_open(
    const struct store *st, const char *path, struct cmd_out *o, char *err, size_t errlen);
/* Finish the file: with `keep`, flush it, sync it and rename the temporary over the file;
 * else, or when any of that fails, remove the temporary. Returns 0 or the errno of the
 * failure (the file as it was before, when it was written through a temporary). */
int cmd_out_close(struct cmd_out *o, bool keep);
/* Whether `path` names standard output itself ("-", /dev/stdout, /dev/fd/1,
 * /proc/self/fd/1): written there as it is open (appended to, after `>>`), not opened
 * again by its name, which would truncate or replace the file behind it. */
bool cmd_out_is_stdout(const char *path);
/* Remove the temporary being written, if any: async-signal-safe, for a stop signal. */
void cmd_out_abandon(void);
/* The name of errno value `e` ("ENOSPC"), or "errno N"; a static buffer for the latter. */
const char *cmd_errno_name(int e);
/* Open the database for an offline write: check it without writing, take the lock
 * (refusing while a supervisor holds it), open it for writing (which migrates an older
 * schema after a backup, and says so) and print the banner. 0 or an exit code; on 0 the
 * caller ends with cmd_close_write. */
int cmd_open_write(const struct cmd_ctx *ctx, struct store *st, int *lock_fd);
/* Close a database opened with cmd_open_write and release its lock. */
void cmd_close_write(struct store *st, int lock_fd);
/* Take the database lock for an offline write; 0 or an exit code. */
int cmd_lock(const struct cmd_ctx *ctx, const char *path, int *lock_fd);

/* If an autopack-supervisor holds the database, send it `cmd` with `args` (the write goes
 * through the database's only writer) and print its answer; *forwarded says whether it
 * did. Returns the exit code when forwarded, else 0. */
int cmd_live_forward(
    struct cmd_ctx *ctx, const char *cmd, char **args, size_t nargs, bool *forwarded);

/* cmd_live_forward with the supervisor's answer shown by `show` (its JSON body, to
 * `out`). */
int cmd_live_forward_show(struct cmd_ctx *ctx, const char *cmd, char **args, size_t nargs,
    void (*show)(json_t *body, FILE *out), bool *forwarded);

/* Send `cmd` with `args` to the supervisor at socket `control` (NULL: the one the
 * database names) and show its answer with `show`; returns the exit code. */
int cmd_live_call(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, void (*show)(json_t *body, FILE *out));

/* Whether control command `cmd` has its reply said in one line (pause, resume, scale,
 * stop, cancel: ctl/cmd-control-text.c). */
bool cmd_control_said(const char *cmd);
/* Print on `out` one line saying what control command `cmd` did, from its reply's `body`:
 * what was done, to what, and the counts (attempts in flight, workers). */
void cmd_control_say(const char *cmd, json_t *body, FILE *out);

/* A running supervisor's reply: its body (a JSON object) and the database it holds. */
struct live_reply {
	json_t *body;
	char *db_url;
	char *db_uuid;
	char *db_devino; /* "device:inode" of its file */
};

/* Send `cmd` with `args` to the supervisor found from the database (or at `control`) and
 * read its reply, printing nothing. Returns 0, or a STORE_E* code with err set: no
 * supervisor, no answer, the command refused (the supervisor's message), or a reply about
 * another database than the one named (its URL, device:inode or uuid differs). */
int cmd_live_fetch(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, struct live_reply *out, char *err, size_t errlen);
void cmd_live_reply_free(struct live_reply *r);
/* Run live command `cmd` through the database when it is PostgreSQL, which several
 * supervisors may share (ctl/cmd-fleet.c): status and workers list every supervisor,
 * pause, resume, scale and stop go to supervisor `target` (0: every live one) and wait for
 * the answers; the others are refused. *handled says whether it was; returns the exit
 * code. */
int cmd_fleet_live(
    struct cmd_ctx *ctx, const char *cmd, int64_t target, char **args, size_t nargs, bool *handled);
/* After a write that queued phases (run import, seed, retry): on a PostgreSQL database,
 * wake its live supervisors (NOTIFY, when `notify`: the write's transaction did not) and
 * say which were woken on `out`; returns their ids (a JSON array), or NULL on SQLite. */
json_t *cmd_fleet_woken(struct store *st, bool notify, FILE *out);
/* On a PostgreSQL database (*handled), fetch the reply to `cmd` of supervisor *target
 * (0: the first live one, whose id is stored there) through the database, as
 * cmd_live_fetch does over a socket. Returns 0 or a STORE_E* code with err set
 * (STORE_EBUSY: it is not running). */
int cmd_fleet_fetch(struct cmd_ctx *ctx, int64_t *target, const char *cmd, struct live_reply *out,
    bool *handled, char *err, size_t errlen);
/* The closing paragraph of every live command's help: how the supervisor is found. */
#define CMD_LIVE_HELP_TAIL                                                                         \
	"\nThe supervisor is found from the database (--db, AUTOPACK_DB_URL or DATABASE_URL):\n"   \
	"the one holding its lock, at the socket it records or its default one; or from\n"         \
	"--control PATH. With a database named, the supervisor refuses the request if it holds\n"  \
	"a different database, and a reply about a different one is refused.\n"                    \
	"\nOn a PostgreSQL database, which supervisors on several hosts may share, status and\n"   \
	"workers list every supervisor (or --supervisor ID) from the database; pause, resume,\n"   \
	"scale, stop and metrics are delivered through the database to every live supervisor,\n"   \
	"or to --supervisor ID, and their answers awaited (metrics merged, each sample\n"          \
	"labelled supervisor=\"ID\"); cancel goes to the supervisor running the phase (to the\n"   \
	"first live one when none does); watch follows one (--supervisor ID, or the first\n"       \
	"live one). --control PATH still talks to one over its socket on its own host.\n"

/* The identity of an open database as a JSON object. */
json_t *cmd_identity_json(struct store *st);
/* A text read from the database or a file as a JSON string: null for NULL; a text that is
 * not UTF-8 (SQLite's TEXT holds any bytes another program wrote) with each invalid byte
 * as U+FFFD, so that it never fails the JSON it goes into. */
json_t *cmd_json_text(const char *s);
/* The same of the n bytes at s, which may hold NUL bytes (JSON shows each as \u0000). */
json_t *cmd_json_textn(const char *s, size_t n);
/* Text from the database, a file or a peer as a terminal may show it (utf8_escape): its
 * control characters (NUL and ESC too) and bytes that are not UTF-8 escaped, the rest as
 * it is, so that nothing another program stored reaches the operator's terminal as a
 * command. NULL for NULL. The copy stays valid for the next 15 calls of either. */
const char *cmd_shown(const char *s);
/* The same of the n bytes at s, which may hold NUL bytes. */
const char *cmd_shownn(const char *s, size_t n);
/* Print the n bytes at s as cmd_shownn shows them. */
void cmd_print_textn(FILE *out, const char *s, size_t n);
/* Print msg as one line, as cmd_shown shows it (its newlines as \n), and a newline. */
void cmd_print_line(FILE *out, const char *msg);
/* Print the lines of msg, each as cmd_shown shows it and ended by a newline (nothing for
 * NULL). */
void cmd_print_lines(FILE *out, const char *msg);
struct telem_sample;
/* Print "excluded: N events recording a count no call can (...)" and name the first
 * CALIB_IMPLAUSIBLE_NAMED of the n at v; nothing when n is 0. */
void cmd_print_implausible(FILE *out, const struct telem_sample *const *v, size_t n);
/* Set by a command whose --json output is one JSON object a line (watch, telemetry
 * export): its errors are printed on one line too, so that every line parses. */
extern bool cmd_json_lines;
/* Print `j` (stolen) as indented JSON on stdout, on one line under cmd_json_lines. */
void cmd_json_print(json_t *j);

#endif
