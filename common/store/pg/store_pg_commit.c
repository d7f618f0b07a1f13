/* A write's COMMIT whose answer was lost with its connection (a server restarted, a
 * network cut, its session ended as it committed), settled once connected again: the
 * transaction's id, server process and the server's start are read before the COMMIT
 * (store_pg_commit_mark); after the loss the connection is made again, the old session
 * ended if it still holds the transaction (a cut network leaves it waiting inside it, and
 * the COMMIT could reach it late), and the transaction's status read
 * (store_pg_commit_settle; docs/postgresql.md, "Waiting for the database"). */
#include "common/store/pg/store_pg.h"
#include "common/store/pg/db_pg.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* How long the connection is tried again, and the old session waited for once asked to
 * end, in milliseconds. */
#define COMMIT_RECONNECT_MS 30000
#define COMMIT_END_WAIT_MS 10000

/* Sleep `ms` milliseconds. */
static void commit_sleep(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Whether the server is PostgreSQL 13 or later (pg_current_xact_id, pg_xact_status), not
 * 12 (txid_current, txid_status). */
static bool commit_new_names(struct db *db)
{
	return PQserverVersion(db_pg_conn(db)) >= 130000;
}

int store_pg_commit_mark(struct db *db, struct store_pg_doubt *m)
{
	struct db_stmt *q = NULL;
	int rc;

	memset(m, 0, sizeof *m);
	rc = db_prepare(db,
	    commit_new_names(db) ?
	        "SELECT CAST(pg_current_xact_id_if_assigned() AS TEXT), pg_backend_pid(),"
	        " CAST(pg_postmaster_start_time() AS TEXT), CAST(s.system_identifier AS TEXT)"
	        " FROM pg_control_system() s" :
	        "SELECT CAST(txid_current_if_assigned() AS TEXT), pg_backend_pid(),"
	        " CAST(pg_postmaster_start_time() AS TEXT), CAST(s.system_identifier AS TEXT)"
	        " FROM pg_control_system() s",
	    &q);
	if (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *xid = db_column_text(q, 0);

		/* No id: the transaction wrote nothing, and has nothing to lose. */
		m->none = xid == NULL;
		snprintf(m->xid, sizeof m->xid, "%s", xid != NULL ? xid : "");
		m->pid = db_column_int64(q, 1);
		snprintf(m->started, sizeof m->started, "%s", db_column_text(q, 2));
		snprintf(m->system, sizeof m->system, "%s", db_column_text(q, 3));
		rc = DB_OK;
	} else {
		m->xid[0] = '\0';
		rc = DB_ERROR;
	}
	db_finalize(q);
	return rc == DB_OK ? 0 : -1;
}

/* Connect again, trying for up to COMMIT_RECONNECT_MS (the server may be restarting);
 * 0, or -1 with why. */
static int commit_reconnect(struct db *db, char *why, size_t whylen)
{
	uint64_t end = clock_mono_ms() + COMMIT_RECONNECT_MS;
	enum db_pg_poll st;
	int fd;

	for (;;) {
		if (db_pg_reset_start(db, &fd) == DB_OK) {
			st = DB_PG_POLL_WRITE;
			while (st == DB_PG_POLL_READ || st == DB_PG_POLL_WRITE) {
				struct pollfd p = { .fd = fd,
					.events = st == DB_PG_POLL_READ ? POLLIN : POLLOUT };

				int n = poll(&p, 1, 1000);

				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0 || clock_mono_ms() > end) {
					db_pg_reset_abandon(db);
					st = DB_PG_POLL_FAILED;
					break;
				}
				st = db_pg_reset_poll(db, &fd);
			}
			if (st == DB_PG_POLL_OK)
				return 0;
		}
		if (db_fault(db) == DB_FAULT_NOTDB || clock_mono_ms() > end) {
			snprintf(why, whylen,
			    "the database could not be connected to again within %d s: %s",
			    COMMIT_RECONNECT_MS / 1000, db_errmsg(db));
			return -1;
		}
		commit_sleep(500);
	}
}

/* Read one text value of `sql` with parameters a and b (NULL: none) into out; 0, 1 when
 * there was no row, or -1 with why. */
static int commit_value(struct db *db, const char *sql, const char *a, const char *b, char *out,
    size_t outlen, char *why, size_t whylen)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, sql, &q);

	out[0] = '\0';
	if (rc == DB_OK) {
		if (a != NULL)
			db_bind_text(q, 1, a);
		if (b != NULL)
			db_bind_text(q, 2, b);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		const char *v = db_column_text(q, 0);

		snprintf(out, outlen, "%s", v != NULL ? v : "");
		rc = 0;
	} else if (rc == DB_DONE) {
		rc = 1;
	} else {
		snprintf(why, whylen, "%s", db_errmsg(db));
		rc = -1;
	}
	db_finalize(q);
	return rc;
}

/* End the old session while it still holds the transaction (its server process runs with
 * that transaction's id): 0 once it does not, or -1 with why. */
