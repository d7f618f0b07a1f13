/*
 * The supervisor: one libuv loop that owns the database (the only writer), the worker
 * pool, the scheduler, the group-commit writer and the control server. This header holds
 * the state they share and every function one file offers another, file by file, in the
 * order a phase passes through them (supervisor/README.md).
 *
 * Who calls whom (no cycles; tests/tools/callgraph.py checks it on the objects):
 *   main → secrets, session, lifecycle, lag, writer, lease, pool, control, fleet;
 *   session → report, fleet, writer, sync;  fleet → control, sched, lease, writer, lifecycle, lag
 *   report → sched, policy
 *   control → cmd-*, writer;  cmd-* → pool, lease, lifecycle, sched
 *   pool → lease, lifecycle, lag, worker, secrets;  lease → sched, policy, writer,
 *   lifecycle, lag, worker, convert;  writer → sync, lifecycle, worker, policy;
 *   sync → lifecycle;
 *   lifecycle → sched;  sched → policy
 * Watching (observe.h): main → metrics, progress, http;  writer → metrics;
 *   cmd-status → status, metrics, progress;  http → cmd-status, status, metrics;
 *   metrics → progress, status
 * Calls the other way go through callbacks wired by main.c or carried by a queued write:
 * lifecycle stops the workers through its stop_workers callback (pool_stop), the
 * writer hands a committed attempt end back through the op's done callback
 * (lease_committed), and sync releases a durable group through its release callback
 * (writer_release).
 */
#ifndef AUTOPACK_SUP_H
#define AUTOPACK_SUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <uv.h>

#include "common/log.h"
#include "common/store/store.h"
#include "common/store/store_coef.h"
#include "common/store/store_drain.h"
#include "common/store/store_fleet.h"
#include "common/vocab.h"
#include "proto/wire.h"
#include "supervisor/chan.h"
#include "supervisor/notify.h"

struct sup;
struct ctl_conn;
struct cmd_reply;
struct json_t;

/* Why the drain stopped, for what its end reports (report.c) and its exit status. */
enum stop_cause {
	STOP_CAUSE_NONE,     /* not said */
	STOP_CAUSE_DRAINED,  /* nothing eligible left to start */
	STOP_CAUSE_OPERATOR, /* a signal, `autopack-ctl stop` */
	STOP_CAUSE_POLICY,   /* a drain rule: batch size, time budget, zero-yield streak */
	STOP_CAUSE_BREAKER,  /* repeated infrastructure failures */
};

/* The supervisor's exit statuses (README, "Exit statuses"). */
enum sup_exit {
	SUP_EXIT_OK = 0,        /* drained, or stopped by the operator */
	SUP_EXIT_REFUSED = 1,   /* refused to start */
	SUP_EXIT_USAGE = 2,     /* bad flags */
	SUP_EXIT_STORE = 3,     /* the database was lost or cannot be written */
	SUP_EXIT_BREAKER = 4,   /* infrastructure failures tripped the breaker */
	SUP_EXIT_WORK_LEFT = 5, /* the drain rules left eligible phases unattempted */
};

/* Where a group commit's fsync runs (SQLite, --synchronous full): off the loop while
 * phases are short (the default), always off it (--fsync-off-loop), or always in SQLite's
 * COMMIT (--fsync-on-loop). */
enum fsync_where {
	FSYNC_AUTO,
	FSYNC_OFF_LOOP,
	FSYNC_ON_LOOP
};

struct sup_config {
	const char *db_flag;
	int workers;
	const char *run_id;
	int64_t batch_size; /* attempts to start; 0 = no limit */
	int64_t phase_timeout_s;
	int64_t max_attempts; /* per phase in one session */
	bool sync_full;
	enum fsync_where fsync_where; /* where the commit's fsync runs (sync.c) */
	bool exit_when_drained;
	bool dry_run;
	bool allow_empty_db;
	const char *control_path;
	const char *log_file;
	const char *worker_path;
	bool check_network_host; /* checks share the machine's network (--check-network host) */
	bool check_home_shown;   /* checks see the machine's $HOME (--check-home read-only) */
	/* --check-max-processes, --check-max-memory-mib, --check-tmp-size-mib, passed on to
	 * every worker (worker/check_limits.h); -1 when not given (the worker's default). */
	int64_t check_limits[3];
	int64_t heartbeat_timeout_s;
	int64_t kill_grace_ms;
	int64_t commit_window_ms;
	int64_t commit_max;
	int64_t worker_jobs; /* 2: a busy worker holds its next job too (--worker-jobs) */
	/* LLM settings sent in every job; the keys go to workers on a pipe, sent on the socket
	 * each one makes (secrets.c). */
	const char *llm_provider;
	const char *llm_base_url;
	const char *llm_model;
	int64_t llm_timeout_s;
	int64_t llm_retries;
	int64_t max_tokens_cap;
	/* drain policies (docs/drain-rules.md) */
	bool retry_failed;
	bool resume;
	const char **skip_prefixes;
	size_t nskip;
	int64_t max_total_minutes; /* 0 = none */
	int64_t max_timeouts_per_run;
	int64_t max_fingerprint_repeats;
	int64_t max_consecutive_zero_yield; /* 0 = none */
	const char *http_addr;              /* --http ADDR:PORT; NULL = off */
	int64_t lease_timeout_ms;           /* several supervisors: silent this long, one is lost */
};

/* A set of names, kept in insertion order for the session record. */
struct nameset {
	char **v;
	size_t n;
};

struct fp_count {
	char *fp;
	int64_t n;
};

/* A failure fingerprint counted here, and the run whose result it was. */
struct fp_seen {
	char *fp;
	char *run_id;
};

/* What this supervisor judged since its last save, when several supervisors share the
 * session: merged into the saved state, which the others read (policy_save). */
struct policy_news {
	struct fp_seen *fps;
	size_t nfps;
	struct nameset stopped_fps;
	struct nameset sampled, promising, deprioritized, stopped_runs;
};

/* Sample-first triage and stop rules, persisted with every commit (docs/drain-rules.md).
 * With several supervisors in one session, the counts and sets are the saved state of
 * the session (read at every queue refresh and save) plus this supervisor's news. */
struct policy {
	struct fp_count *fps;
	size_t nfps;
	struct nameset stopped_fps;
	struct nameset sampled, promising, deprioritized, stopped_runs;
	int64_t consecutive_zero;
	bool dirty; /* changed since the last commit */
	struct policy_news news;
	/* The news the group whose COMMIT went unanswered merged, held aside until it is
	 * known whether it committed (policy_hold). */
	struct policy_news held;
};

/* What the drain rules decided about one result. */
struct policy_verdict {
	bool skip_run;     /* dispatch nothing more of the run in this session */
	bool stop_session; /* stop the drain gracefully */
	char why[320];     /* the session's stop reason */
	char run_why[400]; /* why the run is skipped */
};

/* A phase waiting in its run's queue. */
struct qphase {
	char *phase_id;
	int64_t row; /* phases.id as read with the queue, or 0 */
	int64_t phase_index;
	enum bucket bucket; /* of its last failure reason (docs/drain-rules.md) */
	int64_t attempts;   /* in this session */
	int64_t max_attempts;
	struct drain_spec spec; /* what its job needs, read with the queue (one allocation) */
	struct qphase *next;
};

