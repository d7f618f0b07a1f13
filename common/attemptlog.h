/* Where an attempt's check command writes its output:
 * <workspace>/.autopack/logs/<run>__<phase>__a<attempt>.<stream>.txt, with the run and
 * phase ids made file-name-safe. The worker writes there; the supervisor points at it. */
#ifndef AUTOPACK_ATTEMPTLOG_H
#define AUTOPACK_ATTEMPTLOG_H

#include <stdint.h>

/* The path (a heap string) of an attempt's "stdout" or "stderr" log. */
char *attemptlog_path(const char *workspace, const char *run_id, const char *phase_id,
    int64_t attempt, const char *stream);

#endif
