/*
 * Several supervisors on one PostgreSQL database (docs/postgresql.md, "Several hosts"), in
 * the store's own types. Each supervisor registers (host, pid, start, heartbeat, lease
 * timeout); its heartbeat is written in every group commit, which is also its fence: a
 * supervisor declared lost finds its row no longer live and writes nothing more. Another
 * supervisor declares a silent one lost once its lease timeout has passed (the server's
 * clock decides), closes its open attempts as supervisor_lost and requeues their phases.
 * Commands reach supervisors through supervisor_commands, with a NOTIFY on
 * "autopack_control" to wake them; a commit that frees work sends a NOTIFY on
 * "autopack_queue". Only the PostgreSQL backend has these tables: call these functions
 * only when store_fleet(st).
 */
#ifndef AUTOPACK_STORE_FLEET_H
#define AUTOPACK_STORE_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"
#include "common/store/store_drain.h"

/* The channels supervisors listen on. */
#define FLEET_CHANNEL_CONTROL "autopack_control"
#define FLEET_CHANNEL_QUEUE "autopack_queue"

/* A supervisor's row. Heap strings. */
struct fleet_member {
	int64_t id;
	char *host;
	int64_t pid;
	char *started_at;
	char *heartbeat_at;
	double heartbeat_age_s; /* by the server's clock */
	int64_t lease_timeout_ms;
	char *state; /* live, stopped, lost */
	char *session_id;
	char *control_socket;
	char *status_json; /* what it wrote with its last heartbeat */
	int64_t lost_by;   /* the supervisor that declared it lost, or 0 */
	int64_t rejected;  /* late writes it refused after it was declared lost */
};

/* A supervisor declared lost by store_fleet_rescue. */
struct fleet_lost {
	int64_t id;
	char *host;
	int64_t pid;
	double silent_s;
};

/* A command for a supervisor. */
struct fleet_command {
	int64_t id;
	char *command;
	char *args;    /* a JSON array of strings */
	bool answered; /* this supervisor answered it already */
	bool settled;  /* sent FLEET_COMMAND_SETTLE_S ago or more */
};

/* After how long a command id is taken as settled: any command with a lower id that
 * was to become visible has by then (ids are taken at the INSERT, rows become visible at
 * the COMMIT, not necessarily in the order of their ids). */
#define FLEET_COMMAND_SETTLE_S 60

/* A supervisor's answer to a command. */
struct fleet_result {
	int64_t supervisor_id;
	bool ok;
	char *result;
};

/* Whether the database is shared by several supervisors (PostgreSQL). */
bool store_fleet(const struct store *st);

/* --- the supervisor's side (common/store/pg/store_fleet.c) --- */

/* Who registers: this supervisor. */
struct fleet_self {
	const char *host;
	int64_t pid;
	int64_t lease_timeout_ms;
	const char *control_socket;
	bool retry_failed;  /* FAILED phases are eligible too (the order of a run counts them) */
	int64_t batch_size; /* the session's --batch-size, 0 for none: claims stay within it */
};

/* A drain session's budgets (store_fleet_session_budget): its settings' --batch-size and
 * --max-total-minutes (0: none), the time since it started by the server's clock, and the
 * attempts it started as --batch-size counts them. */
struct fleet_budget {
	int64_t batch_size;
	int64_t max_total_minutes;
	int64_t elapsed_ms;
	int64_t started;
};

/* Register this supervisor: its row, live, with a first heartbeat (outside a
 * transaction); the drain's statements then open attempts in its name, one phase per run
 * at a time across supervisors and in the run's order, and leave out the runs other
 * supervisors lease. *id receives its id. */
int store_fleet_register(
    struct store_drain *d, const struct fleet_self *self, int64_t *id, struct store_err *err);
