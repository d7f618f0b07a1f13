/* What the files of the drain's store (common/store/store_drain*.c) share: the prepared
 * statements, each file's SQL, and the helpers that run them. Nothing else includes it. */
#ifndef AUTOPACK_STORE_DRAIN_INTERNAL_H
#define AUTOPACK_STORE_DRAIN_INTERNAL_H

#include "common/store/bind_keep.h"
#include "common/store/store_drain.h"
#include "common/store/store_internal.h"

/* The persistent statements, grouped by the file whose SQL they are. */
enum drain_stmt {
	/* store_drain.c */
	DS_META_SUP,
	/* store_drain_attempt.c */
	DS_ATT_PHASE,
	DS_ATT_PHASE_ROW,
	DS_ATT_INSERT,
	DS_PHASE_EXEC,
	DS_SPEC,
	DS_ATT_GET,
	DS_ATT_END,
	DS_ATT_END_COUNTED,
	DS_ATT_LOST,
	DS_ATT_RESERVE,
	DS_ATT_UNRESERVE,
	DS_PHASE_UNFENCE,
	DS_PHASE_SET,
	DS_PHASE_STATE,
	DS_RUN_STATE,
	DS_RUN_STAYS,
	DS_RUN_STARTED,
	DS_RUN_STARTED_AGAIN,
	DS_RESULT_ROW,
	DS_RESULT_ROW_COUNTED,
	DS_TIER_STATE,
	DS_TIER_SET,
	DS_TIER_STARTED,
	DS_TIER_COUNT,
	/* store_drain_event.c */
	DS_EV_KEY,
	DS_EV_HELD,
	DS_EV_USAGE,
	DS_EV_SENT,
	DS_EV_DONE,
	DS_EV_DONE_RESERVED,
	DS_EV_CONFIRM,
	DS_EV_CONFIRM_ID,
	DS_CTL_LOG,
	/* store_drain_session.c */
	DS_SESSION_STATE,
	DS_COUNT
};

/* Bind a text without a copy (the caller keeps it until the statement has been stepped
 * and reset), or NULL: the attempts' statements, bound just before their step. */
static inline void drain_bind_text(struct db_stmt *s, int i, const char *v)
{
	if (v != NULL)
		db_bind_text_kept(s, i, v);
	else
		db_bind_null(s, i);
}

/* One statement's SQL. */
struct drain_sql {
	enum drain_stmt id;
	const char *sql;
};

/* Each file's statements. */
extern const struct drain_sql drain_sql_main[];
extern const size_t drain_sql_main_n;
extern const struct drain_sql drain_sql_attempt[];
extern const size_t drain_sql_attempt_n;
extern const struct drain_sql drain_sql_event[];
extern const size_t drain_sql_event_n;
extern const struct drain_sql drain_sql_session[];
extern const size_t drain_sql_session_n;

/* A set of attempt ids, small (the attempts in flight): kept in an array. */
struct drain_ids {
	uint64_t *v;
	size_t n, cap;
};

/* The tries one attempt announced ('sent' rows inserted, the reserved row of its first
 * try included, counted even when their transaction rolled back) and completed (their row
 * no longer 'sent': committed, and in the open transaction); `reserved`: its first try's
 * row was reserved with the attempt (store_drain_reserve_first_try). */
struct drain_try {
	uint64_t attempt_id;
	int64_t sent, done, done_open;
	int64_t reserved_id; /* the reserved row's id as inserted, or <= 0 when not known */
	bool reserved;
};

/* The attempts with announced tries. */
struct drain_tries {
	struct drain_try *v;
	size_t n, cap;
};

/* What an attempt's end needs of the attempt and of its phase (store_drain_attempt.c):
 * its strings in one block, freed with it. */
struct drain_closing {
	const char *run_id, *phase_id, *session_id, *initial, *state;
	int64_t phase_row, phase_index, tier; /* phases.id, phase_index, tier_id */
	/* `counted` (a live attempt): its events and token_estimation_v2_events rows are the
	 * ones this drain inserted since it opened the attempt (drain_lives_count). */
	int64_t events, estimations;
	bool counted;
	bool dry_run; /* a dry run's attempt: no fence on its phase's row to lift */
	char *block;
};

/* An attempt this drain opened and has not closed, with what its end needs. */
struct drain_live {
	uint64_t attempt_id; /* 0: a free slot */
	struct drain_closing c;
};

/* A live attempt's phase: the phase's row id and the attempt's id (0: a free slot). */
struct drain_live_row {
	uint64_t phase_row;
	uint64_t attempt_id;
};

