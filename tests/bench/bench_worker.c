/* A benchmark worker: hands the supervisor a socket of its own on fd 3 (proto/hand.h),
 * speaks the real protocol on it and, for each job, sends
 * AUTOPACK_BENCH_EVENTS llm_usage events (default 100), sleeps AUTOPACK_BENCH_SLEEP_MS
 * (default 0) while heartbeating, then a dry_run result, without waiting for acks. It
 * measures the supervisor's writer and pool, not phase execution. */
#include "common/util.h"
#include "proto/fdio.h"
#include "proto/hand.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static struct proto_fd io;

/* Queue one message; write the queue once it holds 64 KiB. */
static void send_msg(const struct proto_msg *m, bool now)
{
	struct proto_err err;

	if (proto_fd_queue(&io, m, &err) != 0)
		exit(1);
	if ((now || io.out.len > 1 << 16) && proto_fd_flush(&io) != 0)
		exit(0);
}

/* Send nevents llm_usage events of the job, heartbeat for sleep_ms, then a result. */
static void run_job(const struct proto_job *job, long nevents, long sleep_ms)
{
	struct proto_msg e = { .type = PROTO_EVENT };
	struct proto_msg r = { .type = PROTO_RESULT };
	long i;

	for (i = 1; i <= nevents; i++) {
		e.u.event = (struct proto_event){
			.db_uuid = job->db_uuid,
			.attempt_id = job->attempt_id,
			.seq = (uint64_t)i,
			.kind = PROTO_EV_LLM_USAGE,
		};
		e.u.event.body.usage = (struct proto_usage){
			.provider = "anthropic",
			.model = "claude-sonnet-4-5",
			.role = "builder",
			.prompt_tokens = 1200 + i,
			.completion_tokens = 800 + i,
			.total_tokens = 2000 + 2 * i,
			.latency_ms = 900,
			.http_status = 200,
			.try_number = 1,
		};
		send_msg(&e, i == nevents);
	}
	for (i = 0; i < sleep_ms; i += 500) {
		struct proto_msg hb = { .type = PROTO_HEARTBEAT };

		hb.u.heartbeat.db_uuid = job->db_uuid;
		hb.u.heartbeat.attempt_id = job->attempt_id;
		hb.u.heartbeat.wait_seq = -1;
		send_msg(&hb, true);
		poll(NULL, 0, (int)(sleep_ms - i < 500 ? sleep_ms - i : 500));
	}
	r.u.result = (struct proto_result){
		.db_uuid = job->db_uuid,
		.attempt_id = job->attempt_id,
		.final_seq = (uint64_t)nevents,
		.outcome = "dry_run",
		.duration_ms = sleep_ms,
	};
	send_msg(&r, true);
}

/* Make the channel, say hello, then run every job until shutdown or the end of the
 * stream. */
int main(void)
{
	long nevents = getenv("AUTOPACK_BENCH_EVENTS") ? atol(getenv("AUTOPACK_BENCH_EVENTS")) :
	                                                 100;
	long sleep_ms = getenv("AUTOPACK_BENCH_SLEEP_MS") ?
	    atol(getenv("AUTOPACK_BENCH_SLEEP_MS")) :
	    0;
	struct proto_msg m = { .type = PROTO_HELLO };
	struct proto_err err;
	enum proto_fd_rc rc;
	char why[256];
	int sock, keys;

	prctl(PR_SET_DUMPABLE, 0);
	if ((sock = hand_give(3, why, sizeof why)) < 0 ||
	    hand_keys(sock, &keys, why, sizeof why) != 0) {
		fprintf(stderr, "bench-worker: %s\n", why);
		return 1;
	}
	if (keys >= 0)
		close(keys);
	proto_fd_init(&io, sock, PROTO_FRAME_MAX_DEFAULT);
	m.u.hello.pid = getpid();
	m.u.hello.sw_version = (char *)AUTOPACK_VERSION;
	send_msg(&m, true);
	while ((rc = proto_fd_recv(&io, &m, -1, &err)) == PROTO_FD_MSG) {
		if (m.type == PROTO_SHUTDOWN)
			return 0;
		if (m.type == PROTO_JOB)
			run_job(&m.u.job, nevents, sleep_ms);
		proto_msg_free(&m);
	}
	return rc == PROTO_FD_EOF ? 0 : 1;
}
