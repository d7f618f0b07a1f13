/* Where a phase's check command writes its output, and reading its end back:
 * <workspace>/.autopack/logs/<run>__<phase>__a<attempt>.{stdout,stderr}.txt, with run and
 * phase reduced to [A-Za-z0-9._-] (other characters as '_', a leading '.' as '_'); an id
 * that lost a character so, is empty, or has a '_' first, last or doubled is followed by
 * "-" and a hash of it (8 hex digits), so that two phases do not share a log; when the
 * two would make a name past NAME_MAX, each longer than 110 bytes keeps its first 101 and
 * that mark. The worker writes these files; `autopack-ctl failed` and the supervisor read
 * them. */
#ifndef AUTOPACK_CHECKLOG_H
#define AUTOPACK_CHECKLOG_H

#include <stddef.h>
#include <stdint.h>

/* The path of attempt `attempt`'s "stdout" or "stderr" log (heap string). */
char *checklog_path(const char *workspace, const char *run_id, const char *phase_id,
    int64_t attempt, const char *stream);
/* Read the last bytes of `path` (at most n - 1) into out, control characters but newlines
 * as spaces. Returns the number of bytes read; 0 with out empty when the file is missing,
 * empty or unreadable. */
size_t checklog_tail(const char *path, char *out, size_t n);

#endif
