/* An LD_PRELOAD shim that holds a process for AUTOPACK_PQ_SHIM_SEND_MS (default 300) after
 * each statement it sends with libpq (PQsendQuery, PQsendQueryParams, PQsendPrepare,
 * PQsendQueryPrepared), as a process descheduled between its send and its wait is: the
 * server has the statement, the process has not started waiting for its answer; with
 * AUTOPACK_PQ_SHIM_MATCH, only the statements whose text holds it.
 * Built by the Makefile for the tests only (pq-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Hold the process for the shim's time (a signal ends the hold early), after statement
 * `sql` (NULL: one prepared before, its text unknown here). With AUTOPACK_PQ_SHIM_MATCH
 * set, only a statement whose text holds it is held. */
static void shim_hold(const char *sql)
{
	const char *v = getenv("AUTOPACK_PQ_SHIM_SEND_MS");
	const char *match = getenv("AUTOPACK_PQ_SHIM_MATCH");
	long ms = v != NULL ? atol(v) : 300;
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	if (match != NULL && (sql == NULL || strstr(sql, match) == NULL))
		return;
	nanosleep(&ts, NULL);
}

/* The real function `name`, resolved once into *slot. */
static void *shim_real(void **slot, const char *name)
{
	if (*slot == NULL)
		*slot = dlsym(RTLD_NEXT, name);
	return *slot;
}

int PQsendQuery(void *conn, const char *query)
{
	static void *real;
	int rc = ((int (*)(void *, const char *))shim_real(&real, "PQsendQuery"))(conn, query);

	shim_hold(query);
	return rc;
}

int PQsendQueryParams(void *conn, const char *command, int n, const void *types,
    const char *const *values, const int *lengths, const int *formats, int result_format)
{
	static void *real;
	int rc = ((int (*)(void *, const char *, int, const void *, const char *const *,
	    const int *, const int *, int))shim_real(&real, "PQsendQueryParams"))(
	    conn, command, n, types, values, lengths, formats, result_format);

	shim_hold(command);
	return rc;
}

int PQsendPrepare(void *conn, const char *name, const char *query, int n, const void *types)
{
	static void *real;
	int rc = ((int (*)(void *, const char *, const char *, int, const void *))shim_real(
	    &real, "PQsendPrepare"))(conn, name, query, n, types);

	shim_hold(query);
	return rc;
}

int PQsendQueryPrepared(void *conn, const char *name, int n, const char *const *values,
    const int *lengths, const int *formats, int result_format)
{
	static void *real;
	int rc = ((int (*)(void *, const char *, int, const char *const *, const int *, const int *,
	    int))shim_real(&real, "PQsendQueryPrepared"))(
	    conn, name, n, values, lengths, formats, result_format);

	shim_hold(NULL);
	return rc;
}