/* A ready run in the scheduler's heap with its place in the order of docs/drain-rules.md
 * (taken when it became ready), compared without reaching into the run. */
struct ready_slot {
	uint32_t rank;       /* not sampled 0, promising 1, other 2; then the head's bucket */
	int64_t phase_index; /* of its head phase */
	uint64_t seq;        /* when it became ready, for ties */
	struct run_q *run;
};

/* A run: its eligible phases in order, and whether one of them is leased. */
struct run_q {
	char *run_id;
	struct qphase *head;
	struct qphase *tail;
	bool busy;
	size_t heap_at; /* its place in sup.heap plus one; 0: not ready */
	bool sampled;   /* its first result in this session is in */
	bool promising;
	bool skipped;             /* deprioritised or stopped: no more dispatch */
	bool parked;              /* another supervisor holds it: left out until sched_refresh */
	char *skip_why;           /* why it was skipped (heap), for what the drain's end reports */
	int64_t timeouts;         /* timeout results in this session */
	uint64_t ready_seq;       /* when it became ready, for ties */
	struct run_q *next;       /* all runs */
	struct run_q *next_by_id; /* in its bucket of sup.run_tab */
};

enum worker_state {
	W_STARTING,
	W_IDLE,
	W_BUSY,
	W_EXITED
};

/* A worker's lease: the attempt it runs, from dispatch to close. */
struct lease {
	uint64_t attempt_id; /* 0: none */
	struct run_q *run;
	struct qphase *phase;
	uint64_t started_ms;
	enum outcome end_outcome; /* why the supervisor is ending it (timeout, cancelled, ...) */
	int64_t v2;               /* token_estimation_v2 events received */
	int64_t samples;          /* of those, clean estimator samples */
	uint64_t seq_max;         /* highest event seq received */
	uint64_t seq_missing;     /* seqs skipped over so far */
	int64_t attempt_number;   /* the phase's attempt it is (names the check's log) */
	uint64_t armed_ms;        /* loop time and loop lag when its deadline was armed */
	uint64_t armed_lag;
	bool key_refused; /* a call was refused for its key: the drain rules do not judge it */
	/* Its job's first LLM call has try 1 on record with the lease (the job's `ann`): the
	 * worker sends that try without waiting for its announcement's ack. Cleared by the
	 * attempt's first llm_request event. */
	bool ann_first;
	bool sent;         /* its job has been sent (a lease is its worker's from its commit) */
	bool acks_asked;   /* the worker has waited for acks (a heartbeat with `wait`) */
	uint64_t ack_held; /* the seq of a committed announcement not waited for whose ack
	                    * is held (0: none): sent when the worker waits for acks, left
	                    * out when a later ack covers it or the attempt ends */
};

/* A lease a round opens inside its transaction; the job goes out after the commit. A
 * lease opened ahead has no worker: it waits, durable, for the first worker that frees up
 * (lease.c). */
struct grant {
	struct worker *w; /* until the commit; then found again by worker_id; NULL: ahead */
	int worker_id;
	struct run_q *r;
	struct qphase *p;
	uint64_t attempt_id;
	int64_t attempt_number;
	bool durable; /* ahead: its commit is durable, its job may go out */
};

struct worker {
	struct sup *sup;
	int id;
	pid_t pid;
	enum worker_state state;
	uv_process_t proc;
	uv_poll_t hand;      /* the socket it hands its own over on (proto/hand.h), until it has */
	int hand_fd;         /* that socket's descriptor, or -1 once closed */
	struct chan chan;    /* opened on the socket it handed over */
	uv_timer_t hb_timer; /* heartbeat deadline */
	uv_timer_t phase_timer; /* phase deadline */
	uv_timer_t term_timer;  /* the kill grace after a SIGTERM or shutdown: then SIGKILL */
	int handles;            /* open handles; freed when it reaches 0 */
	struct lease lease;
	/* A durable lease whose job was sent behind its lease's (attempt_id 0: none): the
	 * worker runs it next, and it becomes the lease when the lease ends (lease.c). */
	struct grant queued;
	bool queued_ann;       /* the queued job's `ann`: try 1 of its first call is on record */
	bool queued_cancelled; /* cancelled: the worker was told, and is stopped if it runs it */
	int64_t unacked;       /* events queued for the writer, not yet committed */
	uint64_t heard_ms;     /* loop time and loop lag at its last frame (or its start) */
	uint64_t heard_lag;
	bool retire;         /* shut down once idle */
	bool killed;         /* we signalled it */
	bool grace_shutdown; /* its kill grace runs after a shutdown, not a SIGTERM */
	char *bad_channel;   /* why its channel was closed on it (a malformed frame); heap */
	char *refused;       /* why the socket it handed over was refused; heap */
	uint64_t born_ms;
	uint64_t jobs_done;
	rlim_t cpu_soft, cpu_hard; /* its CPU time limit, read at its hello (cpulimit.c) */
	struct worker *next;
	/* On sup.idle while idle (worker.c): a dispatch round takes the first. */
	struct worker *idle_next, *idle_prev;
	bool idle_listed;
};

/* What a round's transaction does besides the queued writes: the dispatch (lease.c),
 * called by the writer. */
struct round_hooks {
	/* Whether leases are to be opened now: for idle workers, or leases opened ahead
	 * when fewer than half of those wanted wait; with `due` (the round commits anyway),
	 * when any are missing. */
	bool (*want)(struct sup *s, bool due);
	/* Open them inside the transaction. Returns 0, or a store error with err set. */
	int (*open)(struct sup *s, struct store_err *err);
	/* After the COMMIT: the leases grants[0..n) are taken (their workers busy, counted
	 * in flight); nothing is sent yet. */
	void (*committed)(struct sup *s, struct grant *grants, size_t n);
	/* Once the commit is durable (after the acknowledgements): send their jobs. */
	void (*durable)(struct sup *s, const struct grant *grants, size_t n);
	/* After a rollback: put their phases and workers back. */
	void (*undo)(struct sup *s);
};

/* Failed transactions in a row (group commits and dispatch rounds) after which the
 * supervisor gives up on the database (lifecycle_write_failed): many while another
 * connection keeps it busy, a few for anything else (a full disk, an I/O error, a
 * constraint, a read-only file), retried with a delay that doubles. */
#define COMMIT_MAX_FAILURES 50
#define COMMIT_MAX_HARD_FAILURES 8
#define COMMIT_RETRY_MS 200
#define COMMIT_RETRY_MAX_MS 2000

/* A write waiting for the next group commit: a tagged union. */
enum op_kind {
	OP_EVENT,
	OP_CLOSE,
	OP_CTLLOG
};

struct op;
/* Called once the commit that wrote the op succeeded. */
typedef void (*op_done_cb)(struct sup *s, struct op *o);