/* The live attempts, open-addressed by attempt id in `v` and by their phase's row id in
 * `rows` (each of `cap` slots, a power of two, at most half full), kept with the tier
 * counts (SQLite, one supervisor) and forgotten with them: an attempt found here is open
 * and its phase's current one, as the database would say, and its end reads nothing
 * back. A phase has one live attempt at most: the one opened last. */
struct drain_lives {
	struct drain_live *v;
	struct drain_live_row *rows;
	size_t n, cap;
};

/* The most attempt rows one statement inserts (drain_attempts_open_rows). */
#define DRAIN_ROWS_MAX 16

struct store_drain {
	struct store *st;
	int64_t supervisor_id; /* several supervisors (store_fleet.h): this one's id, else 0 */
	bool retry_failed;     /* with supervisor_id: FAILED phases are eligible too */
	/* With supervisor_id: the transaction the last heartbeat was written in (its id, by
	 * pg_current_xact_id()) and the server process of the connection it ran on (store_fleet.h,
	 * store_fleet_txn). */
	int64_t heartbeat_xid;
	int heartbeat_pid;
	/* With supervisor_id: the connection (store.conn_gen) on which this supervisor was
	 * last found live (registered, or a heartbeat written): store_fleet_confirmed. */
	unsigned live_gen;
	int64_t batch_size;      /* with supervisor_id: the session's --batch-size, 0 for none */
	int64_t claimed_started; /* store_fleet_claimed_started */
	struct db_stmt *budget_lock; /* with batch_size: locks the session's row */
	struct db_stmt *stmt[DS_COUNT];
	const char *sql[DS_COUNT];
	/* The inserts of m attempt rows in one statement, m in [2, DRAIN_ROWS_MAX], each
	 * prepared at its first use (SQLite, one supervisor: drain_attempts_open_rows). */
	struct db_stmt *att_rows[DRAIN_ROWS_MAX + 1];
	struct db_stmt *estimation; /* store_estimation_insert */
	/* What DS_EV_KEY's and DS_EV_USAGE's parameters hold (store_drain_event.c), forgotten
	 * as each group begins and ends: the texts they hold belong to the group's events. */
	struct bind_keep keep_key, keep_usage;
	/* The attempts this process wrote an announced try for (a 'sent' row may exist only
	 * for them, since an attempt's events come only through the supervisor that leased
	 * it), with their tries announced and completed, and those closed in the open
	 * transaction, dropped from the first at its commit (store_drain_event.c). */
	struct drain_tries announced;
	struct drain_ids closing;
	/* What store_drain_reserve_first_try set (provider NULL: no reservation). */
	struct {
		const char *provider, *model, *role;
		int64_t max_tokens;
	} reserve;
	/* The phase counts of the tiers the drain touched (store_tier.c), so that an
	 * attempt's end sets its tier's state without counting the tier's phases: kept with
	 * SQLite and one supervisor (data_version non-NULL), forgotten at a rollback, when
	 * another connection committed (PRAGMA data_version) and when this one began a
	 * write of its own (db->writes_begun: retry, import). */
	struct tier_cache tiers;
	struct drain_lives lives;
	struct db_stmt *data_version;
	int64_t seen_version;
	uint64_t seen_writes;
	/* A write of the open transaction that changed no row where it had to change one
	 * (drain_exec_one: another program's trigger or rule skipped it), or a phase's end
	 * whose row holds another state than it wrote (a trigger changed it), said as
	 * store_drain_constraint_failed gives it; "" for none, and again as each group begins. */
	char skipped[240];
};

/* The variant of drain statement `id` when several supervisors share the database
 * (PostgreSQL), or NULL (common/store/pg/store_fleet.c). */
const char *store_fleet_drain_sql(enum drain_stmt id);
/* The eligible phases when several supervisors share the database. */
const char *store_fleet_eligible_sql(void);
/* Several supervisors: store_drain_attempt_open, one phase per run at a time across
 * supervisors and in the run's order (common/store/pg/store_fleet.c); a phase no longer
 * eligible (run or changed by another supervisor) is STORE_EBUSY: its run is to be read
 * again. */
int store_fleet_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t worker_pid, const char *session_id, bool dry_run, uint64_t *attempt_id,
    int64_t *attempt_number, struct store_err *err);

/* The number of the attempt after `made` (a phase's builder_attempts, which another
 * program may have written at the top of the range): made + 1, at most INT64_MAX. */
int64_t drain_attempt_number(int64_t made);

/* store_drain_attempt_open with the phase's row id as the queue read it (0: unknown),
 * which finds the phase without its (run, phase) index while it is still that phase's. */
int drain_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t phase_row, int64_t worker_pid, const char *session_id, bool dry_run,
    uint64_t *attempt_id, int64_t *attempt_number, struct store_err *err);

