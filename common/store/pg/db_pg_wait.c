/* Waiting for the server's answer to a statement (db_pg_wait.h): the socket is polled in
 * steps of 100 ms, so that a wait can be reported, measured and given up; a statement
 * answered at once costs what PQexec's own wait does. */
#include "common/store/pg/db_pg_wait.h"
#include "common/store/pg/db_pg.h"
#include "common/store/db_waited.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_STEP_MS 100
/* How long a statement given up waits for the server to answer its cancellation before it
 * is left unanswered (a server gone silent, its host refusing the cancel request). */
#define WAIT_CANCEL_MS 2000
/* How long the statement that describes a wait waits for its answer. */
#define WAIT_SIDE_MS 2000

static const struct db_pg_watch *wait_watch;
/* What the last statement waited for, as last reported ("" when it was not). */
static char wait_reported[1024];
/* The cancel request of the connection of the statement waiting now (wait_cancel_ready
 * while one waits): made once per connection, kept for its next statements. */
static PGcancel *wait_cancel;
static const PGconn *wait_cancel_conn;
static int wait_cancel_pid;
static volatile sig_atomic_t wait_cancel_ready;

void db_pg_wait_watch(const struct db_pg_watch *w)
{
	wait_watch = w;
}

const char *db_pg_wait_reported(void)
{
	return wait_reported;
}

void db_pg_wait_cancel(void)
{
	char errbuf[256];

	if (wait_cancel_ready)
		PQcancel(wait_cancel, errbuf, sizeof errbuf);
}

/* The result of `sql` with its `nparams` parameters run on `side`, or NULL when it could
 * not be sent or its answer did not come within WAIT_SIDE_MS (the catalog views it reads
 * locked by another session, a server or network gone silent); *unanswered is then
 * whether it was sent. */
static PGresult *wait_side_exec(
    PGconn *side, const char *sql, const char *const *params, int nparams, bool *unanswered)
{
	uint64_t until = clock_mono_ms() + WAIT_SIDE_MS;
	PGresult *r, *last = NULL;

	if (!PQsendQueryParams(side, sql, nparams, NULL, params, NULL, NULL, 0))
		return NULL;
	*unanswered = true;
	while (PQisBusy(side)) {
		struct pollfd pfd = { .fd = PQsocket(side), .events = POLLIN };
		uint64_t now = clock_mono_ms();
		int pr;

		if (now >= until)
			return NULL;
		pr = poll(&pfd, 1, (int)(until - now));
		if ((pr < 0 && errno != EINTR) || (pr > 0 && !PQconsumeInput(side)))
			return NULL;
	}
	*unanswered = false;
	while ((r = PQgetResult(side)) != NULL) {
		PQclear(last);
		last = r;
	}
	return last;
}

/* The settings a connection made beside the store's takes in its start-up options, which
 * the server takes over those of the role and the database (ALTER ROLE/DATABASE ... SET),
 * as the store's connections make them (db_pg.c): a statement_timeout or lock_timeout set
 * there cancelled the wait report's statement and the leave of the fleet, a default of
 * SERIALIZABLE could fail the leave, and synchronous_commit off acknowledged it unflushed.
 * From PostgreSQL 17, transaction_timeout too. */
#define WAIT_SIDE_SETTINGS                                                                         \
	"-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0"        \
	" -c default_transaction_isolation=read\\ committed -c synchronous_commit=on"

/* A connection of its own to the server and database of `c`, made with its parameters
 * under application name `app` (2 s at most to connect), its search_path set to `path`
 * (when not NULL) and the settings above by its start-up options, after those of `c`
 * (PGOPTIONS). NULL when out of memory; else PQstatus says whether it was made. */
static PGconn *wait_side_connect(PGconn *c, const char *path, const char *app)
{
	PQconninfoOption *opts = PQconninfo(c);
	const char *keys[64], *vals[64];
	struct strbuf options = { 0 };
	size_t k = 0;
	PGconn *side;

	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL && k < 60; o++) {
		if (o->val == NULL || o->val[0] == '\0' ||
		    strcmp(o->keyword, "connect_timeout") == 0 ||
		    strcmp(o->keyword, "application_name") == 0)
			continue;
		if (strcmp(o->keyword, "options") == 0)
			strbuf_puts(&options, o->val);
		else {
			keys[k] = o->keyword;
			vals[k++] = o->val;
		}
	}
	strbuf_puts(&options, options.len > 0 ? " " WAIT_SIDE_SETTINGS : WAIT_SIDE_SETTINGS);
	if (PQserverVersion(c) >= 170000)
		strbuf_puts(&options, " -c transaction_timeout=0");
	/* In the options a backslash keeps the white space or backslash after it. */
	if (path != NULL)
		strbuf_puts(&options, options.len > 0 ? " -c search_path=" : "-c search_path=");
	for (const char *p = path; p != NULL && *p != '\0'; p++) {
		if (isspace((unsigned char)*p) || *p == '\\')
			strbuf_put(&options, "\\", 1);
		strbuf_put(&options, p, 1);
	}
	if (options.s != NULL) {
		keys[k] = "options";
		vals[k++] = options.s;
	}
	keys[k] = "connect_timeout";
	vals[k++] = "2";
	keys[k] = "application_name";
	vals[k++] = app;
	keys[k] = vals[k] = NULL;
	side = PQconnectdbParams(keys, vals, 0);
	PQconninfoFree(opts);
	free(options.s);
	return side;
}