struct op {
	enum op_kind kind;
	struct op *next;
	/* The database refused the write (a constraint; SQLite's message, naming the table
	 * and column): what is committed instead is a record of that error. */
	char *refused;
	bool dup; /* an event already stored, or an attempt already closed */
	union {
		/* OP_EVENT: one event of a lease; acknowledged after the commit. Its run and
		 * phase ids and the strings of `wire` are in the op's own allocation. */
		struct {
			int worker_id;
			char *run_id;
			char *phase_id;
			struct proto_event wire;
			struct drain_event row; /* the row, viewing `wire` */
		} event;
		/* OP_CLOSE: the end of an attempt. */
		struct {
			uint64_t attempt_id;
			char *run_id; /* its phase's (owned) */
			char *phase_id;
			struct drain_close end; /* message and fingerprint owned */
			char *category;         /* the phase's task category (owned; NULL: none) */
			op_done_cb done;
			void *ctx; /* the done callback's */
		} close;
		/* OP_CTLLOG: a control_log row. */
		struct {
			int64_t peer_pid;
			int64_t peer_uid;
			char *command;
			char *args;
			char *result;
			bool ok;
		} ctllog;
	} u;
};

/* The acknowledgement a group of writes owes one (worker, attempt): the highest seq of
 * its events there and how many of them it holds. */
struct writer_ack {
	int worker_id;
	uint64_t attempt_id, seq;
	int64_t n;
	bool unawaited; /* every event of the pair is an announcement not waited for */
};

/* The acknowledgements a group owes, one per (worker, attempt) in the order the pairs
 * first appear; gathered as its events are queued (writer.c). */
struct writer_acks {
	struct writer_ack *v;
	size_t n, cap;
	size_t last; /* the pair the last event was added to */
};

/* A committed group of the writer: held until the fsync that makes it durable (sync.c),
 * then released (writer_release). */
/* Memory for the events of the queue, then of its commit group (op_arena.c): released
 * all at once with the group. */
struct op_arena {
	struct op_block *head; /* its blocks, the one being filled first */
	size_t used;           /* bytes taken from head */
};

struct commit_group {
	struct op *head;         /* its writes */
	struct op_arena arena;   /* its events (the queue's arena, moved here at the commit) */
	struct writer_acks acks; /* the acknowledgements its events owe; the buffer is swapped
	                          * with sup.acks */
	struct grant *grants;    /* its leases; the buffer is swapped with sup.grants */
	size_t ngrants;
	size_t grants_cap;
	uint64_t began; /* when its commit began (uv_hrtime), for the metrics */
	uint64_t seq;   /* its place in commit order */
	int64_t nops;   /* how many writes it holds */
	struct commit_group *next;
};

/* The threadpool's part of an fsync: its descriptor and its result, nothing else. */
struct sync_job {
	uv_work_t req;
	int fd;
	int err; /* errno of a failed fdatasync; 0: done */
};

/* The commit's fsync off the loop (sync.c). */
struct sync_state {
	int fd;       /* the write-ahead log; -1: commits sync in the database (or not at all) */
	char *path;   /* its name */
	bool normal;  /* the connection is at synchronous=NORMAL (inside a writer's group) */
	bool defer;   /* the group being written has its fsync off the loop */
	bool running; /* an fsync is on the threadpool: the loop does not end before it */
	struct sync_job job;
	uint64_t committed; /* groups committed so far */
	uint64_t covers;    /* the running fsync makes groups up to this one durable */
	struct commit_group *head, *tail; /* committed, not yet durable, in commit order */
	int64_t nheld;                    /* groups held */
	int64_t syncing_ops; /* the writes of the groups the running fsync makes durable */
	void (*release)(struct sup *s, struct commit_group *g, bool durable);
};

struct sup_counters {
	uint64_t dispatched;
	uint64_t results;
	uint64_t events_committed;
	uint64_t events_duplicate;
	uint64_t events_missing; /* seqs a result's final seq says were sent but never came */
	uint64_t rejected_uuid;
	uint64_t rejected_stale;
	uint64_t worker_crashes;
	uint64_t worker_timeouts;
	uint64_t spawn_failures; /* workers that could not be started */
	uint64_t commits;
	uint64_t commits_synced_off_loop; /* of them, made durable by an fsync off the loop */
	uint64_t commit_failures;
	uint64_t writes_refused; /* writes a constraint refused, recorded as errors */
	uint64_t rejected_lost;  /* writes refused because this supervisor was declared lost */
	uint64_t stalls;         /* the supervisor's own loop stalled (lag.c) */
};

/* What the service manager is told (service.c). */
struct service {
	struct notify notify;
	uv_check_t check;
	uv_timer_t status_timer;
	uv_timer_t watchdog_timer;
	bool ready_sent;
	bool stopping_sent;
	bool watchdog_missed; /* the last ping was withheld (logged once) */
	bool send_failing;    /* the last notification could not be sent (logged once) */
};

struct sup {
	uv_loop_t *loop;
	struct sup_config cfg;
	struct store *st;
	struct store_drain *sd;
	int lock_fd;
	int claim_fd; /* the uuid claim (store_runtime.h) */
	char *session_id;
	char *worker_path;
	char *control_path;
	uint64_t started_ms;
	uint64_t coef_version; /* estimator coefficients sent in every job */
	struct store_coef_row *coefs;
	size_t ncoefs;
	char *fit_json; /* the active set's fitted model; NULL for none */

	/* pool */
	struct worker *workers;
	int target;
	int next_worker_id;
	int live;
	int staying;  /* live workers not retiring: the pool's size against target */
	bool corking; /* frames to workers are gathered (worker_cork_all) */
	int *corked;  /* the ids of the workers holding gathered frames */
	size_t ncorked, corked_cap;
	int crash_streak;  /* infrastructure failures since the last attempt a worker ended */
	int spawn_fails;   /* failed spawns in a row, for the respawn backoff */
	bool crash_loop;   /* the breaker tripped: no dispatch, no respawn, until reset */
	char breaker[256]; /* why it tripped */
	uv_timer_t respawn_timer;
	char *keys; /* the provider keys, "NAME=value" entries ending in NUL (secrets.c) */
	size_t keys_len;

	/* scheduler */
	struct run_q *runs; /* in database order */
	struct run_q *runs_tail;
	struct ready_slot *heap; /* ready runs, a binary heap in the order of docs/drain-rules.md */
	size_t nready;
	size_t heap_cap;
	struct run_q **run_tab; /* runs by id: a hash table of chains */
	size_t run_tab_cap;     /* a power of two */
	size_t nruns;
	uint64_t ready_seq;
	struct policy pol;
	int64_t queued; /* phases in run queues */
	int64_t in_flight;
	/* attempts started this drain; with several supervisors and --batch-size, the
	 * session's, as this supervisor last read them (fleet.c, lease.c) */
	int64_t started;
	int64_t session_elapsed_ms; /* the session's time before this supervisor joined it */
	bool paused;

	/* workers by id (worker.c) and the idle ones */
	struct worker **by_id;
	size_t by_id_cap;
	struct worker *idle;

