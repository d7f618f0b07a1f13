#include "common/log.h"
#include "common/dbfiles.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A message shorter than this is formatted on the stack. */
#define LOG_MSG_STACK 1024
/* How long a line waits for a stream (stderr, or a log file that is a FIFO, a socket or
 * a terminal) to take it, a pipe whose reader is slow or has stopped reading, before it is
 * dropped; once one was dropped, the next ones are not waited for until a line goes out
 * again. */
#define LOG_STREAM_WAIT_MS 1000
/* The most written to a stream at once once it is writable: a pipe takes a page without
 * blocking. */
#define LOG_STREAM_CHUNK 4096
/* The line that says how many lines a stream dropped: the count, the stream, the wait. */
#define LOG_DROPPED_FMT                                                                            \
	"%llu log line(s) were dropped: %s did not take them within %d ms (a pipe whose reader "   \
	"stopped reading, a paused terminal); the process went on"

static const char *log_program = "autopack";
static enum log_level log_min = LOG_INFO;
static enum log_format log_fmt = LOG_FORMAT_TEXT;
static FILE *log_file;
static char *log_path;        /* the file log_open opened, for log_reopen and log_follow */
static int log_journal = -1;  /* unknown until the first line */
static bool log_following;    /* log_follow before every line */
static bool log_file_failing; /* the last line to log_file could not be written */
static bool log_on_stderr;    /* the line being written goes to stderr, log_file or not */
static bool log_file_stream;  /* log_file is no regular file: written as a stream */

/* A stream lines go to: the lines it did not take in time, not said yet, and whether the
 * last one was dropped; under the lock of its FILE. */
struct log_stream {
	unsigned long long dropped;
	bool stuck;
	bool looked;  /* `regular` was found (at the first line) */
	bool regular; /* a regular file, which never makes a write wait: no poll */
};
static struct log_stream log_err_stream, log_file_stream_state;

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const char *const format_names[] = { "text", "json" };
/* syslog priorities: debug 7, info 6, warning 4, err 3 */
static const int level_priority[] = { 7, 6, 4, 3 };

static pid_t log_pid_cached; /* 0: not known (at the start, and in a forked child) */
static char log_pid_str[24]; /* "[PID] " of log_pid_cached */

/* Forget the cached pid in a forked child. */
static void log_pid_forget(void)
{
	log_pid_cached = 0;
}

/* Set the program name and the lowest level logged; a forked child forgets the cached
 * pid (registered here, before any thread or fork). */
void log_init(const char *program, enum log_level min)
{
	static bool hooked;

	log_program = program;
	log_min = min;
	if (!hooked) {
		hooked = true;
		pthread_atfork(NULL, NULL, log_pid_forget);
	}
}

/* This process's pid, asked of the kernel once (and again after a fork). */
static long log_pid(void)
{
	if (log_pid_cached == 0) {
		log_pid_cached = getpid();
		snprintf(log_pid_str, sizeof log_pid_str, "[%ld] ", (long)log_pid_cached);
	}
	return (long)log_pid_cached;
}

/* Set the lowest level logged and the line format. */
void log_configure(enum log_level min, enum log_format format)
{
	log_min = min;
	log_fmt = format;
}

/* Whether the file open for writing at `fd` begins as one of an SQLite database's files. */
static bool log_is_database(int fd)
{
	char self[64];

	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	return dbfiles_begins_as_database(self);
}

/* Send log lines to a file (appending) instead of stderr; -errno if it cannot be opened:
 * -ENXIO for a FIFO that no process reads, which is not waited for (a blocking open
 * would wait for a reader for ever, with the stop signals not yet taken, or on the loop
 * after SIGHUP); LOG_ENODEVICE for a socket or a device with nothing behind it (open says
 * ENXIO of them too); LOG_EDATABASE for a file that is an SQLite database's (its lines
 * would be appended into a database, this program's own or another's, through a link put
 * at the path since, or a path mistyped). A regular file is then written blocking; any
 * other (a FIFO, a terminal) as stderr is, a line it does not take in time dropped. */