PGresult *db_pg_side_exec(PGconn *c, const char *path, const char *app, const char *sql,
    const char *const *params, int nparams, bool *unanswered, char *why, size_t n)
{
	PGconn *side;
	PGresult *r = NULL;

	*unanswered = false;
	side = wait_side_connect(c, path, app);
	if (side != NULL && PQstatus(side) == CONNECTION_OK)
		r = wait_side_exec(side, sql, params, nparams, unanswered);
	if (r != NULL &&
	    (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)) {
		PQfinish(side);
		return r;
	}
	snprintf(why, n, "%s",
	    side == NULL                        ? "out of memory" :
	        r != NULL                       ? PQresultErrorMessage(r) :
	        PQstatus(side) == CONNECTION_OK ? "no answer within 2 s" :
	                                          PQerrorMessage(side));
	for (char *p = why; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	PQclear(r);
	PQfinish(side);
	return NULL;
}

bool db_pg_refused_missing(PGconn *c)
{
	const char *db = PQdb(c);
	char said[160];

	if (c == NULL || PQstatus(c) == CONNECTION_OK || db == NULL)
		return false;
	snprintf(said, sizeof said, "database \"%s\" does not exist", db);
	return strstr(PQerrorMessage(c), said) != NULL;
}

bool db_pg_gone(PGconn *c, char *why, size_t n)
{
	PGconn *side = wait_side_connect(c, NULL, "autopack probe");
	bool gone = db_pg_refused_missing(side);

	db_pg_conn_msg(side, why, n);
	PQfinish(side);
	return gone;
}

/* Call the watch's gone when the connection of the statement that ended is lost and its
 * database is gone from the server (db_pg_gone). */
static void wait_gone(PGconn *c, const struct db_pg_watch *w)
{
	char why[512], what[800];

	if (w == NULL || w->gone == NULL || PQstatus(c) != CONNECTION_BAD ||
	    !db_pg_gone(c, why, sizeof why))
		return;
	snprintf(what, sizeof what,
	    "the database %s is gone from the server (dropped, or renamed, after this process "
	    "connected to it; connecting to it again: %s)",
	    PQdb(c), why);
	w->gone(what);
}

/* What the server session of `c` waits for, read on a connection of its own made with the
 * same parameters (db_pg_side_exec): the locks it waits for and the server processes that
 * hold them, with how to find and end them; else its wait event. That connection is made
 * anew from the parameters, and may reach another server at the address, or another
 * database under the name: the session it reads must be one of this database, user and
 * application name (the server reports the last to the client), else nothing of it is
 * reported (another server's process of that number, or none, said "the server is running
 * it" or named another process's locks). */
static void wait_what(PGconn *c, const char *path, char *out, size_t n)
{
	static const char sql[] =
	    "SELECT (SELECT string_agg(l.mode || ' on ' || CASE WHEN l.relation IS NOT NULL THEN"
	    " 'table ' || CAST(CAST(l.relation AS regclass) AS text) WHEN l.locktype = 'advisory'"
	    " THEN 'an advisory lock' ELSE l.locktype END, ', ') FROM pg_locks l WHERE l.pid ="
	    " CAST($1 AS int) AND NOT l.granted),"
	    " (SELECT string_agg(format('server process %s (%s, user %s%s, %s, its transaction"
	    " open for %s s)', a.pid, coalesce(nullif(a.application_name, ''), 'no application"
	    " name'), a.usename, coalesce(', from ' || host(a.client_addr), ''), a.state,"
	    " coalesce(CAST(round(extract(epoch FROM now() - a.xact_start)) AS text), '?')),"
	    " '; ') FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids(CAST($1 AS"
	    " int)))),"
	    " (SELECT string_agg(CAST(p AS text), ', ') FROM unnest(pg_blocking_pids(CAST($1 AS"
	    " int))) AS p),"
	    " (SELECT a.wait_event_type || ' ' || a.wait_event FROM pg_stat_activity a WHERE"
	    " a.pid = CAST($1 AS int)),"
	    " EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = CAST($1 AS int) AND"
	    " a.datname = current_database() AND a.usename = current_user AND (CAST($2 AS text) IS"
	    " NULL OR a.application_name = CAST($2 AS text)))";
	const char *app = PQparameterStatus(c, "application_name");
	char pid[24], why[512];
	bool unanswered;
	PGresult *r;

	snprintf(pid, sizeof pid, "%d", PQbackendPID(c));
	r = db_pg_side_exec(c, path, "autopack wait report", sql, (const char *const[]){ pid, app },
	    2, &unanswered, why, sizeof why);
	if (r != NULL && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 4), "t") != 0)
		snprintf(out, n,
		    "what server process %s waits for could not be read (the connection made to "
		    "read it reaches no session %s of database %s, user %s and application %s: "
		    "another server answers at the address, or another database under the name); "
		    "pg_locks and pg_stat_activity on the server show it",
		    pid, pid, PQdb(c), PQuser(c), app != NULL ? app : "?");
	else if (r != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		snprintf(out, n,
		    "it waits for %s, held by %s (SELECT * FROM pg_locks WHERE pid IN (%s) lists "
		    "what they hold; SELECT pg_terminate_backend(PID) ends one)",
		    PQgetvalue(r, 0, 0), PQgetisnull(r, 0, 1) ? "?" : PQgetvalue(r, 0, 1),
		    PQgetisnull(r, 0, 2) ? "?" : PQgetvalue(r, 0, 2));
	else if (r != NULL && PQntuples(r) == 1)
		snprintf(out, n, "the server is running it (server process %s, wait event %s)", pid,
		    PQgetisnull(r, 0, 3) ? "none" : PQgetvalue(r, 0, 3));
	else
		snprintf(out, n,
		    "what server process %s waits for could not be read (%s); pg_locks and "
		    "pg_stat_activity show it",
		    pid, r != NULL ? "no row" : why);
	for (char *p = out; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	PQclear(r);
}

void db_pg_wait_arm(PGconn *c)
{
	int pid = PQbackendPID(c);

	if (wait_cancel == NULL || wait_cancel_conn != c || wait_cancel_pid != pid) {
		wait_cancel_ready = 0;
		PQfreeCancel(wait_cancel);
		wait_cancel = PQgetCancel(c);
		wait_cancel_conn = c;
		wait_cancel_pid = pid;
	}
	wait_cancel_ready = wait_cancel != NULL;
}

/* Send the cancel request `arg` (a PGcancel, freed here) and wait for its answer. */
static void *wait_cancel_send(void *arg)
{
	char errbuf[256];

	PQcancel(arg, errbuf, sizeof errbuf);
	PQfreeCancel(arg);
	return NULL;
}

/* Ask the server to cancel the statement running on `c`, on a thread of its own: PQcancel
 * waits for its answer without a limit (a host that takes the request and never answers),
 * and a statement given up must not wait with it. When no thread can start, the request
 * is sent here. */
static void wait_cancel_ask(PGconn *c)
{
	PGcancel *cancel = PQgetCancel(c);
	sigset_t all, was;
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (cancel == NULL)
		return;
	if (pthread_attr_init(&attr) != 0) {
		wait_cancel_send(cancel);
		return;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	/* The thread blocks every signal: a process's signals are for its main thread (the
	 * supervisor's loop), whose handlers may be gone at the end. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &was);
	rc = pthread_create(&t, &attr, wait_cancel_send, cancel);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		wait_cancel_send(cancel);
}

PGresult *db_pg_wait(PGconn *c, const char *path, int sent, const char *sql)
{
	const struct db_pg_watch *w = wait_watch;
	uint64_t start = clock_mono_ms(), now = start, next = start + DB_PG_WAIT_FIRST_MS, ms;
	uint64_t stop_at = 0;
	const char *why = NULL;
	PGresult *last = NULL;
	bool unanswered = false;

	wait_reported[0] = '\0';
	if (!sent) {
		wait_cancel_ready = 0;
		wait_gone(c, w);
		return NULL;
	}
	while (!unanswered) {
		PGresult *r;
		ExecStatusType st;

		while (PQisBusy(c)) {
			struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
			int pr = poll(&pfd, 1, WAIT_STEP_MS);

			if ((pr != 0 && (pr > 0 || errno != EINTR) && !PQconsumeInput(c)) ||
			    pfd.fd < 0)
				break;
			now = clock_mono_ms();
			if (pr != 0 || now - start < WAIT_STEP_MS)
				continue;
			if (w != NULL && w->stop != NULL && why == NULL &&
			    (why = w->stop()) != NULL) {
				wait_cancel_ask(c);
				stop_at = now;
			}
			if (why != NULL && now - stop_at >= WAIT_CANCEL_MS) {
				unanswered = true;
				break;
			}
			if (w != NULL && w->waiting != NULL && why == NULL && now >= next) {
				wait_what(c, path, wait_reported, sizeof wait_reported);
				w->waiting((double)(now - start) / 1000.0, wait_reported);
				next += DB_PG_WAIT_EVERY_MS;
			}
		}
		/* A statement's result, an error's, or NULL once all came (PQexec's rule: the
		 * last is returned). */
		if (unanswered || (r = PQgetResult(c)) == NULL)
			break;
		st = PQresultStatus(r);
		PQclear(last);
		last = r;
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH ||
		    PQstatus(c) == CONNECTION_BAD)
			break;
	}
	wait_cancel_ready = 0;
	now = clock_mono_ms();
	ms = now - start;
	db_waited_note(start, now, sql);
	if (why != NULL && w->stopped != NULL)
		w->stopped(why, (double)ms / 1000.0, !unanswered);
	wait_gone(c, w);
	return last;
}