static int commit_end_old(struct db *db, const struct store_pg_doubt *m, char *why, size_t whylen)
{
	uint64_t end = clock_mono_ms() + COMMIT_END_WAIT_MS;
	char pid[24], ended[16];
	int rc;

	snprintf(pid, sizeof pid, "%lld", (long long)m->pid);
	for (;;) {
		/* backend_xid is the id without its epoch (a 32-bit xid). */
		rc = commit_value(db,
		    "SELECT CAST(pg_terminate_backend(pid) AS TEXT) FROM pg_stat_activity"
		    " WHERE pid = CAST(?1 AS INTEGER) AND backend_xid IS NOT NULL"
		    " AND CAST(CAST(backend_xid AS TEXT) AS BIGINT)"
		    " = CAST(?2 AS BIGINT) % 4294967296",
		    pid, m->xid, ended, sizeof ended, why, whylen);
		if (rc == 1)
			return 0;
		if (rc < 0) {
			snprintf(why + strlen(why), whylen - strlen(why),
			    " (the transaction is still in progress in server process %s, which could"
			    " not be ended)",
			    pid);
			return -1;
		}
		if (clock_mono_ms() > end) {
			snprintf(why, whylen,
			    "the transaction is still in progress in server process %s, which was asked"
			    " to end %d s ago",
			    pid, COMMIT_END_WAIT_MS / 1000);
			return -1;
		}
		commit_sleep(200);
	}
}

enum store_pg_settled store_pg_commit_settle(
    struct db *db, const struct store_pg_doubt *m, char *why, size_t whylen)
{
	char now[64], status[32];
	bool restarted, other;
	int rc;

	why[0] = '\0';
	if (m->none) {
		snprintf(why, whylen, "the transaction had written nothing");
		return STORE_PG_NOT_COMMITTED;
	}
	if (m->xid[0] == '\0') {
		snprintf(why, whylen, "its transaction's id was not read");
		return STORE_PG_UNKNOWN;
	}
	if (commit_reconnect(db, why, whylen) != 0)
		return STORE_PG_UNKNOWN;
	if (commit_value(db, "SELECT CAST(s.system_identifier AS TEXT) FROM pg_control_system() s",
	        NULL, NULL, now, sizeof now, why, whylen) != 0)
		return STORE_PG_UNKNOWN;
	other = strcmp(now, m->system) != 0;
	/* Another server at the address knows nothing of the transaction. */
	if (other) {
		snprintf(why, whylen,
		    "connected again, the address reaches another server (system identifier %s,"
		    " not %s), which knows nothing of transaction %s",
		    now, m->system, m->xid);
		return STORE_PG_UNKNOWN;
	}
	if (commit_value(db, "SELECT CAST(pg_postmaster_start_time() AS TEXT)", NULL, NULL, now,
	        sizeof now, why, whylen) != 0)
		return STORE_PG_UNKNOWN;
	restarted = strcmp(now, m->started) != 0;
	/* A session still inside the transaction could commit it later: it is ended first.
	 * After a restart no session of the old server is left. */
	if (!restarted && commit_end_old(db, m, why, whylen) != 0)
		return STORE_PG_UNKNOWN;
	rc = commit_value(db,
	    commit_new_names(db) ? "SELECT pg_xact_status(CAST(?1 AS xid8))" :
	                           "SELECT txid_status(CAST(?1 AS BIGINT))",
	    m->xid, NULL, status, sizeof status, why, whylen);
	/* An id past every one the restarted server has handed out: it was never written to
	 * its log, and the transaction did not commit. The refusal is recognised by the
	 * server's words (English unless its lc_messages says otherwise; else unknown). */
	if (rc < 0 && restarted && strstr(why, "is in the future") != NULL) {
		snprintf(why, whylen,
		    "transaction %s did not commit (the server restarted meanwhile, and the id is"
		    " past every one it knows)",
		    m->xid);
		return STORE_PG_NOT_COMMITTED;
	}
	if (rc != 0) {
		if (rc > 0)
			snprintf(
			    why, whylen, "the status of transaction %s could not be read", m->xid);
		return STORE_PG_UNKNOWN;
	}
	/* A server that restarted may have handed the id out again (one it had not written to
	 * its log before it stopped): only a status no committed transaction of ours could
	 * have is certain then. */
	if (strcmp(status, "aborted") == 0 || (restarted && strcmp(status, "in progress") == 0)) {
		snprintf(why, whylen, "transaction %s did not commit%s", m->xid,
		    restarted ? " (the server restarted meanwhile)" : "");
		return STORE_PG_NOT_COMMITTED;
	}
	if (strcmp(status, "committed") == 0 && !restarted) {
		snprintf(why, whylen, "transaction %s committed", m->xid);
		return STORE_PG_COMMITTED;
	}
	if (strcmp(status, "committed") == 0)
		snprintf(why, whylen,
		    "transaction %s is recorded committed, but the server restarted after the"
		    " COMMIT was sent, and a transaction it had not made durable gives its id to"
		    " another",
		    m->xid);
	else
		snprintf(why, whylen, "transaction %s is %s", m->xid,
		    status[0] != '\0' ? status : "too old to have a status");
	return STORE_PG_UNKNOWN;
}
