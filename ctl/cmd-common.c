/* What every command shares: option parsing, errors, opening the database. */
#include "ctl/cmd.h"
#include "common/jsondump.h"
#include "common/dbfiles.h"
#include "common/store/dburl.h"
#include "common/store/dburl_pg.h"
#include "common/store/store_lock.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "common/utf8.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Print {"ok": false, "error": NAME, "message": msg} on stdout, the whole message, its bytes that
 * are not UTF-8 (a file name, an argument, or a character a cut split) as U+FFFD. */
void cmd_json_error(int code, const char *msg)
{
	char *text = utf8_clean(msg, SIZE_MAX);

	cmd_json_print(
	    json_pack("{s:b, s:s, s:s}", "ok", 0, "error", store_strerror(code), "message", text));
	free(text);
}

/* Report a usage error, on one line whatever the argument it quotes holds, with the
 * command's usage line (with --json also as JSON on stdout); returns 2. */
int cmd_usage_error(const struct cmd_ctx *ctx, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "autopack-ctl %s: ", ctx->entry->name);
	cmd_print_line(stderr, msg);
	fprintf(
	    stderr, "usage: autopack-ctl [--db URL] %s %s\n", ctx->entry->name, ctx->entry->args);
	if (ctx->json) {
		char *text = xasprintf("%s: %s", ctx->entry->name, msg);

		cmd_json_error(STORE_EINVAL, text);
		free(text);
	}
	return CMD_EXIT_UNUSABLE;
}

/* Record a copy of a --db value; `value` itself, in the command line that every process
 * reads (a phase's check command too), loses its password. */
bool cmd_db_flag_set(struct cmd_ctx *ctx, char *value, char **shown)
{
	char *url = xstrdup(value);

	dburl_pg_hide_password(value);
	if (ctx->db_flag != NULL && strcmp(ctx->db_flag, url) != 0) {
		*shown = xstrdup(ctx->db_flag);
		dburl_pg_hide_password(*shown);
		free(url);
		return false;
	}
	free((char *)ctx->db_flag);
	ctx->db_flag = url;
	return true;
}

/* 0 when `value`, the path `what` names (an option or argument), is not empty; else a
 * usage error naming `what` (exit 2): an empty path opens nothing, and the error of the
 * attempt would name nothing. */
int cmd_path_given(const struct cmd_ctx *ctx, const char *what, const char *value)
{
	if (value[0] != '\0')
		return 0;
	return cmd_usage_error(ctx, "%s is empty: give a path", what);
}

/* 0 when option `c` of `opts` takes no value, may be given more than once, or was not
 * given before with another value than optarg; else a usage error (exit 2) naming both
 * values: the command would take one and drop the other without a word. */
static int cmd_opt_once(struct cmd_ctx *ctx, const struct option *opts, int c)
{
	size_t i;

	for (i = 0; opts[i].name != NULL && opts[i].val != c; i++)
		;
	if (opts[i].name == NULL || opts[i].has_arg != required_argument ||
	    strcmp(opts[i].name, "run-id") == 0)
		return 0;
	assert(i < CMD_OPTS_MAX);
	if (ctx->given[i] != NULL && strcmp(ctx->given[i], optarg) != 0)
		return cmd_usage_error(ctx,
		    "--%s given twice with different values ('%s', '%s'); give it once",
		    opts[i].name, ctx->given[i], optarg);
	ctx->given[i] = optarg;
	return 0;
}

/* Return the next command-specific option, handling the common ones. */
int cmd_getopt(
    struct cmd_ctx *ctx, int argc, char **argv, const struct option *opts, int *exit_code)
{
	char *shown;
	int c;

	for (;;) {
		c = getopt_long(argc, argv, "h", opts, NULL);
		switch (c) {
		case CMD_OPT_DB:
			if (cmd_db_flag_set(ctx, optarg, &shown))
				continue;
			*exit_code = cmd_usage_error(ctx,
			    "--db given twice with different URLs ('%s', '%s'); name one database",
			    shown, optarg);
			free(shown);
			return CMD_OPT_DONE;
		case CMD_OPT_JSON: ctx->json = true; continue;
		case 'h':
			cmd_help_print(ctx, ctx->entry);
			*exit_code = CMD_EXIT_OK;
			return CMD_OPT_DONE;
		case '?':
			if (optopt > 0 && optopt < CMD_OPT_DB)
				*exit_code = cmd_usage_error(ctx, "unknown option '-%c'", optopt);
			else
				*exit_code = cmd_usage_error(ctx,
				    "unknown option, or an option "
				    "missing its value: '%s'",
				    argv[optind - 1]);
			return CMD_OPT_DONE;
		case -1: return -1;
		default: {
			int rc = cmd_opt_once(ctx, opts, c);

			if (rc == 0)
				return c;
			*exit_code = rc;
			return CMD_OPT_DONE;
		}
		}
	}
}