	/* lease: the leases of the round being committed, and the job every lease shares */
	struct grant *grants;
	size_t ngrants;
	size_t grants_cap;
	struct proto_job job;        /* the settings part of every job (lease_init) */
	struct proto_buf job_shared; /* its entries packed once (job.shared) */
	/* Leases opened ahead, oldest first, and the results of the last 100 ms that size
	 * them (lease.c). */
	struct grant *ahead;
	size_t nahead;
	size_t ahead_cap;
	uint64_t ahead_window_ms;
	int64_t ahead_window_n;
	int64_t ahead_rate; /* results in the last whole window */
	int64_t nqueued;    /* workers holding a job queued behind their lease */

	/* writer: rounds (one transaction for the writes and leases of a loop turn) */
	struct round_hooks round;
	uv_check_t round_check;
	bool round_armed;
	bool round_urgent; /* commit this turn even if nothing can be leased */
	bool acks_waited;  /* a worker waits for acknowledgements the queue owes */
	struct op *ops_head;
	struct op *ops_tail;
	int64_t ops_n;
	struct writer_acks acks;   /* the acknowledgements the queued events owe */
	struct op_arena ops_arena; /* the queued events */
	struct op_block *op_spare; /* arena blocks released, for reuse */
	size_t op_nspare;
	uv_timer_t commit_timer;
	bool commit_armed;
	uv_async_t ckpt_wake; /* the checkpoints' thread ended one (writer_ckpt_ended) */
	bool commit_retrying; /* the timer waits to retry a failed commit */
	/* The connection was lost before the COMMIT of a group answered: its writes (the
	 * first doubt_nops of the queue), the acknowledgements they owe, its drain rules'
	 * news and its round's leases (grants) wait until the retry learns whether it
	 * committed (writer.c). */
	bool commit_doubt;
	int64_t doubt_nops;
	struct writer_acks doubt_acks;
	struct fleet_txn doubt_txn; /* the group's transaction on the server */
	uint64_t doubt_running_ms;  /* since when it was found still in progress, or 0 */
	int commit_fail_streak;
	uint64_t last_commit_ms;
	bool commit_deferred; /* a commit was put off while a group waited for its fsync */
	struct commit_group *group_free; /* released groups, for reuse */
	struct sync_state sync;

	/* control */
	uv_pipe_t ctl_server;
	bool ctl_open;

	/* lifecycle */
	enum stop_level stopping;
	void (*stop_workers)(struct sup *s, enum stop_level level);
	const char *stop_reason; /* why the drain ended; points at stop_buf */
	enum stop_cause stop_cause;
	char stop_buf[320];
	int exit_code;
	uv_signal_t sigint, sigterm, sighup, sigxcpu;
	uv_timer_t stop_timer;
	uv_timer_t identity_timer;
	uv_timer_t deadline_timer;
	bool store_lost;
	/* checkpoint.c: the last warning of failed checkpoints */
	bool ckpt_warned;              /* one was logged and none succeeded since */
	uint64_t ckpt_logged_ms;       /* when */
	uint64_t ckpt_logged_failures; /* the failures counted then */
	/* checkpoint.c: a log that a reader keeps from starting again */
	uint64_t ckpt_held_ms;        /* since when it has held twice its threshold, or 0 */
	int ckpt_held_frames;         /* its frames then */
	bool ckpt_held_warned;        /* a warning was logged and the log has not started again */
	uint64_t ckpt_held_logged_ms; /* when */
	/* Nothing more is written: the database was lost, kept refusing commits
	 * (lifecycle_write_failed), or a signal during a fast stop abandoned the queue. */
	bool writes_off;
	/* foreign.c: phases another program queues in a SQLite database */
	int64_t foreign_seen;     /* PRAGMA data_version when the queue last agreed; -1: off */
	uint64_t foreign_next_ms; /* no read of the queue before this (monotonic ms) */
	bool foreign_unread;      /* the last read failed (logged) */
	bool foreign_due;         /* data_version moved: a read waits for a quiet writer */
	uv_check_t foreign_check; /* tries it at each loop turn's end while it is due */

	/* lag: the loop's own lateness */
	uv_timer_t lag_timer;
	uint64_t lag_last_ms;    /* loop time of the last measurement */
	uint64_t lag_total_ms;   /* lateness so far */
	uint64_t judge_after_ms; /* after a stall: no worker is judged before this */

	struct sup_counters n;
	struct service svc;

	/* several supervisors on one PostgreSQL database (fleet.c); fleet_id 0: alone */
	int64_t fleet_id;
	bool fleet_busy;        /* work open or eligible elsewhere: not drained */
	bool fleet_unread;      /* the last rebuild of the queues failed: not known drained */
	bool fleet_lost;        /* another supervisor declared this one lost */
	char *fleet_status;     /* written with each heartbeat (heap) */
	uv_timer_t fleet_timer; /* heartbeat, rescue, queues, commands */
	uv_poll_t *fleet_poll;  /* a duplicate of the connection's socket (heap) */
	uint64_t fleet_connected_ms;
	uint64_t fleet_live_ms; /* when registered, or a heartbeat alone found it live */
	uint64_t fleet_refreshed_ms;
	int64_t fleet_cmd_after; /* commands up to this id are settled (run or not due) */
	int64_t fleet_waiting_logged;
	bool refreshing;        /* sched_refresh is reading the eligible phases */
	uint64_t fleet_beat_ms; /* the last beat of the fleet timer */
	unsigned conn_gen;      /* the connection listened on (store.conn_gen) */
	/* the connection being made again (fleet.c), without blocking the loop */
	bool reconnecting;
	uv_poll_t *reconnect_poll;  /* a duplicate of the socket it waits on (heap) */
	uv_timer_t reconnect_timer; /* its time limit */
	bool reconnect_timer_init;

	/* watching (supervisor/observe.h) */
	struct metrics *metrics;
	struct progress_state *progress;
	struct http *http;
	const char *http_url; /* what --http serves; NULL when off */
};

/* --- secrets.c: the provider keys --- */

/* Take the provider keys out of the environment (wiping it, /proc/<pid>/environ's block
 * included) into s->keys, and make the process non-dumpable. */
void secrets_take(struct sup *s);
/* Answer a worker on the socket it handed over and the supervisor vetted: with the read
 * end of a pipe holding the keys, when there are keys (proto/hand.h). Never waits: keys the
 * pipe cannot hold are not given. Returns 0, or a negative errno with `why` (`n` bytes)
 * saying what failed (a pipe too small for the keys names its size and the cause). */
int secrets_give(struct sup *s, int sock, char *why, size_t n);
/* The variable of the configured provider's key when it was not given (or empty), else
 * NULL. */
const char *secrets_missing(const struct sup *s);
/* Whether the keys fit the pipe a worker takes them from (HAND_KEYS_MAX bytes with their
 * names); when not, `why` (`n` bytes) names each variable and its size. */
bool secrets_fit(const struct sup *s, char *why, size_t n);
/* Log a warning when the calls would send the key unencrypted across a network: an
 * http:// --llm-base-url whose host is not this machine's loopback (not in a dry run,
 * which calls nothing). */
void secrets_warn_clear_text(const struct sup *s);
/* Wipe and free the keys. */
void secrets_free(struct sup *s);

