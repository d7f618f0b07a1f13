/*
 * The wire contract between autopack-supervisor, autopack-worker and autopack-ctl.
 * Types and limits only; the functions are in proto/wire.h.
 *
 * A frame is a 4-byte big-endian length followed by one msgpack map. Every map has
 * "v" (PROTO_VERSION) and "t" (the type name below). Unknown keys are ignored so later
 * versions can add fields; changing or removing a field means bumping PROTO_VERSION.
 *
 * Strings decoded from a frame are heap copies, NUL-terminated; a string holding a NUL
 * byte or invalid UTF-8 is refused. A nullable field decodes to NULL (strings) or -1
 * (counts) when the frame carries nil or omits it; the packer omits it. Every other field
 * is required. Integers may use any msgpack integer encoding whose value fits the field;
 * booleans must be msgpack booleans. Map keys are strings everywhere.
 *
 * Key table (the single source is proto/schema.c; "?" marks a nullable field):
 *
 *   hello      pid (1..INT32_MAX), sw
 *   job        db, uuid, att, run, phase (the phase id), p{...}, n (attempt number, >= 1),
 *              deadline (epoch ms), cap (max_tokens cap), llm{...}, est{...}, ws, dry (bool)
 *     p        name, desc, cat?, cplx?, paths[], ro[], dl[], check?, maxa
 *     llm      prov, url, model, tmo (ms), retries
 *     est      ver, oh [[category, complexity, overhead], ...], fit? (the fitted model's
 *              JSON, docs/calibration.md)
 *   heartbeat  uuid, att, wait? (the last event seq the worker waits to have acknowledged)
 *   event      uuid, att, seq, kind, body{...}; kind names the body:
 *     llm_usage            prov, model, role, in?, out?, total, lat, http (0..999), err?,
 *                          try (>= 1)
 *     token_estimation_v2  cat, cplx, ndl, dl (deliverables JSON), pred, actual, budget,
 *                          maxt?, success (bool), truncated (bool), stop?, model, ver,
 *                          doc? (0..15, enum doc_feature bits), ctxq?, sot?, sotn?,
 *                          in? (the call's input tokens), dlx? (JSON: per deliverable
 *                          its kind and existing size)
 *     log                  lvl, msg
 *     llm_request          prov, model, role, maxt (>= 1), try (>= 1)
 *   ack        att, seq
 *   result     uuid, att, seq (final), outcome, why?, msg?, fp?, zy?, llm (bool), dur
 *   cancel     att
 *   shutdown   why?
 *   request    id, cmd, args[], uuid?, db?, dev? (the database the client expects: its
 *              uuid, canonical URL and "device:inode")
 *   reply      id, ok (bool), code?, msg?, db, uuid, dev, body? (JSON), more (bool)
 *
 * Integers are >= 0 unless a range is given (the overhead in est.oh is any int64). Token
 * counts (cap, in, out, pred, actual, budget, maxt) are at most PROTO_TOKENS_MAX (10^9),
 * a call's total at most PROTO_TOTAL_TOKENS_MAX (2 * 10^9).
 * An event's and a result's seq and an estimation's ver, which the database keeps as
 * signed 64-bit integers, are at most INT64_MAX; an event's seq is at least 1 (0 is the
 * supervisor's own record of a telemetry gap).
 * Identifiers (uuid, dev, run, phase, cat, cplx, prov, model, role, outcome, cmd, code, lvl,
 * stop, ctxq, sw, err, oh names) hold at most PROTO_NAME_MAX bytes; URLs and paths
 * (db, ws, url, paths, ro, dl, sot) PROTO_PATH_MAX; other text PROTO_STR_MAX.
 */
#ifndef AUTOPACK_PROTO_H
#define AUTOPACK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vocab.h"

#define PROTO_VERSION 1
#define PROTO_FRAME_MAX_DEFAULT (4u << 20) /* bytes of msgpack after the length */
#define PROTO_DEPTH_MAX 6                  /* nesting of maps and arrays */
#define PROTO_STR_MAX (1u << 20)           /* bytes in any one string */
#define PROTO_LIST_MAX 4096                /* elements in any one array */
#define PROTO_NAME_MAX 256                 /* bytes in an identifier */
#define PROTO_PATH_MAX 4096                /* bytes in a URL or a path */
#define PROTO_FIELDS_MAX 32                /* fields of one map: the decoder's seen-bitmask */

/* The most tokens one count on the wire may say: a call's input or output tokens, a
 * prediction, a budget, a max_tokens, a job's cap. No call comes near it (context windows
 * hold a few million tokens at most, --max-tokens-cap is at most 10^6, the estimator
 * predicts at most 10^7), the worker takes a provider's count above it as not reported
 * (worker/llm_json.c), and 2^63 / 10^9 = 9.2e9 calls of such counts still fit a 64-bit
 * sum. A call's total is at most its input plus its output. A frame with a count above
 * these is malformed: refused with the field and the value, never stored. */