/* The stream for human-readable text: stderr when --json owns stdout, else stdout. */
FILE *cmd_text_out(const struct cmd_ctx *ctx)
{
	return ctx->json ? stderr : stdout;
}

int cmd_stdout_errno;

bool cmd_stdout_flush(void)
{
	int cause = stdout_flush(cmd_stdout_errno);

	if (cause == 0)
		return true;
	if (cmd_stdout_errno == 0)
		cmd_stdout_errno = cause;
	return false;
}

/* Map a store error to an exit code: 1 refused, 2 unusable. */
int cmd_exit_code(int store_rc)
{
	switch (store_rc) {
	case STORE_OK: return CMD_EXIT_OK;
	case STORE_EINVAL:
	case STORE_EEXIST:
	case STORE_EBUSY: return CMD_EXIT_REFUSED;
	default: return CMD_EXIT_UNUSABLE;
	}
}

/* Report an error on one line of stderr (the ids, paths and server messages it quotes
 * escaped, newlines too), and as JSON with --json; returns the exit code. */
int cmd_fail(const struct cmd_ctx *ctx, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	assert(code != STORE_OK); /* a failure must not exit 0 */
	va_start(ap, fmt);
	str_velide(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fputs("autopack-ctl: ", stderr);
	cmd_print_line(stderr, msg);
	if (ctx->json)
		cmd_json_error(code, msg);
	return cmd_exit_code(code);
}

/* Resolve the database URL; exit code 2 after reporting a bad or missing one. */
int cmd_db_resolve(const struct cmd_ctx *ctx, char **path, char **url)
{
	char err[1024];

	if (dburl_resolve(ctx->db_flag, path, url, NULL, err, sizeof err) == 0)
		return 0;
	cmd_fail(ctx, STORE_EINVAL, "%s", err);
	return CMD_EXIT_UNUSABLE;
}

/* Resolve the database URL to see which backend or supervisor a command goes to, saying
 * nothing: nonzero (with *path and *url NULL) for a bad or missing URL, which the command's
 * own path then reports once. */
int cmd_db_probe(const struct cmd_ctx *ctx, char **path, char **url)
{
	char err[1024];

	return dburl_resolve(ctx->db_flag, path, url, NULL, err, sizeof err);
}

/* Open read-only, reporting any failure; optionally print the banner. */
int cmd_open_read(const struct cmd_ctx *ctx, struct store *st, bool banner)
{
	struct store_err err;
	char *path, *url;
	int rc = cmd_db_resolve(ctx, &path, &url);

	if (rc != 0)
		return rc;
	rc = store_open(st, path, url, STORE_READ, &err);
	free(path);
	free(url);
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	if (banner)
		store_banner(st, cmd_text_out(ctx));
	return 0;
}

/* Take the write lock, naming the holder if it is busy. */
/* What to do when another process holds the database, unless the command says. */
#define CMD_BUSY_ADVICE "stop it first, or, for a supervisor, send the command through it"

/* How long a command waits for the lock held by a process that is no supervisor (another
 * command asking whether one runs, or writing): such holds last moments. */
#define CMD_LOCK_WAIT_MS 2000

int cmd_lock(const struct cmd_ctx *ctx, const char *path, int *lock_fd)
{
	char name[64];
	pid_t holder;
	int fd = store_lock_acquire_wait(path, &holder, CMD_LOCK_WAIT_MS);

	if (fd >= 0) {
		*lock_fd = fd;
		return 0;
	}
	if (fd == STORE_EBUSY && holder <= 0)
		return cmd_fail(ctx, STORE_EBUSY,
		    "database %s is held by another process (its pid is not in /proc/locks); "
		    "nothing was written (%s)",
		    path, ctx->busy_advice != NULL ? ctx->busy_advice : CMD_BUSY_ADVICE);
	if (fd == STORE_EBUSY) {
		store_lock_holder_name(holder, name, sizeof name, "autopack-supervisor");
		return cmd_fail(ctx, STORE_EBUSY,
		    "database %s is held by %s pid %ld; nothing was written (%s)", path, name,
		    (long)holder, ctx->busy_advice != NULL ? ctx->busy_advice : CMD_BUSY_ADVICE);
	}
	if (fd == STORE_ENOTDB)
		return cmd_fail(ctx, STORE_ENOTDB, "%s: not a regular file", path);
	return cmd_fail(ctx, STORE_EIO, "cannot take the lock %s.lock: %s", path, strerror(errno));
}

/* Check, lock and open for writing (migrating if older); print the banner. */
int cmd_open_write(const struct cmd_ctx *ctx, struct store *st, int *lock_fd)
{
	struct store_err err;
	char *path, *url;
	int ret, rc;

	*lock_fd = -1;
	ret = cmd_db_resolve(ctx, &path, &url);
	if (ret != 0)
		return ret;
	rc = store_open(st, path, url, STORE_READ, &err);
	if (rc == 0) {
		store_close(st);
		ret = cmd_lock(ctx, path, lock_fd);
	}
	if (rc == 0 && ret == 0) {
		rc = store_open(st, path, url, STORE_WRITE, &err);
		if (rc != 0) {
			store_lock_release(*lock_fd);
			*lock_fd = -1;
		}
	}
	free(path);
	free(url);
	if (ret != 0)
		return ret;
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	store_banner(st, cmd_text_out(ctx));
	if (st->migrated_from != 0)
		fprintf(cmd_text_out(ctx),
		    "migrated the schema from version %d to %d; the old "
		    "database was copied to %s\n",
		    st->migrated_from, st->schema_version, cmd_shown(st->backup_path));
	return 0;
}

/* Close the database and release the lock. */
void cmd_close_write(struct store *st, int lock_fd)
{
	store_close(st);
	store_lock_release(lock_fd);
}

/* Describe the open database as JSON. */
json_t *cmd_identity_json(struct store *st)
{
	struct store_identity id;
	json_t *counts = json_object();
	char devino[64];

	assert(st->db != NULL);
	store_identity_read(st, &id, NULL);
	for (int i = 0; i < STORE_COUNT_N; i++)
		json_object_set_new(counts, store_count_name(i), json_integer(id.counts[i]));
	snprintf(devino, sizeof devino, "%lu:%lu", (unsigned long)st->dev, (unsigned long)st->ino);
	return json_pack("{s:s, s:s, s:I, s:I, s:s, s:o, s:i, s:o, s:o, s:o}", "url", st->url,
	    "path", st->path, "size", (json_int_t)id.size, "wal_size", (json_int_t)id.wal_size,
	    "device_inode", devino, "uuid", cmd_json_text(st->uuid), "schema_version",
	    st->schema_version, "created_at", cmd_json_text(id.created_at), "created_by",
	    cmd_json_text(id.created_by), "rows", counts);
}

json_t *cmd_json_text(const char *s)
{
	char *clean;
	json_t *j;

	if (s == NULL)
		return json_null();
	if (utf8_bad(s) < 0)
		return json_string(s);
	clean = utf8_clean(s, SIZE_MAX);
	j = json_string(clean);
	free(clean);
	return j;
}

json_t *cmd_json_textn(const char *s, size_t n)
{
	struct strbuf b = { 0 };
	json_t *j;

	if (s == NULL)
		return json_null();
	if (utf8_check(s, n) == n)
		return json_stringn(s, n);
	/* Clean each piece between NUL bytes; the NULs stay. */
	for (size_t at = 0; at <= n;) {
		size_t len = strnlen(s + at, n - at);
		char *piece = xstrndup(s + at, len), *clean = utf8_clean(piece, SIZE_MAX);

		strbuf_puts(&b, clean);
		free(piece);
		free(clean);
		at += len + 1;
		if (at <= n)
			strbuf_put(&b, "", 1);
	}
	j = json_stringn(b.s != NULL ? b.s : "", b.len);
	free(b.s);
	return j;
}

/* The shown copies handed out last, freed as the ring comes round. */
#define CMD_SHOWN_RING 16

const char *cmd_shownn(const char *s, size_t n)
{
	static char *ring[CMD_SHOWN_RING];
	static size_t next;
	struct strbuf b = { 0 };

	if (s == NULL)
		return NULL;
	utf8_escape(&b, s, n);
	free(ring[next]);
	ring[next] = b.s;
	next = (next + 1) % CMD_SHOWN_RING;
	return b.s;
}

const char *cmd_shown(const char *s)
{
	return s != NULL ? cmd_shownn(s, strlen(s)) : NULL;
}

void cmd_print_textn(FILE *out, const char *s, size_t n)
{
	fputs(cmd_shownn(s, n), out);
}

void cmd_print_line(FILE *out, const char *msg)
{
	fputs(cmd_shown(msg), out);
	fputc('\n', out);
}

void cmd_print_lines(FILE *out, const char *msg)
{
	if (msg == NULL)
		return;
	do {
		size_t n = strcspn(msg, "\n");

		cmd_print_textn(out, msg, n);
		fputc('\n', out);
		msg += n + (msg[n] != '\0');
	} while (*msg != '\0');
}

bool cmd_json_lines;

/* Print JSON on stdout and free it, indented, or on one line under cmd_json_lines; exits 2
 * if it could not be built (jansson refuses a string that is not UTF-8, such as a file
 * name in another encoding). */
void cmd_json_print(json_t *j)
{
	if (j == NULL) {
		fprintf(stderr,
		    "autopack-ctl: the result cannot be written as JSON: a text in it "
		    "(a file name, an argument) is not UTF-8\n");
		exit(CMD_EXIT_UNUSABLE);
	}
	json_dumpf_short(
	    j, stdout, (cmd_json_lines ? JSON_COMPACT : JSON_INDENT(2)) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	cmd_stdout_flush();
	json_decref(j);
}
