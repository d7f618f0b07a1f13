/*
 * The supervisor: one libuv loop that owns the database (the only writer), the worker
 * pool, the scheduler, the group-commit writer and the control server.
 */
#ifndef AUTOPACK_SUP_H
#define AUTOPACK_SUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/store/store.h"
#include "common/store/store_coef.h"
#include "common/store/store_drain.h"
#include "common/vocab.h"
#include "proto/wire.h"
#include "supervisor/chan.h"

struct sup_config {
	const char *db_flag;
	int workers;
	const char *run_id;
	int64_t batch_size; /* attempts to start; 0 = no limit */
	int64_t phase_timeout_s;
	int64_t max_attempts; /* per phase in one session */
	bool sync_full;
	bool exit_when_drained;
	bool dry_run;
	bool allow_empty_db;
	const char *control_path;
	const char *log_file;
	const char *worker_path;
	int64_t heartbeat_timeout_s;
	int64_t kill_grace_ms;
	int64_t commit_window_ms;
	int64_t commit_max;
	/* LLM settings sent in every job; keys stay in the environment. */
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

/* Sample-first triage and stop rules, persisted with every commit (docs/drain-rules.md). */
struct policy {
	struct fp_count *fps;
	size_t nfps;
	struct nameset stopped_fps;
	struct nameset sampled, promising, deprioritized, stopped_runs;
	int64_t consecutive_zero;
	bool dirty; /* changed since the last commit */
};

/* A phase waiting in its run's queue. */
struct qphase {
	char *phase_id;
	int64_t phase_index;
	enum bucket bucket; /* of its last failure reason (docs/drain-rules.md) */
	int64_t attempts;   /* in this session */
	int64_t max_attempts;
	struct qphase *next;
};

/* A run: its eligible phases in order, and whether one of them is leased. */
struct run_q {
	char *run_id;
	struct qphase *head;
	struct qphase *tail;
	bool busy;
	bool ready;   /* linked on sup.ready */
	bool sampled; /* its first result in this session is in */
	bool promising;
	bool skipped;       /* deprioritised or stopped: no more dispatch */
	int64_t timeouts;   /* timeout results in this session */
	uint64_t ready_seq; /* when it became ready, for ties */
	struct run_q *next; /* all runs */
	struct run_q *next_ready;
};

enum worker_state {
	W_STARTING,
	W_IDLE,
	W_BUSY,
	W_EXITED
};

struct worker {
	struct sup *sup;
	int id;
	pid_t pid;
	enum worker_state state;
	uv_process_t proc;
	struct chan chan;
	uv_timer_t hb_timer;    /* heartbeat deadline */
	uv_timer_t phase_timer; /* phase deadline, then kill grace */
	int handles;            /* open handles; freed when it reaches 0 */
	/* the lease */
	uint64_t attempt_id;
	struct run_q *run;
	struct qphase *phase;
	uint64_t lease_ms;
	enum outcome end_outcome; /* why we are killing it (timeout, heartbeat_lost, ...) */
	bool retire;              /* shut down once idle */
	bool killed;              /* we signalled it */
	uint64_t born_ms;
	uint64_t jobs_done;
	int64_t lease_v2;      /* token_estimation_v2 events of the lease */
	int64_t lease_samples; /* of those, clean estimator samples */
	struct worker *next;
};

/* A write waiting for the next group commit. */
enum op_kind {
	OP_EVENT,
	OP_CLOSE,
	OP_CTLLOG
};

struct op {
	enum op_kind kind;
	int worker_id; /* for the ack; 0 = none */
	char *run_id;
	char *phase_id;
	struct proto_event ev;    /* OP_EVENT */
	uint64_t attempt_id;      /* OP_CLOSE */
	struct drain_close close; /* OP_CLOSE; strings owned below */
	char *strs[5];
	struct qphase *requeue;     /* OP_CLOSE: phase to put back at its run's head */
	int64_t peer_pid, peer_uid; /* OP_CTLLOG; command, args, result in strs[0..2] */
	bool ok;
	struct run_q *run; /* OP_CLOSE: run to release after commit */
	struct op *next;
};

struct sup_counters {
	uint64_t dispatched;
	uint64_t results;
	uint64_t events_committed;
	uint64_t events_duplicate;
	uint64_t rejected_uuid;
	uint64_t rejected_stale;
	uint64_t worker_crashes;
	uint64_t worker_timeouts;
	uint64_t commits;
	uint64_t commit_failures;
};

struct sup {
	uv_loop_t *loop;
	struct sup_config cfg;
	struct store *st;
	struct store_drain *sd;
	int lock_fd;
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
	int crash_streak;
	bool crash_loop;
	uv_timer_t respawn_timer;
	uint64_t restarts;

	/* scheduler */
	struct run_q *runs; /* in database order */
	struct run_q *runs_tail;
	struct run_q *ready_head;
	struct run_q *ready_tail;
	uint64_t ready_seq;
	struct policy pol;
	const char *stop_reason; /* why the drain ended; static or pol-owned */
	char stop_buf[160];
	int64_t queued; /* phases in run queues */
	int64_t in_flight;
	int64_t started; /* attempts started this drain */
	bool paused;
	uv_idle_t dispatch_idle;
	bool dispatch_armed;
	uv_timer_t dispatch_retry; /* after a failed dispatch transaction */

	/* writer */
	struct op *ops_head;
	struct op *ops_tail;
	int64_t ops_n;
	uv_timer_t commit_timer;
	bool commit_armed;
	uint64_t last_commit_ms;

	/* control */
	uv_pipe_t ctl_server;
	bool ctl_open;