/* Begin (`lock`) the transaction in which this supervisor chooses its drain session,
 * holding the lock that orders supervisors choosing theirs, so that two starting together
 * share one; or commit it, releasing the lock (nothing when none is open). The lock is
 * the transaction's: the server ends the session of a supervisor stopped while holding
 * it after half its lease. STORE_EBUSY when another holds it past lock_timeout (nothing
 * begun; this supervisor's heartbeat renewed; err says who holds it, its server process
 * to *holder): the caller tries again, unless *lost: this supervisor is no longer live
 * (another declared it lost meanwhile), and must write nothing more. STORE_EIO on
 * failure, or when it is held outside any transaction, which the server never ends (err
 * says by whom and what to do). */
int store_fleet_session_lock(
    struct store_drain *d, bool lock, int *holder, bool *lost, struct store_err *err);
/* The session of a live supervisor that drains with the same `join_key` (heap), or NULL
 * (in the transaction of store_fleet_session_lock). */
int store_fleet_session_find(
    struct store_drain *d, const char *join_key, char **session_id, struct store_err *err);
/* Record the session this supervisor drains in and its join key, only while it is live:
 * *lost, and nothing written, when it is not (the caller rolls its choice back). */
int store_fleet_session_set(struct store_drain *d, const char *session_id, const char *join_key,
    bool *lost, struct store_err *err);
/* Read the budgets of session `session_id` into *b; STORE_EINVAL
 * when there is no such session, STORE_EIO on failure (common/store/pg/
 * store_fleet_budget.c). */
int store_fleet_session_budget(
    struct store_drain *d, const char *session_id, struct fleet_budget *b, struct store_err *err);
/* The attempts session `session_id` started, as --batch-size counts them, into *n
 * (outside a transaction); STORE_EIO on failure. */
int store_fleet_session_started(
    struct store_drain *d, const char *session_id, int64_t *n, struct store_err *err);
/* The attempts the session had started, as --batch-size counts them, when the last
 * store_drain_attempts_open read them (a claim within the session's --batch-size, with
 * the claims of this transaction before it), or -1 when it did not read them. */
int64_t store_fleet_claimed_started(const struct store_drain *d);
/* How many other live supervisors drain in `session_id` (outside a transaction). */
int store_fleet_session_others(
    struct store_drain *d, const char *session_id, int64_t *n, struct store_err *err);
/* In the group: renew the heartbeat (the server's clock) and save `status_json`; *lost
 * is set, and nothing written, when this supervisor is no longer live (declared lost by
 * another): the group must then be rolled back and nothing more written. The same
 * statement reads the group's transaction id (store_fleet_txn), which the row's new
 * version carries as its xmin: the group's stamp. */
int store_fleet_heartbeat(
    struct store_drain *d, const char *status_json, bool *lost, struct store_err *err);
/* COMMIT the group whose heartbeat store_fleet_heartbeat renewed, the heartbeat renewed
 * again by the server's clock in the same round trip: the others see it as fresh as the
 * commit, however long the group took. STORE_EIO on failure (the connection lost: the
 * group is in doubt, as after COMMIT). */
int store_fleet_commit(struct store_drain *d, struct store_err *err);
/* Whether this supervisor has been found live on the present connection (its
 * registration, or a heartbeat written on it): after a reconnection, not until a
 * heartbeat has been. */
bool store_fleet_confirmed(const struct store_drain *d);
/* Renew the heartbeat alone (outside a transaction); *lost, and nothing written, when
 * this supervisor is no longer live. Found live, it is confirmed on this connection. */
int store_fleet_confirm(struct store_drain *d, bool *lost, struct store_err *err);
/* In its own transaction: declare every live supervisor (not this one) whose heartbeat is
 * older than its lease timeout, and whose lease timeout is at most `connected_ms` (the time
 * this supervisor's connection has been up), lost; close the open attempts of every
 * supervisor that is not live as supervisor_lost and put their EXECUTING phases back to
 * QUEUED, and notify the others when anything was closed. *lost (heap, *nlost items) lists
 * the supervisors declared lost now; *closed counts the attempts closed. */
int store_fleet_rescue(struct store_drain *d, int64_t connected_ms, struct fleet_lost **lost,
    size_t *nlost, int *closed, struct store_err *err);