#define PROTO_TOKENS_MAX 1000000000LL
#define PROTO_TOTAL_TOKENS_MAX (2 * PROTO_TOKENS_MAX)

/* The exit status of a worker whose check command was killed by a stop signal the worker
 * did not send (a service manager signalling every process, a terminal's Ctrl-C reaching
 * the check): it sends no result, since the attempt says nothing about its phase; the
 * supervisor requeues the phase as stopped (or as an infrastructure failure when it is
 * not stopping). */
#define PROTO_WORKER_EXIT_INTERRUPTED 75

enum proto_type {
	PROTO_HELLO = 1, /* worker → supervisor, first frame */
	PROTO_JOB,       /* supervisor → worker */
	PROTO_HEARTBEAT, /* worker → supervisor */
	PROTO_EVENT,     /* worker → supervisor */
	PROTO_ACK,       /* supervisor → worker, after commit */
	PROTO_RESULT,    /* worker → supervisor, after the attempt's last event */
	PROTO_CANCEL,    /* supervisor → worker */
	PROTO_SHUTDOWN,  /* supervisor → worker */
	PROTO_REQUEST,   /* ctl → supervisor */
	PROTO_REPLY,     /* supervisor → ctl */
};

/* "hello": {pid, sw} */
struct proto_hello {
	int64_t pid;
	char *sw_version; /* autopack version of the worker binary */
};

/* A read-only description of the phase to run. */
struct proto_strlist {
	char **items;
	size_t n;
};

struct proto_phase {
	char *name;
	char *description;
	char *task_category; /* nullable */
	char *complexity;    /* nullable */
	struct proto_strlist paths;
	struct proto_strlist read_only_context;
	struct proto_strlist deliverables;
	char *check_command; /* nullable */
	int64_t max_builder_attempts;
};

/* One row of the estimator's overhead table (calibratable coefficients). */
struct proto_coef {
	char *category;
	char *complexity;
	int64_t overhead;
};

struct proto_llm {
	char *provider; /* "anthropic" | "openai" */
	char *base_url;
	char *model;
	int64_t timeout_ms;
	int64_t max_retries;
};

struct proto_buf;

/* "job": {db, uuid, att, run, phase, p{...}, n, deadline, cap, llm{...},
 *         est{ver, oh[[cat, cplx, n]...]}, ws, dry, ann?} */
struct proto_job {
	char *db_url; /* canonical sqlite:////abs/path.db */
	char *db_uuid;
	uint64_t attempt_id;
	char *run_id;
	char *phase_id;
	struct proto_phase phase;
	int64_t attempt_number; /* 1-based */
	int64_t deadline_ms;    /* wall-clock epoch ms by which the attempt must end */
	int64_t max_tokens_cap; /* upper bound on any max_tokens sent */
	struct proto_llm llm;
	uint64_t coef_version;
	struct proto_coef *coefs;
	size_t ncoefs;
	char *fit_json;  /* nullable: the active set's fitted model */
	char *workspace; /* absolute */
	bool dry_run;
	/* 1: try 1 of the first LLM call is on record with the lease (its llm_usage_events
	 * row reserved), so the worker sends it without waiting for its announcement's ack;
	 * 0, or -1 (absent): every try waits for that ack. */
	int64_t ann;
	/* Not on the wire as such: NULL, or the entries "cap", "llm" and "est" already packed
	 * from this job's max_tokens_cap, llm and estimator fields (proto_job_pack_shared),
	 * copied into each frame instead of packing those fields again. Whoever sets it keeps
	 * it equal to them. */
	const struct proto_buf *shared;
};

/* "heartbeat": {uuid, att, wait?} — att 0 and uuid "" while idle. A worker whose window of
 * unacknowledged events is full, or that announced an LLM call, waits for its acks and
 * says so with a heartbeat naming the last seq it sent; the supervisor then commits at
 * once instead of at the end of its commit window. */
struct proto_heartbeat {
	char *db_uuid;
	uint64_t attempt_id;
	int64_t wait_seq; /* -1: not waiting */
};

/* The event kinds of the vocabulary, named on the wire by their vocabulary names. */
enum proto_event_kind {
	PROTO_EV_LLM_USAGE = EVENT_LLM_USAGE,
	PROTO_EV_TOKEN_ESTIMATION = EVENT_TOKEN_ESTIMATION_V2,
	PROTO_EV_LOG = EVENT_LOG,
	PROTO_EV_LLM_REQUEST = EVENT_LLM_REQUEST,
};

