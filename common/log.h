/* Logging: one line per message, "<time> <program>[pid] <level>: text", to stderr or a
 * file chosen with log_open. Assertion failures log and abort. */
#ifndef AUTOPACK_LOG_H
#define AUTOPACK_LOG_H

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR
};

/* Name the program in every line; lines below `min` are dropped. */
void log_init(const char *program, enum log_level min);
/* Send lines to `path` (appended; created 0600 less what the umask removes) instead of
 * stderr; returns 0 or -errno. */
int log_open(const char *path);
/* Open the log file again by its path (after a rotation moved it); 0 or -errno, the old
 * file kept on failure. Nothing to do without a log file. */
int log_reopen(void);
/* Reopen the log file if its path no longer names the open file (it was rotated); 0 or
 * -errno. */
int log_follow(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log at error level and exit(status). */
void log_fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