/* One supervisor on SQLite: store_drain_attempts_open with the claims' attempt rows
 * inserted together, DRAIN_ROWS_MAX at a time, each claim's phase read before and fenced
 * after; as store_drain_attempts_open returns (without the first tries' reservations). */
int drain_attempts_open_rows(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, struct store_err *err);

/* Several supervisors: store_drain_attempts_open, in two statements (common/store/pg/
 * store_fleet.c). */
int store_fleet_attempts_open(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, struct store_err *err);

/* Note that attempt `att` is closed in the open transaction; whether it may have a 'sent'
 * row left (a try it announced through this process, or its reserved first try, that is
 * not known to be complete); *reserved: its first try's row was reserved. */
bool drain_announced_close(struct store_drain *d, uint64_t att, bool *reserved);
/* Note that attempt `att`'s first try is reserved in the open transaction: one 'sent' row,
 * not complete. */
void drain_announced_reserve(struct store_drain *d, uint64_t att, int64_t id);
/* The transaction committed (`committed`) or rolled back: forget the attempts it closed,
 * or that it closed them, and keep or forget the tries it completed. */
void drain_announced_end(struct store_drain *d, bool committed);

/* In the group: reserve the row of the first try of attempt `att` of (run, phase), as
 * store_drain_reserve_first_try says, and note it (drain_announced_reserve). */
int drain_attempt_reserve(struct store_drain *d, uint64_t att, const char *run_id,
    const char *phase_id, const char *now, struct store_err *err);

/* The tier counts the drain may use (kept and still the database's), else NULL. */
struct tier_cache *drain_tiers(struct store_drain *d);
/* Forget the tier counts and the live attempts (their phases or attempts may have
 * changed outside them). */
void drain_tiers_forget(struct store_drain *d);
/* Count `events` events rows and `estimations` token_estimation_v2_events rows just
 * inserted for attempt `att`, if it is live. */
void drain_lives_count(struct store_drain *d, uint64_t att, int64_t events, int64_t estimations);
/* Forget the live attempts; free what they hold when `release`. */
void drain_lives_forget(struct drain_lives *l, bool release);

/* Fill err with the store's path, what failed and SQLite's message; STORE_EIO. */
int drain_fail(struct store_drain *d, struct store_err *err, const char *what);
/* Run `sql` (statements of the open transaction; NULL for none), then COMMIT, in one
 * round trip; STORE_EIO on failure. */
int drain_commit_after(struct store_drain *d, const char *sql, struct store_err *err);
/* Step `s` (bound, one-shot) and call fn with columns 0 (text) and 1 (integer) of each row
 * until fn returns non-zero; finalize it. STORE_EIO naming `what` on failure. */
int drain_each_text_int(struct store_drain *d, struct db_stmt *s,
    int (*fn)(void *arg, const char *text, int64_t n), void *arg, struct store_err *err,
    const char *what);
/* Take statement `i`, reset and unbound. */
struct db_stmt *drain_stmt(struct store_drain *d, enum drain_stmt i);
/* Take statement `i` reset, its old bindings kept: for a caller that binds every one of
 * its parameters before it steps it (the statements of each phase's attempt). */
struct db_stmt *drain_stmt_bound(struct store_drain *d, enum drain_stmt i);
/* Step statement `i` (from drain_stmt), which returns no row, and reset it. */
int drain_exec(struct store_drain *d, enum drain_stmt i, struct store_err *err);
/* drain_exec of a write that must change exactly one row of `table` (`what` says which
 * write, for the message): one that changes none (a BEFORE trigger returning NULL, a rule
 * DO INSTEAD NOTHING, another program's) is STORE_EIO, and a refusal of the write for
 * store_drain_constraint_failed, as a constraint's would be. */
int drain_exec_one(struct store_drain *d, enum drain_stmt i, const char *table, const char *what,
    struct store_err *err);
/* Inside the caller's transaction, set the state of the tier and the run of phase
 * (run_id, phase_id) from their phases (store_tier_follow; the run is DONE_SUCCESS once
 * every phase is COMPLETE or SKIPPED, PHASE_EXECUTION before). */
int drain_follow(struct store_drain *d, const char *run_id, const char *phase_id, const char *now,
    struct store_err *err);
/* Fill a spec from the row of `s`, columns from `col` on: name, description,
 * task_category, complexity, scope, check_command, max_builder_attempts, the run's
 * workspace (the columns of DS_SPEC). */
void drain_spec_read(struct db_stmt *s, int col, const char *phase_id, struct drain_spec *out);
/* Run one statement prepared for the call, with up to three text parameters (NULLs
 * allowed) and no result rows. */
int drain_run(struct store_drain *d, const char *sql, const char *a, const char *b, const char *c,
    struct store_err *err);

#endif