/* Free what store_fleet_rescue returned. */
void store_fleet_lost_free(struct fleet_lost *v, size_t n);
/* Count the open attempts of other supervisors, and of those the ones of supervisors no
 * longer live (outside a transaction). */
int store_fleet_open_elsewhere(
    struct store_drain *d, int64_t *open, int64_t *orphaned, struct store_err *err);
/* A group's transaction on the server: its id (pg_current_xact_id(), with its epoch) and the
 * server process of the connection it ran on. */
struct fleet_txn {
	int64_t xid;
	int pid;
};

/* What became of a group's transaction whose COMMIT went unanswered. */
enum fleet_txn_state {
	FLEET_TXN_COMMITTED,
	FLEET_TXN_ABORTED,
	FLEET_TXN_RUNNING, /* not known yet (still in progress, or the row's lock held by
	                    * another transaction): ask again later */
};

/* The transaction of the group whose heartbeat was written last: call it after a COMMIT
 * went unanswered, before anything else runs on the drain ({0, 0} before any heartbeat). */
struct fleet_txn store_fleet_txn(const struct store_drain *d);
/* Learn what became of transaction `t`, whose COMMIT went unanswered, on a connection made
 * since (outside a transaction, before anything else writes this supervisor's row), into
 * *state. The transaction's heartbeat updated this supervisor's row and holds the row's
 * lock until it ends: while the lock cannot be had (the old session lives on, e.g. when
 * the network was cut rather than the server, and a COMMIT may still reach it), that
 * session is asked to end (pg_terminate_backend, allowed on a session of the same role)
 * and *state is FLEET_TXN_RUNNING, with what was done in err->text: ask again later; once
 * the session has ended its transaction is final. When that session no longer holds `t`,
 * the lock is another transaction's (another supervisor declaring silent ones lost, or
 * rescuing their attempts, holds it a moment): *state is FLEET_TXN_RUNNING too, and
 * err->text says so. Once the lock is had, the row's version
 * says: written by transaction `t` (its xmin), it committed; else it did not (or another
 * supervisor declared this one lost since, which the caller learns next). Returns 0, or
 * STORE_EIO when the server could not be asked (err). */
int store_fleet_txn_settle(struct store_drain *d, const struct fleet_txn *t,
    enum fleet_txn_state *state, struct store_err *err);
/* Leave: this supervisor's row is no longer live (outside a transaction). *lost, when not
 * NULL, is set when the row was not live any more and not stopped: another supervisor
 * declared this one lost. A row found stopped was left by an earlier leave whose answer
 * was lost with the connection: the leave may be sent again. */
int store_fleet_leave(struct store_drain *d, bool *lost, struct store_err *err);
/* What a leave on a connection of its own did. */
enum fleet_aside {
	FLEET_ASIDE_LEFT,       /* the row was live, and is stopped now */
	FLEET_ASIDE_NOT_LIVE,   /* the row was not live (lost, stopped): nothing changed */
	FLEET_ASIDE_GONE,       /* no row has this supervisor's id: nothing changed */
	FLEET_ASIDE_UNANSWERED, /* sent, not answered within 2 s: the server may still apply
	                         * it (the row waited for another transaction's lock) */
	FLEET_ASIDE_FAILED,     /* not applied: no connection, or the server's error */
};
/* What became of the drain session of a leave on a connection of its own. */
enum fleet_aside_session {
	FLEET_SESSION_OPEN,       /* not ended: the leave changed nothing, or was not applied */
	FLEET_SESSION_ENDED,      /* ended, with the leave: no other supervisor is live in it */
	FLEET_SESSION_GOES_ON,    /* other supervisors are live in it: left open for them */
	FLEET_SESSION_UNRECORDED, /* no row has its id (not committed yet): nothing to end */
	FLEET_SESSION_WAS_ENDED,  /* ended before (by another supervisor): left as it was */
};
/* Leave as store_fleet_leave does, on a connection of its own to the same database (2 s at
 * most to connect and 2 s to answer), for when the store's connection is busy with a
 * statement the server left unanswered; in the same statement, end drain session
 * `session_id` (NULL: none chosen) with `stop_reason`, as store_drain_session_close does,
 * when the leave stopped the row, the session is recorded and open, and no other
 * supervisor is live in it. *how says what it did, *session what became of the session
 * (the count of the others live in it in *others); for FLEET_ASIDE_NOT_LIVE `found` (n
 * bytes) holds the row's state as it was read ("" when another transaction changed it
 * meanwhile). STORE_EIO naming why for FLEET_ASIDE_UNANSWERED and FLEET_ASIDE_FAILED
 * (the server may still apply an unanswered one, session end and all). */
