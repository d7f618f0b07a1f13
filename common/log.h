/* Logging: one line per message to stderr or a file chosen with log_open. A line is text,
 * "<time> <program>[pid] <level>: message", or one JSON object {"ts", "level", "msg", and
 * "run", "phase", "attempt", "session", "worker" where the message is about them}. When
 * stderr is the systemd journal (JOURNAL_STREAM names it) and no log file is open, a line
 * starts with the syslog priority "<N>" instead of a time and level, as journald expects
 * (README.md, "Logs"). A line stderr, or a log file that is no regular file, does not take
 * within a second (a reader that stopped reading) is dropped and counted, and the count
 * said once it takes lines again. */
#ifndef AUTOPACK_LOG_H
#define AUTOPACK_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR
};

enum log_format {
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON
};

/* What a line is about; NULL strings and zero numbers are left out. */
struct log_about {
	const char *session;
	const char *run;
	const char *phase;
	uint64_t attempt;
	int worker;
};

/* Name the program in every line; lines below `min` are dropped. */
void log_init(const char *program, enum log_level min);
/* Set the lowest level written and the line format. */
void log_configure(enum log_level min, enum log_format format);
/* log_open's result for a file that is an SQLite database's (the database, its -wal or
 * -shm, by their first bytes): never appended to. */
#define LOG_EDATABASE (-100000)
/* log_open's result for a path that opens to no device: a socket, or a device with nothing
 * behind it (/dev/tty without a controlling terminal); open says ENXIO, as of a FIFO no
 * process reads. */
#define LOG_ENODEVICE (-100001)
/* Send lines to `path` (appended; created 0600 less what the umask removes) instead of
 * stderr; returns 0, -errno (-ENXIO: a FIFO no process reads, not waited for),
 * LOG_EDATABASE or LOG_ENODEVICE. */
int log_open(const char *path);
/* Why log_open or log_reopen failed with `rc`, in words. */
const char *log_open_error(int rc);
/* Open the log file again by its path (after a rotation moved it); 0 or -errno, the old
 * file kept on failure unless it was removed too (then lines go to stderr). Nothing to do
 * without a log file. */
int log_reopen(void);
/* The path log_open was given, or NULL when lines have never gone to a file. */
const char *log_file_path(void);
/* True while lines go to the log file; false when they go to stderr (no file opened, or
 * a reopen failed with the old file removed too). */
bool log_to_file(void);
/* Reopen the log file if its path no longer names the open file (it was rotated); 0 or
 * -errno. */
int log_follow(void);
/* With `on`, log_follow before every line: a process that logs rarely follows a rotated
 * file without being told. */
void log_set_follow(bool on);
/* The level named "error", "warn", "info" or "debug" into *out; -1 for another name. */
int log_level_parse(const char *name, enum log_level *out);
/* The format named "text" or "json" into *out; -1 for another name. */
int log_format_parse(const char *name, enum log_format *out);
const char *log_level_name(enum log_level level);
const char *log_format_name(enum log_format format);
/* The lowest level written, and the format (to pass both on to child processes). */
enum log_level log_min_level(void);
enum log_format log_line_format(void);
/* Whether lines go to the journal (they carry "<N>" priorities, no time). */
bool log_to_journal(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log a line about a session, run, phase, attempt or worker. */
void log_about(enum log_level level, const struct log_about *about, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Log at error level and exit(status). */
void log_fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