	/* shutdown */
	enum stop_level stopping;
	int exit_code;
	uv_signal_t sigint, sigterm;
	uv_timer_t stop_timer;
	uv_timer_t identity_timer;
	uv_timer_t deadline_timer;
	bool store_lost;

	struct sup_counters n;
};

/* pool.c */
/* Start cfg.workers workers. A worker that cannot be spawned is retried with backoff. */
void pool_init(struct sup *s);
/* Grow or shrink the pool to `target`: idle workers retire first, busy ones after their
 * attempt, or at once (TERM, phase requeued) with `force`. */
void pool_scale(struct sup *s, int target, bool force);
/* Signal every worker with `sig`; 0 asks idle workers to shut down and busy ones to
 * stop after their attempt. */
void pool_kill_all(struct sup *s, int sig);
/* Stop a busy worker's attempt, which then ends as `cancelled`. */
void pool_cancel(struct worker *w);
/* The live worker with this id, or NULL. */
struct worker *pool_find(struct sup *s, int id);
/* Lease (r, p) to idle worker w under `attempt_id` and send it the job. If the job cannot
 * be built, the attempt is closed as failed and the worker stays idle. */
int pool_send_job(struct worker *w, struct run_q *r, struct qphase *p, uint64_t attempt_id,
    int64_t attempt_number);

/* sched.c */
/* Build the run queues from the database's eligible phases. Returns 0 or -1 (logged). */
int sched_load(struct sup *s);
/* Ask for a dispatch round in the next loop iteration. */
void sched_kick(struct sup *s);
/* Put a phase back at the head of its run's queue (dropped if the run is skipped). */
void sched_requeue(struct sup *s, struct run_q *r, struct qphase *p);
/* End a run's lease: it becomes ready again if it has work. */
void sched_release(struct sup *s, struct run_q *r);
/* Drop a run's queue and dispatch nothing more of it in this session. */
void sched_skip_run(struct sup *s, struct run_q *r);
/* Reread a run's eligible phases (after an import, retry or cancel). */
void sched_reload_run(struct sup *s, const char *run_id);
/* The phase state an attempt's outcome leads to, or PHASE_STATE_NONE to leave it (dry
 * run). */
enum phase_state sched_next_state(struct sup *s, struct qphase *p, enum outcome outcome);
/* Nothing eligible (or the batch is spent), nothing in flight, nothing to commit. */
bool sched_drained(struct sup *s);
/* The run with this id, or NULL. */
struct run_q *sched_run_find(struct sup *s, const char *run_id);
void sched_free(struct sup *s);

/* policy.c */
/* The bucket of a failure reason (docs/drain-rules.md); free text, since adopted databases
 * hold the original's reasons. */
enum bucket policy_bucket(const char *failure_reason);
/* Judge one attempt's end (triage, timeouts, zero-yield streak, fingerprints); may stop
 * the run or the session. */
void policy_result(struct sup *s, struct run_q *r, enum outcome outcome, const char *fingerprint,
    int64_t v2_events);
/* The policy state as a JSON object (heap string), saved with each commit. */
char *policy_state_json(struct sup *s);
/* Restore the state saved by a session being resumed. Returns 0 or -1 (logged). */
int policy_load(struct sup *s, const char *state_json);
/* Mark loaded runs as the restored state says (sampled, promising, skipped). */
void policy_apply_runs(struct sup *s);
void policy_free(struct policy *p);
bool nameset_has(const struct nameset *ns, const char *name);

/* writer.c */
void writer_init(struct sup *s);
/* Queue an event of w's lease for the next commit; takes ownership of ev's contents. */
void writer_event(struct sup *s, struct worker *w, struct proto_event *ev);
/* End w's lease: queue the attempt's end (from result r, or from what the supervisor
 * saw when r is NULL) and judge it by the drain policies. */
void writer_close_attempt(struct sup *s, struct worker *w, enum outcome outcome, enum reason reason,
    const char *message, const struct proto_result *r);
/* Queue a control_log row (command, arguments, outcome) for the next commit. */
void writer_control_log(struct sup *s, int64_t peer_pid, int64_t peer_uid, const char *command,
    const char *args, bool ok, const char *result);
/* Commit everything queued in one transaction, then ack and apply its effects. A failed
 * commit is rolled back and retried; the queue is kept. */
void writer_flush(struct sup *s);

/* convert.c */
/* Move a phase spec's strings into the phase-specific fields of a job (spec is left
 * empty). */
void convert_spec_to_job(struct drain_spec *spec, struct proto_job *job);
/* Copy a coefficient set's rows into a job. */
void convert_coefs_to_job(const struct store_coef_row *rows, size_t n, struct proto_job *job);
/* View an event from a worker as the row the store records (strings borrowed from ev). */
void convert_event_to_row(const struct proto_event *ev, struct drain_event *row);

/* control.c */
/* Listen on the control socket. Returns 0 or -1 (logged). */
int control_listen(struct sup *s);
/* Stop listening, remove the socket and drop control connections. */
void control_close(struct sup *s);

/* main.c */
/* Stop at `level` (levels only rise): graceful lets attempts in flight finish, now kills
 * the workers and requeues their phases. */
void sup_stop(struct sup *s, enum stop_level level);
/* Stop, recording the first reason given as the session's stop reason. */
void sup_stop_because(struct sup *s, enum stop_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Turn a graceful stop into a fast one after `ms`. */
void sup_stop_timeout(struct sup *s, uint64_t ms);
/* Stop when drained (--exit-when-drained); end the loop once a stop has finished. */
void sup_check_done(struct sup *s);
/* If the database path no longer names the file opened, stop writing and exit 3. */
void sup_identity_check(struct sup *s);

#endif