int store_fleet_leave_aside(struct store_drain *d, const char *session_id, const char *stop_reason,
    enum fleet_aside *how, enum fleet_aside_session *session, int64_t *others, char *found,
    size_t n, struct store_err *err);
/* Record how many late writes this supervisor refused after it was declared lost, `n` in
 * all (outside a transaction; the row is no longer live). */
int store_fleet_count_rejected(struct store_drain *d, int64_t n, struct store_err *err);
/* LISTEN on both channels; *fd receives the connection's socket, which becomes readable
 * when a notification (or anything else) arrives. */
int store_fleet_listen(struct store_drain *d, int *fd, struct store_err *err);
/* Read what arrived on the connection and say which channels were notified by another
 * connection. Returns 0, or STORE_EIO when the connection is gone. */
int store_fleet_notified(struct store_drain *d, bool *control, bool *queue);
/* The commands after `after_id` for this supervisor or for all, sent after it started,
 * those it answered already included (flagged), in the order of their ids (heap, *n
 * items; outside a transaction). */
int store_fleet_commands_due(struct store_drain *d, int64_t after_id, struct fleet_command **out,
    size_t *n, struct store_err *err);
/* Free commands. */
void store_fleet_commands_free(struct fleet_command *v, size_t n);
/* Record this supervisor's answer to command `id` (outside a transaction). */
int store_fleet_command_done(
    struct store_drain *d, int64_t id, bool ok, const char *result, struct store_err *err);

/* The policy state saved for session `session_id` (heap JSON text, "{}" when none);
 * with `lock` (inside a transaction) its row stays locked until the transaction ends, so
 * that supervisors saving theirs merge one at a time. */
int store_fleet_session_state(struct store_drain *d, const char *session_id, bool lock,
    char **state_json, struct store_err *err);

/* --- autopack-ctl's side --- */

/* Wake every supervisor to read the queues again (NOTIFY on "autopack_queue"; inside a
 * transaction, sent when it commits). */
int store_fleet_wake(struct store *st, struct store_err *err);
/* The supervisor whose attempt of phase run_id/phase_id is open, or 0 when none is. */
int store_fleet_phase_holder(struct store *st, const char *run_id, const char *phase_id,
    int64_t *supervisor_id, struct store_err *err);

/* The supervisors of the database: every live one, and those that ended in the last
 * `recent_s` seconds, oldest first (heap, *n items). */
int store_fleet_members(
    struct store *st, double recent_s, struct fleet_member **out, size_t *n, struct store_err *err);
/* Free members. */
void store_fleet_members_free(struct fleet_member *v, size_t n);
/* Send a command to supervisor `target` (0: every live one), with its arguments (a JSON
 * array of strings) and who sent it; notifies them. *id receives the command's id. */
int store_fleet_command_send(struct store *st, int64_t target, const char *command,
    const char *args, const char *by, int64_t *id, struct store_err *err);
/* The answers to command `id` so far (heap, *n items). */
int store_fleet_command_results(
    struct store *st, int64_t id, struct fleet_result **out, size_t *n, struct store_err *err);
/* Free answers. */
void store_fleet_results_free(struct fleet_result *v, size_t n);
/* Remove command `id` and its answers (a read whose answer was only shown). */
int store_fleet_command_forget(struct store *st, int64_t id, struct store_err *err);

#endif