int log_open(const char *path)
{
	struct stat st;
	int fd;
	FILE *f;

	/* Judged by its name first: a database's side file is not created to be refused. */
	if (dbfiles_names_database_side(path))
		return LOG_EDATABASE;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
	f = fd >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0 ? fdopen(fd, "a") :
	                                                                           NULL;
	if (f != NULL && log_is_database(fd)) {
		fclose(f);
		return LOG_EDATABASE;
	}
	if (f == NULL) {
		int saved = errno;
		struct stat ps;

		if (fd >= 0)
			close(fd);
		if (saved == ENXIO && (stat(path, &ps) != 0 || !S_ISFIFO(ps.st_mode)))
			return LOG_ENODEVICE;
		return -saved;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	if (log_file != NULL)
		fclose(log_file);
	log_file = f;
	log_file_stream = fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode);
	log_file_stream_state.stuck = false;
	log_file_stream_state.looked = false;
	if (log_path != path) {
		free(log_path);
		log_path = xstrdup(path);
	}
	return 0;
}

const char *log_file_path(void)
{
	return log_path;
}

/* Why log_open or log_reopen failed with `rc`, in words. */
const char *log_open_error(int rc)
{
	if (rc == LOG_EDATABASE)
		return "it is an SQLite database's file (the database, its -wal or its -shm), "
		       "which a log is never written into";
	if (rc == -ENXIO)
		return "a FIFO that no process has open for reading";
	if (rc == LOG_ENODEVICE)
		return "No such device or address: it is a socket, or a device with nothing behind "
		       "it (/dev/tty without a controlling terminal)";
	return strerror(-rc);
}

/* Keep the open file after a failed reopen, unless it was removed too (its directory
 * removed, say) and lines would reach nobody: then go on on stderr. Returns rc. */
static int log_reopen_failed(int rc)
{
	struct stat st;

	if (log_file != NULL && fstat(fileno(log_file), &st) == 0 && st.st_nlink == 0) {
		fclose(log_file);
		log_file = NULL;
	}
	return rc;
}

/* Reopen the log file by its path (after a rotation); 0 or -errno. */
int log_reopen(void)
{
	int rc = log_path != NULL ? log_open(log_path) : 0;

	return rc != 0 ? log_reopen_failed(rc) : 0;
}

/* Return true while lines go to a file, false on stderr. */
bool log_to_file(void)
{
	return log_file != NULL;
}

/* Reopen the log file if its path now names another file; 0 or -errno. */
int log_follow(void)
{
	struct stat open_st, path_st;

	if (log_path == NULL || log_file == NULL || fstat(fileno(log_file), &open_st) != 0)
		return 0;
	if (stat(log_path, &path_st) == 0 && path_st.st_dev == open_st.st_dev &&
	    path_st.st_ino == open_st.st_ino)
		return 0;
	return log_reopen();
}

/* Follow a rotated log file at every line, or not. */
void log_set_follow(bool on)
{
	log_following = on;
}