/* --- fleet.c: several supervisors on one PostgreSQL database --- */

/* Register in the database's supervisors (before the recovery); exits 1 on failure. */
void fleet_register(struct sup *s);
/* Join the drain session of live supervisors that drain the same way: false when there
 * is none. Exits 1 on failure, 3 when another supervisor declares this one lost while it
 * waits for the session-choosing lock. */
bool fleet_join_session(struct sup *s);
/* Record the session this supervisor drains in. Exits 1 on failure, 3 (nothing written)
 * when another supervisor declared this one lost meanwhile. */
void fleet_session_set(struct sup *s);
/* Start the fleet's timer and the watch on the connection for notifications. */
void fleet_start(struct sup *s);
/* Watch the connection again (after a reconnect). */
void fleet_listen(struct sup *s);
/* Stop watching the connection (it dropped or is being replaced); the fleet timer
 * watches the next one. */
void fleet_unlisten(struct sup *s);
/* Begin connecting again to the server, from the loop: the connection's socket is
 * watched and each step taken when it is ready, within lifecycle_reconnect_ms; the end is
 * told to lifecycle_reconnected, and once connected a commit waiting for its retry is
 * made at once. */
void fleet_reconnect(struct sup *s);
/* After the loop: leave the fleet; a row found no longer live ends the supervisor as
 * declared lost (exit 3, nothing more written). Returns whether it left. */
bool fleet_leave(struct sup *s);
/* After fleet_leave: whether no other supervisor drains in the session (the caller then
 * ends it). */
bool fleet_finish(struct sup *s);
/* Close the fleet's handles and free its state, after the loop. */
void fleet_close(struct sup *s);

/* --- session.c: the database and the drain session around the loop --- */

/* While the supervisor starts (on), a statement the database leaves unanswered is
 * reported (what it waits for, every 30 s), and a SIGTERM or SIGINT, held back until the
 * loop takes it, cancels it and ends the supervisor (exit 0; one registered already leaves
 * the fleet); off once the loop takes the signals. */
void session_start_watch(struct sup *s, bool on);
/* Open, check and lock the database, print its banner; exits 1 naming what is wrong.
 * Until session_started, an exit closes the database, so that a refused start leaves no
 * -wal or -shm file it made. */
void session_open_store(struct sup *s);
/* Prepare the drain: statements, recovery of attempts left open, the session (new or
 * resumed), the coefficient set, the queue. Exits 1 on failure. */
void session_prepare(struct sup *s);
/* After the loop: commit what is queued, record how the session ended, release the
 * database and everything the drain held. */
void session_finish(struct sup *s);
/* The start is over: the loop runs. Until then, a supervisor registered in the fleet
 * whose start fails leaves the fleet as it exits (its row stopped, not live until the
 * others declare it lost), and records the end of a session it began that no other
 * supervisor drains in; when it cannot (the connection lost), the log says that its row
 * stays live until then. */
void session_started(struct sup *s);
/* The supervisor cannot run after all (its control socket, its --http address): record
 * the end of the session it began, with `why` as its stop reason, so that it does not
 * stay open as if the supervisor had died mid-drain; a resumed or shared session is left
 * as it was (a shared one is ended by the last supervisor to leave it). Then exit 1. */
void session_refused(struct sup *s, const char *why) __attribute__((noreturn));

/* --- report.c: what a drain leaves --- */

/* At the drain's end (after the last commit): count the drain's phases by state, find the
 * eligible phases it did not attempt and why, log them, save the report with the
 * session's state ("end") and set the exit status to SUP_EXIT_WORK_LEFT when the drain
 * rules left work. Writes the counts, as the end of the last log line, into `line`. */
void report_drain_end(struct sup *s, char *line, size_t n);

/* --- service.c: the service manager (systemd's notification protocol, notify.h) --- */

/* Read what the service manager set in the environment (and remove it, so no worker
 * inherits it); exits 1 when it is malformed. Before any worker starts. */
void service_open(struct sup *s);
/* Start telling the service manager: readiness, status, watchdog, stopping. After the
 * loop exists; nothing when not under one. */
void service_init(struct sup *s);
/* Write the one-line status the service manager shows into buf (size n). */
void service_status_line(struct sup *s, char *buf, size_t n);
/* After the loop: the last status, and close. */
void service_finish(struct sup *s);

/* --- checkpoint.c: the write-ahead log's checkpoints, reported --- */

/* Once a second: warn (at most once a minute) while the store's checkpoints fail, naming
 * the file, the error and the write-ahead log's size; say when they succeed again. */
void checkpoint_report(struct sup *s);

/* --- foreign.c: phases another program queues in a SQLite database meanwhile --- */

/* Note the database's data_version as the queues were read (SQLite, alone on the
 * database; else the watch stays off). */
void foreign_init(struct sup *s);
/* Called each second: when another connection committed since the queues last agreed
 * with the database, load the runs with a phase QUEUED in the database that the queues do
 * not hold, and dispatch them, at the first moment (a loop turn's end) when no write waits
 * for its commit. A read of the queue takes at most a tenth of the loop's time. */
void foreign_check(struct sup *s);
/* Called by lifecycle_check_done when the queues are drained, before the supervisor stops
 * as drained (--exit-when-drained): when another connection committed since the queues
 * last agreed with the database (or a read is due or failed), read the phases QUEUED that
 * the queues do not hold at once, load their runs and dispatch them. Returns true when it
 * loaded runs, or waits for a commit's fsync (whose end calls lifecycle_check_done
 * again): the drain is not over. False when nothing is new, data_version cannot be read,
 * the read failed (logged), the batch is spent, or off (PostgreSQL, stopping). */
bool foreign_drain_end(struct sup *s);

/* --- lifecycle.c: signals, stop levels, the end of the loop, the database's identity --- */

/* Start the signal handlers and the lifecycle's timers; `stop_workers` is how a stop
 * reaches the pool. */
void lifecycle_init(struct sup *s, void (*stop_workers)(struct sup *s, enum stop_level level));
/* Stop at `level` (levels only rise): graceful lets attempts in flight finish, now kills
 * the workers and requeues their phases. */
