/* A benchmark worker: speaks the real protocol on fd 3 and, for each job, sends
 * AUTOPACK_BENCH_EVENTS llm_usage events (default 100), sleeps AUTOPACK_BENCH_SLEEP_MS
 * (default 0) while heartbeating, then a dry_run result. It measures the supervisor's
 * writer and pool, not phase execution. */
#include "common/util.h"
#include "proto/wire.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct proto_buf out;

static void flush_out(void)
{
	size_t off = 0;

	while (off < out.len) {
		ssize_t n = write(3, out.data + off, out.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(0);
		off += (size_t)n;
	}
	proto_buf_reset(&out);
}

static void send_msg(const struct proto_msg *m)
{
	if (proto_pack(m, &out) != 0)
		exit(1);
	if (out.len > 1 << 16)
		flush_out();
}

int main(void)
{
	long nevents = getenv("AUTOPACK_BENCH_EVENTS") ? atol(getenv("AUTOPACK_BENCH_EVENTS")) :
	                                                 100;
	long sleep_ms = getenv("AUTOPACK_BENCH_SLEEP_MS") ?
	    atol(getenv("AUTOPACK_BENCH_SLEEP_MS")) :
	    0;
	struct proto_reader rd;
	struct proto_err err;
	struct proto_msg m = { .type = PROTO_HELLO };
	uint8_t buf[65536];

	proto_buf_init(&out);
	proto_reader_init(&rd, PROTO_FRAME_MAX_DEFAULT);
	m.u.hello.pid = getpid();
	m.u.hello.sw_version = (char *)AUTOPACK_VERSION;
	send_msg(&m);
	flush_out();
	for (;;) {
		ssize_t n = read(3, buf, sizeof buf);
		int rc;

		if (n <= 0)
			return 0;
		if (proto_reader_feed(&rd, buf, (size_t)n, &err) != 0)
			return 1;
		while ((rc = proto_reader_next(&rd, &m, &err)) == 1) {
			if (m.type == PROTO_SHUTDOWN)
				return 0;
			if (m.type == PROTO_JOB) {
				struct proto_msg e = { .type = PROTO_EVENT };
				struct proto_msg r = { .type = PROTO_RESULT };
				long i;

				for (i = 1; i <= nevents; i++) {
					e.u.event = (struct proto_event){
						.db_uuid = m.u.job.db_uuid,
						.attempt_id = m.u.job.attempt_id,
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
					send_msg(&e);
				}
				flush_out();
				for (i = 0; i < sleep_ms; i += 500) {
					struct proto_msg hb = { .type = PROTO_HEARTBEAT };
					hb.u.heartbeat.db_uuid = m.u.job.db_uuid;
					hb.u.heartbeat.attempt_id = m.u.job.attempt_id;
					send_msg(&hb);
					flush_out();
					poll(NULL, 0,
					    (int)(sleep_ms - i < 500 ? sleep_ms - i : 500));
				}
				r.u.result = (struct proto_result){
					.db_uuid = m.u.job.db_uuid,
					.attempt_id = m.u.job.attempt_id,
					.final_seq = (uint64_t)nevents,
					.outcome = "dry_run",
					.duration_ms = sleep_ms,
				};
				send_msg(&r);
				flush_out();
			}
			if (m.type != PROTO_JOB) {
				proto_msg_free(&m);
				continue;
			}
			proto_msg_free(&m);
		}
		if (rc < 0)
			return 1;
	}
}