/* Look a name up in a table of n names; its index, or -1. */
static int log_name_find(const char *const *names, int n, const char *name)
{
	for (int i = 0; name != NULL && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

/* Read a level's name; -1 for a name that is not one. */
int log_level_parse(const char *name, enum log_level *out)
{
	int i = log_name_find(level_names, (int)ARRAY_SIZE(level_names), name);

	if (i < 0)
		return -1;
	*out = (enum log_level)i;
	return 0;
}

/* Read a format's name; -1 for a name that is not one. */
int log_format_parse(const char *name, enum log_format *out)
{
	int i = log_name_find(format_names, (int)ARRAY_SIZE(format_names), name);

	if (i < 0)
		return -1;
	*out = (enum log_format)i;
	return 0;
}

/* Name a level. */
const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

/* Name a format. */
const char *log_format_name(enum log_format format)
{
	return format_names[format];
}

/* Return the lowest level logged. */
enum log_level log_min_level(void)
{
	return log_min;
}

/* Return the line format. */
enum log_format log_line_format(void)
{
	return log_fmt;
}

/* Whether stderr is the stream JOURNAL_STREAM ("device:inode") names. */
static bool log_stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	char end;

	if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return false;
	if (fstat(STDERR_FILENO, &sb) != 0)
		return false;
	return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

/* Whether lines go to the journal: stderr is its stream and no log file is open. */
bool log_to_journal(void)
{
	if (log_file != NULL)
		return false;
	if (log_journal < 0)
		log_journal = log_stderr_is_journal();
	return log_journal == 1;
}

/* Append s as a JSON string (quoted, escaped; valid UTF-8 sequences pass through, a byte
 * that does not start one becomes U+FFFD). */
static void log_json_str(struct strbuf *b, const char *s)
{
	const char *end = s + strlen(s);

	strbuf_put(b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x80) {
			size_t left = (size_t)(end - s);
			size_t ok = utf8_check(s, left < 4 ? left : 4);
			size_t n = 1;

			/* The valid run here, or one replacement for the byte that starts none. */
			if (ok == 0) {
				strbuf_puts(b, "\xef\xbf\xbd");
			} else {
				while (n < ok && (unsigned char)s[n] >= 0x80)
					n++;
				strbuf_put(b, s, n);
			}
			s += n - 1;
		} else if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			strbuf_put(b, esc, 2);
		} else if (c == '\n') {
			strbuf_puts(b, "\\n");
		} else if (c == '\t') {
			strbuf_puts(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			strbuf_printf(b, "\\u%04x", c);
		} else {
			strbuf_put(b, s, 1);
		}
	}
	strbuf_put(b, "\"", 1);
}

/* Append one "key":"value" member when value is set. */
static void log_json_member(struct strbuf *b, const char *key, const char *value)
{
	if (value == NULL)
		return;
	strbuf_printf(b, ",\"%s\":", key);
	log_json_str(b, value);
}

/* Append the message as one line a terminal shows as text: its control characters,
 * newlines too, and bytes that are not UTF-8 (a phase name, a failure reason, a provider's
 * error text quoted in it) are escaped (utf8_escape), so that an id holding a newline is
 * not read as a line break, nor as an id holding a space. */
static void log_text_msg(struct strbuf *b, const char *msg)
{
	utf8_escape(b, msg, strlen(msg));
}

/* "[PID] " of this process, as log_pid. */
static const char *log_pid_text(void)
{
	log_pid();
	return log_pid_str;
}

static void log_vline(
    enum log_level level, const struct log_about *about, const char *fmt, va_list ap);

/* Write one line at `level` to stderr, not to the log file. */
static void log_stderr(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_on_stderr = true;
	log_vline(level, NULL, fmt, ap);
	log_on_stderr = false;
	va_end(ap);
}

/* Write a line to the stream at `fd`, each part once it can take it, waiting at most
 * LOG_STREAM_WAIT_MS for it (none while it is stuck): a reader that stopped reading a pipe
 * or FIFO (a pager, a stalled log shipper) or a paused terminal must not stop the
 * process's event loop, its drain with it. 0, 1 when the line (or its rest) was dropped,
 * else the errno of the write. Called under the lock of the stream's FILE. */
static int log_stream_write(int fd, struct log_stream *k, const char *s, size_t len)
{
	struct stat sb;

	if (!k->looked) {
		k->regular = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
		k->looked = true;
	}
	while (len > 0) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int r = k->regular ? 1 : poll(&p, 1, k->stuck ? 0 : LOG_STREAM_WAIT_MS);
		ssize_t n;

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			k->stuck = true;
			return 1;
		}
		n = write(fd, s, len < LOG_STREAM_CHUNK ? len : LOG_STREAM_CHUNK);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno;
		s += n;
		len -= (size_t)n;
	}
	k->stuck = false;
	return 0;
}

/* Put a line on `out` as a stream (log_stream_write), counting it when it was dropped;
 * 0 or the errno of the write. */
static int log_stream_put(FILE *out, struct log_stream *k, const char *s, size_t len)
{
	int rc;

	fflush(out);
	rc = log_stream_write(fileno(out), k, s, len);
	if (rc == 1)
		k->dropped++;
	return rc == 1 ? 0 : rc;
}

/* Before a line to the stream `out`: say how many lines it did not take, once it takes
 * lines again, in a line of its own to it. */
static void log_stream_say_dropped(FILE *out, struct log_stream *k)
{
	struct pollfd p = { .fd = fileno(out), .events = POLLOUT };
	unsigned long long n;

	flockfile(out);
	n = k->dropped;
	if (n > 0 && poll(&p, 1, 0) == 1)
		k->dropped = 0;
	else
		n = 0;
	funlockfile(out);
	if (n == 0)
		return;
	if (out == stderr)
		log_stderr(LOG_WARN, LOG_DROPPED_FMT, n, "standard error", LOG_STREAM_WAIT_MS);
	else
		log_msg(LOG_WARN, LOG_DROPPED_FMT, n, log_path, LOG_STREAM_WAIT_MS);
}

/* After a line went to the log file: when it could not be written (errno `err`: a full
 * disk, an I/O error) say so on stderr, naming the file and the cause, the first time,
 * and put the line there too; once a line is written again, say that on stderr. */
