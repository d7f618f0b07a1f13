/* Small helpers shared by every binary: allocation that aborts on exhaustion, clocks,
 * string formatting. Nothing here knows about databases, sockets or processes. */
#ifndef AUTOPACK_UTIL_H
#define AUTOPACK_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Allocate or abort with a message: out of memory is not an error a caller can handle. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Format into a fresh heap string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds on the monotonic clock. */
uint64_t clock_mono_ms(void);
/* Milliseconds since the Unix epoch. */
int64_t clock_wall_ms(void);
/* Microseconds since the Unix epoch. */
int64_t clock_wall_us(void);
/* Write the UTC time `ms` (epoch milliseconds) as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf
 * (log lines and file names); a time before or after the years TIME_DB_YEAR_MIN to
 * TIME_DB_YEAR_MAX is written as the first or the last second of them. */
void time_iso8601(int64_t ms, char buf[32]);

/* Length of a database timestamp: "YYYY-MM-DD HH:MM:SS.ffffff". */
#define TIME_DB_LEN 26
/* Write the UTC time `us` (epoch microseconds) as "YYYY-MM-DD HH:MM:SS.ffffff" into buf:
 * the one timestamp format of every database column (the Python original's, which its
 * readers parse and compare as text; docs/adoption.md); a time before or after the years
 * TIME_DB_YEAR_MIN to TIME_DB_YEAR_MAX is written as the first or the last second of them. */
void time_db(int64_t us, char buf[32]);
/* Write the current UTC time into buf as time_db does. */
void time_db_now(char buf[32]);
/* The years a database timestamp holds: four digits, and those the original's readers
 * (Python's datetime) take. */
#define TIME_DB_YEAR_MIN 1
#define TIME_DB_YEAR_MAX 9999
/* Rewrite timestamp text `in` (ISO 8601 with 'T' or ' ', optional seconds, any number of
 * fractional digits, optional 'Z' or +HH:MM / -HH:MM / +HHMM offset, or a date alone) as
 * time_db's UTC format into out. Returns 0, or -1 if `in` is not such a timestamp or its
 * UTC time is outside the years TIME_DB_YEAR_MIN to TIME_DB_YEAR_MAX (out is then
 * empty). */
int time_db_parse(const char *in, char out[32]);

/* Create directory `path` and its missing parents with `mode`. Returns 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);
/* mkdir_p, calling made(arg, dir) for each directory it creates, parents first. */
int mkdir_p_noting(
    const char *path, unsigned mode, void (*made)(void *arg, const char *dir), void *arg);

/* Read the open descriptor `fd` (a file from its offset, a pipe, a terminal) to its end
 * into *text (heap, NUL-terminated; *len bytes), at most `max` bytes; the descriptor stays
 * open. Returns 0, -EFBIG when it holds more than `max` bytes, or -errno (*text NULL). */
int fd_read_all(int fd, size_t max, char **text, size_t *len);
/* Read the file or stream at `path` whole into *text (heap, NUL-terminated; *len bytes),
 * reading at most `max` bytes; *regular says whether it is a regular file. With
 * `regular_only` the open waits for nothing (a FIFO's writer) and anything but a regular
 * file is not read: 0, *regular false, *text NULL. Returns 0, -EFBIG when it holds more
 * than `max` bytes, or -errno (*text is then NULL). */
int file_read_all(
    const char *path, size_t max, bool regular_only, char **text, size_t *len, bool *regular);

/* Return the length of the UTF-8 byte order mark that starts `s` (3), or 0. */
size_t utf8_bom_len(const char *s, size_t len);

/* Format a message into err (size errlen) and return -1: the failure path of functions
 * that report into a caller's buffer. A message longer than the buffer keeps its start
 * and its end, where it says what went wrong (str_elide). */
int errbuf_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Flush standard output. 0 when everything written to it went out; else its cause: the
 * errno of this flush, else `earlier` (the errno of an earlier failed one), else that of
 * the first failed stdout_flush, else EIO. Flush standard output with it, never with
 * fflush, so that a later call still names the cause. */
int stdout_flush(int earlier);
/* stdout_flush, a failure said on stderr: "PROG: writing standard output failed: CAUSE;
 * the output is incomplete" (a full disk, a reader gone, a closed descriptor). */
int stdout_finish(const char *prog, int earlier);

/* Return the 64-bit FNV-1a hash of a string (hash tables, fingerprint ids). */
uint64_t str_hash(const char *s);

/* Whether two nullable strings are equal (two NULLs are). */
bool str_eq(const char *a, const char *b);

/* Copy src into dst of size n, always NUL-terminated; returns strlen(src). */
size_t strlcpy_ap(char *dst, const char *src, size_t n);

/* Copy src into dst of size n (n >= 64), NUL-terminated. When it does not fit, its
 * middle is left out, marked with the count of bytes left out (" [... 4100 bytes left
 * out ...] "), so that both its start and its end (where a message says what went wrong) are
 * kept; the cuts fall between UTF-8 characters. Returns dst. */
char *str_elide(char *dst, const char *src, size_t n);
/* Format into dst of size n (n >= 64) as vsnprintf does, but a text that does not fit
 * keeps its start and its end, as str_elide cuts it: a message naming a long path or URL
 * still says what went wrong. */
void str_velide(char *dst, size_t n, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
