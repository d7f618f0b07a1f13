/* An LD_PRELOAD shim around libpq's sends (PQsendQuery, PQsendQueryParams, PQsendPrepare,
 * PQsendQueryPrepared), in one of two modes:
 * - by default, it holds a process for AUTOPACK_PQ_SHIM_SEND_MS (default 300) after each
 *   statement it sends, as a process descheduled between its send and its wait is: the
 *   server has the statement, the process has not started waiting for its answer;
 * - with AUTOPACK_PQ_SHIM_GATE set to a path, it holds the first statement whose text holds
 *   AUTOPACK_PQ_SHIM_GATE_MATCH (a prepared statement's text is the one PQsendPrepare gave
 *   its name) before it is sent: it creates PATH.held, then waits until PATH exists, and
 *   sends it; every other statement passes at once. A test so stops a process at a chosen
 *   statement, changes the database, and lets it go on.
 * Built by the Makefile for the tests only (pq-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The names of the statements prepared whose text holds the gate's match. */
#define SHIM_NAMES 64
static char shim_names[SHIM_NAMES][64];
static int shim_nnames;
static int shim_gate_passed;

/* Hold the process for the shim's time (a signal ends the hold early), unless gated. */
static void shim_hold(void)
{
	const char *v = getenv("AUTOPACK_PQ_SHIM_SEND_MS");
	long ms = v != NULL ? atol(v) : 300;
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	if (getenv("AUTOPACK_PQ_SHIM_GATE") != NULL)
		return;
	nanosleep(&ts, NULL);
}

/* Whether `text` holds the gate's match (never, without a gate). */
static int shim_matches(const char *text)
{
	const char *m = getenv("AUTOPACK_PQ_SHIM_GATE_MATCH");

	return getenv("AUTOPACK_PQ_SHIM_GATE") != NULL && m != NULL && text != NULL &&
	    strstr(text, m) != NULL;
}

/* Whether prepared statement `name` was prepared from a text the gate matches. */
static int shim_name_matches(const char *name)
{
	for (int i = 0; name != NULL && i < shim_nnames; i++)
		if (strcmp(shim_names[i], name) == 0)
			return 1;
	return 0;
}

/* Hold a matching statement, the first one only, until the gate's file exists. */
static void shim_gate(int match)
{
	const char *gate = getenv("AUTOPACK_PQ_SHIM_GATE");
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000000L };
	char held[4096];
	int fd;

	if (!match || shim_gate_passed)
		return;
	shim_gate_passed = 1;
	snprintf(held, sizeof held, "%s.held", gate);
	if ((fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	while (access(gate, F_OK) != 0)
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
	int rc;

	shim_gate(shim_matches(query));
	rc = ((int (*)(void *, const char *))shim_real(&real, "PQsendQuery"))(conn, query);
	shim_hold();
	return rc;
}

int PQsendQueryParams(void *conn, const char *command, int n, const void *types,
    const char *const *values, const int *lengths, const int *formats, int result_format)
{
	static void *real;
	int rc;

	shim_gate(shim_matches(command));
	rc = ((int (*)(void *, const char *, int, const void *, const char *const *, const int *,
	    const int *, int))shim_real(&real, "PQsendQueryParams"))(
	    conn, command, n, types, values, lengths, formats, result_format);
	shim_hold();
	return rc;
}

int PQsendPrepare(void *conn, const char *name, const char *query, int n, const void *types)
{
	static void *real;
	int rc = ((int (*)(void *, const char *, const char *, int, const void *))shim_real(
	    &real, "PQsendPrepare"))(conn, name, query, n, types);

	if (shim_matches(query) && name != NULL && shim_nnames < SHIM_NAMES)
		snprintf(shim_names[shim_nnames++], sizeof shim_names[0], "%s", name);
	shim_hold();
	return rc;
}

int PQsendQueryPrepared(void *conn, const char *name, int n, const char *const *values,
    const int *lengths, const int *formats, int result_format)
{
	static void *real;
	int rc;

	shim_gate(shim_name_matches(name));
	rc = ((int (*)(void *, const char *, int, const char *const *, const int *, const int *,
	    int))shim_real(&real, "PQsendQueryPrepared"))(
	    conn, name, n, values, lengths, formats, result_format);
	shim_hold();
	return rc;
}