/* kind "llm_usage": one HTTP call to a provider, failed calls included. */
struct proto_usage {
	char *provider;
	char *model;
	char *role;                /* builder, auditor, ... */
	int64_t prompt_tokens;     /* -1 = unknown */
	int64_t completion_tokens; /* -1 = unknown */
	int64_t total_tokens;
	int64_t latency_ms;
	int64_t http_status; /* 0 = no HTTP response */
	char *error_class;   /* nullable: NULL when the call succeeded */
	int64_t try_number;  /* 1-based within the builder call */
};

/* kind "token_estimation_v2": one builder call with an estimate. */
struct proto_estimation {
	char *category;
	char *complexity;
	int64_t deliverable_count;
	char *deliverables_json;
	int64_t predicted_output_tokens;
	int64_t actual_output_tokens;
	int64_t selected_budget;
	int64_t actual_max_tokens; /* -1 = unknown */
	bool success;
	bool truncated;
	char *stop_reason; /* nullable */
	char *model;
	uint64_t estimator_version;
	int64_t doc_features;           /* bit set of enum doc_feature; -1 = not computed */
	char *context_quality;          /* nullable: none|some|strong */
	char *sot_file_name;            /* nullable: set when the deliverable is a SOT ledger */
	int64_t sot_entry_count_hint;   /* -1 = none */
	int64_t input_tokens;           /* -1 = unknown */
	char *deliverables_detail_json; /* nullable: [{"kind", "bytes"}, ...] as in dl */
};

/* kind "llm_request": an HTTP try to a provider, announced before it is sent. */
struct proto_llm_request {
	char *provider;
	char *model;
	char *role;         /* builder, auditor, ... */
	int64_t max_tokens; /* >= 1 */
	int64_t try_number; /* 1-based within the builder call */
};

/* kind "log" */
struct proto_log {
	char *level; /* debug|info|warn|error */
	char *message;
};

/* "event": {uuid, att, seq, kind, body{...}} */
struct proto_event {
	char *db_uuid;
	uint64_t attempt_id;
	uint64_t seq; /* 1-based, increasing within the attempt */
	enum proto_event_kind kind;
	union {
		struct proto_usage usage;
		struct proto_estimation est;
		struct proto_log log;
		struct proto_llm_request request;
	} body;
};

/* "ack": {att, seq} — every event of the attempt up to seq is committed. The worker keeps
 * each event until it is acknowledged (worker/outbox.h). */
struct proto_ack {
	uint64_t attempt_id;
	uint64_t seq;
};

/* "result": the attempt's end, sent after its last event. */
struct proto_result {
	char *db_uuid;
	uint64_t attempt_id;
	uint64_t final_seq;      /* seq of the last event sent, 0 if none; the supervisor
	                          * records a gap between it and the events it received */
	char *outcome;           /* success|failed|timeout|dry_run */
	char *failure_reason;    /* nullable */
	char *message;           /* nullable: excerpt of what went wrong */
	char *fingerprint;       /* nullable */
	char *zero_yield_reason; /* nullable */
	bool reached_llm_boundary;
	int64_t duration_ms;
};

/* "cancel": {att} */
struct proto_cancel {
	uint64_t attempt_id;
};

/* "shutdown": {why} */
struct proto_shutdown {
	char *reason; /* nullable */
};

/* "request": {id, cmd, args[...], uuid?, db?, dev?}: each of the expected identity's
 * parts the supervisor's database must match, or the request is refused. */
struct proto_request {
	uint64_t id;
	char *command;
	struct proto_strlist args;
	char *expect_uuid;   /* nullable */
	char *expect_url;    /* nullable: canonical sqlite:////abs/path.db */
	char *expect_devino; /* nullable: "device:inode" of the database file */
};

/* "reply": {id, ok, code?, msg?, db, uuid, dev, body?, more} */
struct proto_reply {
	uint64_t id;
	bool ok;
	char *code;    /* nullable: machine-readable error code when !ok */
	char *message; /* nullable: human-readable */
	char *db_url;
	char *db_uuid;
	char *db_devino; /* "device:inode" of the database file */
	char *body;      /* nullable: a JSON document */
	bool more;       /* a stream: further replies with this id follow */
};

struct proto_msg {
	enum proto_type type;
	union {
		struct proto_hello hello;
		struct proto_job job;
		struct proto_heartbeat heartbeat;
		struct proto_event event;
		struct proto_ack ack;
		struct proto_result result;
		struct proto_cancel cancel;
		struct proto_shutdown shutdown;
		struct proto_request request;
		struct proto_reply reply;
	} u;
};

#endif
