#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *log_program = "autopack";
static enum log_level log_min = LOG_INFO;
static FILE *log_file;
static char *log_path; /* the file log_open opened, for log_reopen and log_follow */

/* Set the program name and the lowest level logged. */
void log_init(const char *program, enum log_level min)
{
	log_program = program;
	log_min = min;
}

/* Send log lines to a file (appending) instead of stderr; -errno if it cannot be opened. */
int log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;

	if (f == NULL) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		return -saved;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	if (log_file != NULL)
		fclose(log_file);
	log_file = f;
	if (log_path != path) {
		free(log_path);
		log_path = xstrdup(path);
	}
	return 0;
}

/* Reopen the log file by its path (after a rotation); 0 or -errno. */
int log_reopen(void)
{
	return log_path != NULL ? log_open(log_path) : 0;
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
	return log_open(log_path);
}

/* Write one formatted line at `level`. */
static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	FILE *out = log_file != NULL ? log_file : stderr;
	char ts[32];

	time_iso8601(clock_wall_ms(), ts);
	flockfile(out);
	fprintf(out, "%s %s[%ld] %s: ", ts, log_program, (long)getpid(), names[level]);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	funlockfile(out);
}

/* Write one log line at `level`. */
void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* Log an error and exit with `code`. */
void log_fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(status);
}