static void log_file_result(int err, const char *line, size_t len)
{
	bool was_failing = log_file_failing;

	log_file_failing = err != 0;
	if (err != 0 && !was_failing)
		log_stderr(LOG_ERROR,
		    "cannot write the log file %s: %s; until it can be written again, its lines"
		    " go to standard error",
		    log_path, strerror(err));
	if (err != 0) {
		flockfile(stderr);
		log_stream_put(stderr, &log_err_stream, line, len);
		funlockfile(stderr);
	} else if (was_failing) {
		log_stderr(LOG_WARN, "the log file %s is written again", log_path);
	}
}

/* Build and write one line at `level`. The message is formatted into a buffer on the
 * stack, or on the heap when it does not fit; the line is put together in one allocation
 * sized for it. Allocation failure aborts. */
static void log_vline(
    enum log_level level, const struct log_about *about, const char *fmt, va_list ap)
{
	FILE *out;
	struct log_stream *stream;
	bool journal;
	struct strbuf b = { 0 };
	char ts[32], small[LOG_MSG_STACK], *msg = small, *heap = NULL;
	va_list again;
	int n, werr;

	if (log_following)
		log_follow();
	out = log_file != NULL && !log_on_stderr ? log_file : stderr;
	stream = out == stderr ? &log_err_stream : log_file_stream ? &log_file_stream_state : NULL;
	if (stream != NULL && stream->dropped > 0)
		log_stream_say_dropped(out, stream);
	journal = log_to_journal();
	va_copy(again, ap);
	n = vsnprintf(small, sizeof small, fmt, ap);
	if (n >= 0 && (size_t)n >= sizeof small && (n = vasprintf(&heap, fmt, again)) >= 0)
		msg = heap;
	va_end(again);
	if (n < 0)
		abort();
	/* The prefix and the message; escaping or a long member grows it. */
	b.cap = (size_t)n + 160;
	b.s = xmalloc(b.cap);
	b.s[0] = '\0';
	if (journal)
		strbuf_printf(&b, "<%d>", level_priority[level]);
	if (log_fmt == LOG_FORMAT_JSON) {
		strbuf_puts(&b, "{");
		if (!journal) {
			time_iso8601(clock_wall_ms(), ts);
			strbuf_printf(&b, "\"ts\":\"%s\",", ts);
		}
		strbuf_printf(&b,
		    "\"level\":\"%s\",\"program\":\"%s\",\"pid\":%ld,\"msg\":", level_names[level],
		    log_program, log_pid());
		log_json_str(&b, msg);
		if (about != NULL) {
			log_json_member(&b, "session", about->session);
			log_json_member(&b, "run", about->run);
			log_json_member(&b, "phase", about->phase);
			if (about->attempt != 0)
				strbuf_printf(
				    &b, ",\"attempt\":%llu", (unsigned long long)about->attempt);
			if (about->worker != 0)
				strbuf_printf(&b, ",\"worker\":%d", about->worker);
		}
		strbuf_puts(&b, "}\n");
	} else {
		if (!journal) {
			time_iso8601(clock_wall_ms(), ts);
			/* "TS PROGRAM[PID] LEVEL: ", put piece by piece. */
			strbuf_puts(&b, ts);
			strbuf_puts(&b, " ");
			strbuf_puts(&b, log_program);
			strbuf_puts(&b, log_pid_text());
			strbuf_puts(&b, level_names[level]);
			strbuf_puts(&b, ": ");
		}
		log_text_msg(&b, msg);
		strbuf_puts(&b, "\n");
	}
	flockfile(out);
	if (stream != NULL) {
		werr = log_stream_put(out, stream, b.s, b.len);
	} else {
		errno = 0;
		fwrite(b.s, 1, b.len, out);
		fflush(out);
		werr = !ferror(out) ? 0 : errno != 0 ? errno : EIO;
		clearerr(out);
	}
	funlockfile(out);
	if (out != stderr)
		log_file_result(werr, b.s, b.len);
	free(b.s);
	free(heap);
}

/* Write one log line at `level`. */
void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	log_vline(level, NULL, fmt, ap);
	va_end(ap);
}

/* Write one log line at `level` about a session, run, phase, attempt or worker. */
void log_about(enum log_level level, const struct log_about *about, const char *fmt, ...)
{
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	log_vline(level, about, fmt, ap);
	va_end(ap);
}

/* Log an error and exit with `status`. */
void log_fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(status);
}