void lifecycle_stop(struct sup *s, enum stop_level level);
/* Stop, recording the first reason given as the session's stop reason. */
void lifecycle_stop_because(struct sup *s, enum stop_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, with the stop's cause (what the drain's end reports, report.c). */
void lifecycle_stop_for(struct sup *s, enum stop_level level, enum stop_cause cause,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Turn a graceful stop into a fast one after `ms`. */
void lifecycle_stop_timeout(struct sup *s, uint64_t ms);
/* Stop when drained (--exit-when-drained); end the loop once a stop has finished. */
void lifecycle_check_done(struct sup *s);
/* If the database path no longer names the file opened, stop writing and exit 3. */
void lifecycle_identity_check(struct sup *s);
/* When the connection to the database server is gone: begin connecting again, unless
 * that is under way, and return whether it was gone. The connection is made from the
 * loop (its socket watched), within lifecycle_reconnect_ms; once made (a server answering
 * for another database is a lost database: exit 3) a commit waiting for its retry is
 * made at once. A failed or timed-out attempt is logged; the next one begins at the next
 * call (the writer's retry, the fleet's beat). */
bool lifecycle_reconnect(struct sup *s);
/* The time an attempt to connect again is given: half the lease, between 1 and 10 s. */
uint64_t lifecycle_reconnect_ms(const struct sup *s);
/* An attempt to connect again ended with rc (0: connected; err says why not): logs it,
 * and a server that now answers for another database is a lost database (exit 3). */
void lifecycle_reconnected(struct sup *s, int rc, const struct store_err *err);
/* Another supervisor declared this one lost (its heartbeat stopped): the writes waiting
 * in the queue (late results and events) are refused and counted, nothing more is
 * written, the workers are killed and the supervisor exits 3. */
void lifecycle_declared_lost(struct sup *s);
/* Another supervisor declared this one lost: say so, refuse and count what waits, no
 * further writes, exit 3 (the stop is the caller's). */
void lifecycle_lost_note(struct sup *s);
/* A transaction (`what`: a group commit, a dispatch round) failed with err, after its
 * rollback: count it in the streak of failures in a row, and return the delay before the
 * retry; or give up on the database at the streak's limit (COMMIT_MAX_FAILURES when the
 * database is busy, else COMMIT_MAX_HARD_FAILURES): write nothing more, stop the workers
 * and exit 3 once they are gone, releasing the lock; then 0 (also when the database was
 * found lost). */
uint64_t lifecycle_write_failed(struct sup *s, const char *what, const struct store_err *err);
/* Give up on the database because of `why`: write nothing more, stop the workers and
 * exit 3 once they are gone. */
void lifecycle_give_up(struct sup *s, const char *why);
/* The fsync of the write-ahead log `path` failed with errno `err`, with `held` committed
 * groups waiting for it: a failed write that cannot be retried safely. Say so, write
 * nothing more, stop the workers and exit 3 once they are gone. */
void lifecycle_sync_failed(struct sup *s, const char *path, int err, int64_t held);

/* --- lag.c: the loop's own lag (a stalled supervisor is not a hung worker) --- */

/* Start measuring the loop's lag. */
void lag_init(struct sup *s);
/* Measure the lag now; returns the lag so far (ms). A stall is logged and counted, and
 * holds off judging workers until their frames are read. */
uint64_t lag_note(struct sup *s);
/* How long to wait before judging a deadline of `span_ms` armed at loop time `since_ms`,
 * when the lag was `lag_at`: the span counts only time the loop ran, and nobody is judged
 * right after a stall. 0: judge now. */
uint64_t lag_wait_ms(struct sup *s, uint64_t since_ms, uint64_t lag_at, uint64_t span_ms);

/* --- sched.c: the run queues and which run goes next --- */

/* Build the run queues from the database's eligible phases and the restored triage.
 * Returns 0 or -1 (logged). */
int sched_load(struct sup *s);
/* Several supervisors: rebuild the queues of the runs not leased here from the database
 * (other supervisors finish, requeue and rescue phases), leaving out the runs they lease.
 * -1 (logged) when the database could not be read: the queues then hold none of the runs
 * not leased here, which says nothing of what is eligible. */
int sched_refresh(struct sup *s);
/* Several supervisors: another supervisor holds run r's next phase; leave the run out until
 * the next sched_refresh or sched_refresh_parked. */
void sched_park(struct sup *s, struct run_q *r);
/* Several supervisors: reread the parked runs' eligible phases in one query and make those
 * with any ready again; the others (still held elsewhere) stay parked. */
void sched_refresh_parked(struct sup *s);
/* Reread a run's eligible phases (after an import, retry or cancel). */
void sched_reload_run(struct sup *s, const char *run_id);
/* Take the best ready run (NULL when none); the caller leases its head phase. */
struct run_q *sched_pop(struct sup *s);
/* Move r, waiting ready, to the place its rank (sampled, promising) now gives it; its wait
 * keeps its order. Nothing for a run that is not waiting. */
void sched_rerank(struct sup *s, struct run_q *r);
/* Abort unless the ready runs are in heap order, each at the place its rank gives it. */
void sched_assert_ready(const struct sup *s);
/* Take a ready run's head phase for a lease: the run is busy until released. */
struct qphase *sched_take(struct sup *s, struct run_q *r);
/* Drop a run's head phase, which is no longer eligible; the run stays ready. */
void sched_drop_head(struct sup *s, struct run_q *r);
/* Put a phase back at the head of its run's queue (dropped if the run is skipped). */
void sched_requeue(struct sup *s, struct run_q *r, struct qphase *p);
/* End a run's lease: it becomes ready again if it has work. */
void sched_release(struct sup *s, struct run_q *r);
/* Drop a run's queue and dispatch nothing more of it in this session, because of `why`. */
void sched_skip_run(struct sup *s, struct run_q *r, const char *why);
/* The phase state an attempt's outcome leads to, or PHASE_STATE_NONE to leave it (dry
 * run). */
enum phase_state sched_next_state(struct sup *s, struct qphase *p, enum outcome outcome);
/* Nothing eligible (or the batch is spent), nothing in flight, nothing to commit. */
bool sched_drained(struct sup *s);
/* The run with this id, or NULL. */
struct run_q *sched_run_find(struct sup *s, const char *run_id);
/* Whether --skip-run-prefix leaves a run out of the drain. */
bool sched_run_excluded(struct sup *s, const char *run_id);
/* Free a queued phase. */
void sched_phase_free(struct qphase *p);
/* Free every run and queued phase. */
void sched_free(struct sup *s);

/* --- lease.c: one attempt from dispatch to close --- */

/* Prepare the part of every job that is the supervisor's (settings, database, coefficient
 * set) and hook the dispatch into the writer's rounds. */
void lease_init(struct sup *s);
/* Release what lease_init prepared. */
void lease_free(struct sup *s);
/* Ask for a dispatch at the end of this loop turn (in the round's transaction). */
void lease_kick(struct sup *s);
/* Take an event of w's lease (fenced, then queued for the writer; ev's contents are taken
 * over). */
void lease_event(struct worker *w, struct proto_event *ev);
/* Take w's result. Returns true when it ended the lease; false when it was refused (a
 * stale or foreign result, or a value outside the vocabulary: the worker is then
 * killed). */
bool lease_result(struct worker *w, struct proto_result *r);
/* The worker process of a lease ended: close the attempt as what the supervisor saw
 * (timeout, heartbeat_lost, cancelled, supervisor_stopped, worker_crashed, ...). Returns
 * that outcome. */
enum outcome lease_abort(struct worker *w, int64_t status, int sig);
/* Stop a busy worker's attempt, which then ends as `cancelled`. */
void lease_cancel(struct worker *w);
/* Check that a frame belongs to w's lease and this database; counts and logs a refusal. */
bool lease_fenced(struct worker *w, const char *uuid, uint64_t att, const char *what);
/* The worker holding (run, phase), or NULL. */
struct worker *lease_find(struct sup *s, const char *run_id, const char *phase_id);
/* Hand w the oldest durable lease opened ahead: its job goes out at once. Returns
 * whether w took one (it is busy then). */
bool lease_ahead_take(struct sup *s, struct worker *w);
/* Whether phases are short: in the last window each worker ended one every PHASE_SHORT_MS
 * or sooner. */
bool lease_phases_short(const struct sup *s);
/* Whether no worker waits for a job and a durable lease opened ahead waits for each live
 * worker: the next results need no commit to be followed by jobs. */
bool lease_ahead_covers(const struct sup *s);
/* End every lease opened ahead as not started with `outcome` (a stop, a pause, the
 * breaker, a pool scaled to nothing): their phases go back to the queue. */
void lease_ahead_release(struct sup *s, enum outcome outcome, const char *why);
/* End the lease opened ahead for (run, phase) as cancelled; its attempt id, or 0 when
 * there is none. */
uint64_t lease_ahead_cancel(struct sup *s, const char *run_id, const char *phase_id);
/* Worker w exited: a lease of a round not yet settled (writer.c) that was to be its
 * waits for another worker instead, as one opened ahead. */
void lease_worker_gone(struct worker *w);
/* Make the job queued on w (lease.c, lease_queue) its lease, its deadline armed; false
 * when it holds none. */
bool lease_queued_take(struct worker *w);
/* End the job queued on w, which the worker never reported starting, as a lease opened
 * ahead no worker took: as supervisor_stopped ("not started: why"), or as cancelled when
 * the operator cancelled it; nothing when it holds none. */
void lease_queued_end(struct worker *w, const char *why);
/* Cancel the job queued on a worker for (run, phase): the worker is told at once (it
 * drops the job, or leaves if it has started it) and, when its lease ends, is stopped
 * and the attempt ended as cancelled. Returns the attempt, or 0 when none is queued. */
uint64_t lease_queued_cancel(struct sup *s, const char *run_id, const char *phase_id);

/* --- pool.c: the worker processes --- */

/* Start cfg.workers workers. A worker that cannot be spawned is retried with backoff. */
void pool_init(struct sup *s);
/* Grow or shrink the pool to `target`: idle workers retire first, busy ones after their
 * attempt, or at once (TERM, phase requeued) with `force`. */
void pool_scale(struct sup *s, int target, bool force);
/* Stop the workers for a stop at `level`: graceful retires idle workers and lets busy
 * ones finish; now kills them all. */
void pool_stop(struct sup *s, enum stop_level level);
/* Reset a tripped breaker: dispatch and respawn again (resume, scale). Returns whether it
 * had tripped. */
bool pool_breaker_reset(struct sup *s);
/* When the usage event `u` of w's attempt reports a call refused for its key (HTTP 401 or
 * 403), trip the breaker (every call with that key would be refused) and mark the attempt
 * as one the drain rules do not judge. */
void pool_key_refused(struct worker *w, const struct proto_usage *u);

/* --- worker.c: one worker process --- */

/* The live worker with this id, or NULL; O(1). */
struct worker *worker_find(struct sup *s, int id);
/* Make w findable by its id. */
void worker_register(struct worker *w);
/* Forget w (before it is freed): by id and as idle. */
void worker_unregister(struct worker *w);
/* Offer an idle worker to the dispatch. */
void worker_idle_push(struct worker *w);
/* Take the first idle worker not retiring, or NULL; O(1) amortised. */
struct worker *worker_idle_pop(struct sup *s);
/* Withdraw w from the idle workers (it is busy, retiring or gone). */
void worker_idle_remove(struct worker *w);
/* Signal the worker's process, remembering that we did. After a SIGTERM it has the kill
 * grace (kill_grace_ms) to exit, whatever it did meanwhile (sent its result, went idle);
 * one still running then is killed with SIGKILL, which is logged. */
void worker_kill(struct worker *w, int sig);
/* Ask the worker to exit (a shutdown message saying `why`; one that has not handed its
 * socket over yet is sent none, and is asked again after its hello). It has the kill grace
 * (kill_grace_ms) to exit, whatever it does meanwhile; one still running then (stuck, or
 * ignoring the message) is killed with SIGKILL, which is logged, and what is left of its
 * session with it when it is reaped. */
void worker_shutdown(struct worker *w, const char *why);
/* Send a message. Returns 0; or a negative errno when it cannot be encoded (nothing sent,
 * the worker is fine, and err, if not NULL, says why); or a libuv error when the channel
 * failed (the worker is then killed). */
int worker_send(struct worker *w, const struct proto_msg *m, struct proto_err *err);
/* Gather what is sent to each worker from now on (`on`), or write what was gathered, one
 * write a worker (a worker whose channel fails is killed). */
void worker_cork_all(struct sup *s, bool on);
/* Free the table of workers by id and the list of corked ones, once every worker is closed. */
void worker_table_free(struct sup *s);
/* A worker's state as status shows it: starting, idle, busy, retiring, exited. */
const char *worker_state_name(const struct worker *w);
/* What a log line about w is about: the session and the worker, and while it runs an
 * attempt, the attempt's run, phase and id. */
struct log_about worker_about(const struct worker *w);

/* --- cpulimit.c: a worker's CPU time limit --- */

/* A CPU time limit as text into buf (n bytes): "N s", or "unlimited". Returns it. */
const char *cpulimit_text(rlim_t v, char *buf, size_t n);
/* Read the worker's CPU time limit (its soft and hard RLIMIT_CPU); unlimited when it
 * cannot be read. */
void cpulimit_read(struct worker *w);
/* Whether the worker, after a job, has used its soft CPU time limit or comes within a
 * second of it (half of it, under two seconds):
 * then `why` (n bytes) says how much it used and what the limit is. */
bool cpulimit_spent(const struct worker *w, char *why, size_t n);
/* The limit a worker's death by signal `sig` names, as " (…)" into buf (n bytes): SIGXCPU,
 * SIGXFSZ, or a SIGKILL the supervisor did not send under a hard CPU time limit; "" for
 * any other. Returns buf. */
const char *cpulimit_signal_cause(const struct worker *w, int sig, char *buf, size_t n);

/* --- convert.c: between the store's types and the wire's --- */

/* Point the phase-specific fields of a job at a phase spec's strings (borrowed). */
void convert_spec_to_job(const struct drain_spec *spec, struct proto_job *job);
/* Copy a coefficient set's rows into a job. */
void convert_coefs_to_job(const struct store_coef_row *rows, size_t n, struct proto_job *job);
/* View an event from a worker as the row the store records (strings borrowed from ev). */
void convert_event_to_row(const struct proto_event *ev, struct drain_event *row);

/* --- writer.c: the group commit --- */

/* Initialise the commit timer and the round's handle. */
void writer_init(struct sup *s);
/* Commit at the end of this loop turn if leases can be opened (or `urgent`: whatever is
 * queued): one transaction with the queued writes and the leases, then the
 * acknowledgements and the jobs. */
void writer_round(struct sup *s, bool urgent);
/* Queue an event of an attempt of (run, phase), acknowledged to `ack_to` after the commit
 * (NULL: to nobody); takes over ev's contents. `unawaited`: an announcement the worker
 * does not wait for, whose ack alone may be held (writer_acks_asked). */
void writer_event(struct sup *s, struct worker *ack_to, const char *run_id, const char *phase_id,
    struct proto_event *ev, bool unawaited);
/* Worker w waits for acks of its attempt: send the ack held for it, and hold none for the
 * rest of the attempt. */
void writer_acks_asked(struct worker *w);
/* Queue the end of an attempt of phase (run_id, phase_id), of task `category` (NULL:
 * none; for the metrics); `done` (with `ctx`) is called after the commit that records it,
 * which it waits for as an event does (the caller asks for a round when it is urgent).
 * The ids, message, fingerprint and category are copied. */
void writer_close(struct sup *s, uint64_t attempt_id, const char *run_id, const char *phase_id,
    const struct drain_close *end, const char *category, op_done_cb done, void *ctx);
/* The end queued for an attempt of phase (run_id, phase_id) and not yet committed (its
 * phase's new state may still be changed), or NULL. */
struct op *writer_close_queued(struct sup *s, const char *run_id, const char *phase_id);
/* Queue a control_log row (command, arguments, outcome). */
void writer_control_log(struct sup *s, int64_t peer_pid, int64_t peer_uid, const char *command,
    const char *args, bool ok, const char *result);
/* Commit everything queued in one transaction, then acknowledge the events and call the
 * done callbacks. A failed commit is rolled back and retried later; the queue is kept. */
void writer_flush(struct sup *s);
/* Several supervisors: commit the heartbeat alone when nothing else is queued. */
void writer_heartbeat(struct sup *s);
/* Commit in the loop's next turn rather than at the end of the window, unless a failed
 * commit is waiting for its retry (a worker waits for acks). */
void writer_flush_early(struct sup *s);

/* Release a committed group once `durable` (its fsync completed): count and observe it,
 * send its acknowledgements and its leases' jobs, hand its ends back (op done
 * callbacks), free its writes; when not durable (the fsync failed, or writing was given
 * up), free them only: nothing of it is acknowledged or sent. */
void writer_release(struct sup *s, struct commit_group *g, bool durable);
/* An fsync off the loop ended: a commit put off while it ran happens in this turn's round. */
void writer_sync_ended(struct sup *s);
/* After the loop: free the writes never committed and the groups kept for reuse. */
void writer_free(struct sup *s);

/* --- op_arena.c: the memory of queued events --- */

/* n zeroed bytes from arena a, aligned for any type, taken from a block released earlier
 * or a new one. Cannot fail (exits when memory is exhausted, as xmalloc). */
void *op_arena_alloc(struct sup *s, struct op_arena *a, size_t n);
/* Give every block of a back (kept for reuse, up to a bound, else freed) and empty it:
 * whatever was carved from it is gone. */
void op_arena_release(struct sup *s, struct op_arena *a);
/* Free the blocks kept for reuse. */
void op_arena_free_spare(struct sup *s);

/* --- sync.c: the commit's fsync off the loop (SQLite, --synchronous full) --- */

/* Decide how commits reach the disk: with --synchronous full on SQLite, open the
 * write-ahead log to fsync it on the threadpool (when it cannot be opened as the file the
 * database opened, log why: SQLite then syncs each commit on the loop, as before);
 * `release` is called with each held group, in commit order. After session_prepare. */
void sync_init(struct sup *s, void (*release)(struct sup *s, struct commit_group *g, bool durable));
/* Whether the group about to be written has its fsync off the loop (--fsync-off-loop, or
 * by default while phases are short). */
bool sync_deferring(const struct sup *s);
/* Before a writer's BEGIN: the connection commits without syncing (NORMAL) when the
 * commits are pipelined. Returns 0, or -1 with a store error. */
int sync_group_begin(struct sup *s, struct store_err *err);
/* After the writer's COMMIT or ROLLBACK: the connection syncs every commit again (FULL);
 * logged on failure. */
void sync_group_end(struct sup *s);
/* A group committed: hold it until an fsync started after now completes, then release
 * it; at once when commits are not pipelined. */
void sync_hold(struct sup *s, struct commit_group *g);
/* Whether the writer gathers rather than commits now: a committed group waits for the
 * next fsync already, or the running fsync makes more writes durable than are queued (so
 * a group committed during an fsync is about as large as the one on its way to disk). */
bool sync_waiting(const struct sup *s);
/* Drop every held group unacknowledged (writing was given up). */
void sync_drop(struct sup *s);
/* After the loop (no fsync running): drop what is held, set the connection back to FULL,
 * close the write-ahead log's descriptor. */
void sync_finish(struct sup *s);

/* --- policy.c: the drain rules --- */

/* The bucket of a failure reason (docs/drain-rules.md); free text, since adopted
 * databases hold the original's reasons. */
enum bucket policy_bucket(const char *failure_reason);
/* Judge one attempt's end of run r (triage, timeouts, zero-yield streak, fingerprints)
 * and say what follows. */
void policy_result(struct sup *s, struct run_q *r, enum outcome outcome, const char *fingerprint,
    int64_t v2_events, struct policy_verdict *v);
/* Restore the state saved by a session being resumed (or joined). Returns 0 or -1
 * (logged). */
int policy_load(struct sup *s, const char *state_json);
/* In the group's transaction: save the policy state, with `end` (the drain's report;
 * NULL: none) under the key "end"; with several supervisors, lock the session's saved
 * state, merge this supervisor's news into it (a fingerprint whose merged count reaches
 * its limit stops the run that produced it here), and carry out what the others decided,
 * so that no save drops what another saved since this one last read the state. Returns 0
 * or a store error. */
int policy_save(struct sup *s, struct json_t *end, struct store_err *err);
/* The group that saved the state committed: the news are in the database. */
void policy_saved(struct sup *s);
/* The group that merged the news had its COMMIT go unanswered: hold them aside (what is
 * judged meanwhile is news of its own). */
void policy_hold(struct sup *s);
/* What became of the group whose news are held: `committed`, they are saved and
 * forgotten; else they are news again, before those judged since. */
void policy_held(struct sup *s, bool committed);
/* Several supervisors: read the session's saved state (outside a transaction) and carry
 * out what the others decided: runs they stopped or deprioritised are skipped here,
 * runs a retry released are drained again. Logged on failure. */
void policy_sync(struct sup *s);
/* A retry queued phases of `run_id` again: drain the run again in this session. */
void policy_release_run(struct sup *s, const char *run_id);
/* Why the session's policy holds run_id back (stopped or deprioritised), or NULL. */
const char *policy_held_back_why(const struct sup *s, const char *run_id);
/* Release the policy state. */
void policy_free(struct policy *p);
/* Whether a name set holds `name`. */
bool nameset_has(const struct nameset *ns, const char *name);

/* --- control.c: the control server --- */

/* Listen on the control socket. Returns 0 or -1 (logged). */
int control_listen(struct sup *s);
/* Run one control request of connection c (a stand-in for requests that come through the
 * database) and log it in control_log when the command is logged; 0 or -1 as the
 * command returns. */
int control_run(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep);
/* Stop listening, remove the socket and drop control connections. */
void control_close(struct sup *s);

#endif
