/* The benchmark's LLM stand-in: a libuv HTTP/1.1 server on 127.0.0.1 that answers every
 * POST after a set delay (to the microsecond: a timerfd, not libuv's millisecond timers)
 * with an Anthropic Messages response whose text is the files
 * document for the deliverables the prompt lists (under "## Deliverables"), so that a
 * real worker writes them and succeeds. Keep-alive; any number of connections. The
 * Python stand-in of the test suite cannot serve thousands of requests a second.
 *   llm-server --delay-ms N --port-file PATH */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define REQ_MAX (8u << 20) /* a request larger than this closes the connection */

struct conn {
	uv_tcp_t tcp;
	struct conn *next; /* in the queue of replies waiting for their time */
	bool queued;
	char *buf;
	size_t len, cap;
	size_t req_len; /* the whole request being answered, once parsed; 0: none yet */
	char *reply;    /* the reply waiting for the delay */
	size_t reply_len;
	uint64_t req_ns; /* uv_hrtime() when the request was whole */
	uint64_t due_ns; /* req_ns + the delay */
};

struct write_req {
	uv_write_t req;
	char *data;
};

static uv_loop_t *loop;
static uint64_t delay_ms;
static unsigned long served;
/* The replies waiting for their time, in time order (every one waits the same delay),
 * and the timer (CLOCK_MONOTONIC, uv_hrtime's clock) set to the first one's. */
static struct conn *due_head, *due_tail;
static int due_fd;
static uv_poll_t due_poll;
/* How long after the delay the replies went out: the stand-in's own share of a call. */
static int64_t late_sum_ns, late_max_ns, late_min_ns = INT64_MAX;

/* Free a closed connection. */
static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	free(c->buf);
	free(c->reply);
	free(c);
}

/* Set the timer to the first waiting reply's time (or disarm it). */
static void due_arm(void)
{
	struct itimerspec its = { 0 };

	if (due_head != NULL) {
		its.it_value.tv_sec = (time_t)(due_head->due_ns / 1000000000u);
		its.it_value.tv_nsec = (long)(due_head->due_ns % 1000000000u);
	}
	timerfd_settime(due_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Queue c's reply for its time. */
static void due_add(struct conn *c)
{
	c->next = NULL;
	c->queued = true;
	if (due_tail != NULL)
		due_tail->next = c;
	else
		due_head = c;
	due_tail = c;
	if (due_head == c)
		due_arm();
}

/* Take c out of the queue. */
static void due_remove(struct conn *c)
{
	struct conn **p = &due_head, *prev = NULL;

	while (*p != NULL && *p != c) {
		prev = *p;
		p = &(*p)->next;
	}
	if (*p == NULL)
		return;
	*p = c->next;
	if (due_tail == c)
		due_tail = prev;
	c->queued = false;
}

/* Close a connection. */
static void conn_close(struct conn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	if (c->queued)
		due_remove(c);
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* Find `needle` in the n bytes at `hay`. */
static const char *find(const char *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle));
}

/* Append the JSON-escaped (once more: the text is itself inside a JSON string) form of
 * the files document for the deliverables listed in the request body. */
static size_t files_text(const char *body, size_t n, char *out, size_t cap)
{
	static const char head[] = "## Deliverables\\n";
	const char *p = find(body, n, head), *end = body + n;
	size_t len = 0;
	int files = 0;

	len += (size_t)snprintf(out + len, cap - len, "{\\\"files\\\": [");
	if (p != NULL)
		p += strlen(head);
	/* Each deliverable is a line "- path" (escaped newlines: "\n"). */
	while (p != NULL && p + 2 < end && p[0] == '-' && p[1] == ' ') {
		const char *q = find(p, (size_t)(end - p), "\\n");
		int plen;

		if (q == NULL)
			break;
		plen = (int)(q - p - 2);
		len += (size_t)snprintf(out + len, cap - len,
		    "%s{\\\"path\\\": \\\"%.*s\\\", \\\"mode\\\": \\\"create\\\", \\\"new_content\\\":"
		    " \\\"VALUE = 1\\\\n\\\"}",
		    files++ > 0 ? ", " : "", plen, p + 2);
		if (len >= cap)
			return cap;
		p = q + 2;
	}
	len += (size_t)snprintf(out + len, cap - len, "]}");
	return len < cap ? len : cap;
}

/* Build the reply to a request whose body is `body`. */
static void conn_answer(struct conn *c, const char *body, size_t n)
{
	char text[16384], json[20000];
	size_t tlen = files_text(body, n, text, sizeof text);
	int jlen = snprintf(json, sizeof json,
	    "{\"id\": \"msg_bench\", \"type\": \"message\", \"role\": \"assistant\","
	    " \"model\": \"bench\", \"content\": [{\"type\": \"text\", \"text\": \"%.*s\"}],"
	    " \"stop_reason\": \"end_turn\", \"stop_sequence\": null,"
	    " \"usage\": {\"input_tokens\": %zu, \"output_tokens\": %zu}}",
	    (int)tlen, text, n / 4, tlen / 4 + 1);

	c->reply = malloc((size_t)jlen + 256);
	c->reply_len = (size_t)snprintf(c->reply, (size_t)jlen + 256,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
	    "Connection: keep-alive\r\n\r\n%s",
	    jlen, json);
}

/* Free a finished write. */
static void write_done(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;

	(void)status;
	free(w->data);
	free(w);
}

static void conn_parse(struct conn *c);
static void conn_reply(struct conn *c);

/* The timer fired: send every reply whose time has come, then wait for the next. */
static void due_tick(uv_poll_t *h, int status, int events)
{
	uint64_t now = uv_hrtime(), n;

	(void)h;
	(void)status;
	(void)events;
	(void)!read(due_fd, &n, sizeof n);
	while (due_head != NULL && due_head->due_ns <= now) {
		struct conn *c = due_head;

		due_head = c->next;
		if (due_head == NULL)
			due_tail = NULL;
		c->queued = false;
		conn_reply(c); /* may queue c's next request */
	}
	due_arm();
}

/* The delay is over: send the reply, then take the next request. */
static void conn_reply(struct conn *c)
{
	struct write_req *w = malloc(sizeof *w);
	uv_buf_t b = uv_buf_init(c->reply, (unsigned)c->reply_len);

	int64_t late = (int64_t)(uv_hrtime() - c->req_ns) - (int64_t)delay_ms * 1000000;

	late_sum_ns += late;
	if (late > late_max_ns)
		late_max_ns = late;
	if (late < late_min_ns)
		late_min_ns = late;
	w->data = c->reply;
	c->reply = NULL;
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done) != 0) {
		free(w->data);
		free(w);
		conn_close(c);
		return;
	}
	served++;
	memmove(c->buf, c->buf + c->req_len, c->len - c->req_len);
	c->len -= c->req_len;
	c->req_len = 0;
	conn_parse(c);
}

/* When a whole request is buffered, answer it after the delay. */
static void conn_parse(struct conn *c)
{
	const char *end, *cl;
	size_t head, body = 0;

	if (c->req_len != 0 || (end = find(c->buf, c->len, "\r\n\r\n")) == NULL)
		return;
	head = (size_t)(end - c->buf) + 4;
	cl = find(c->buf, head, "ontent-Length:");
	if (cl == NULL)
		cl = find(c->buf, head, "ontent-length:");
	if (cl != NULL)
		body = strtoul(cl + 14, NULL, 10);
	if (c->len < head + body)
		return;
	c->req_len = head + body;
	c->req_ns = uv_hrtime();
	c->due_ns = c->req_ns + delay_ms * 1000000u;
	conn_answer(c, c->buf + head, body);
	due_add(c);
}

/* Give libuv room in the connection's buffer. */
static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *c = h->data;

	(void)hint;
	if (c->cap - c->len < 65536) {
		c->cap = c->cap * 2 + 65536;
		c->buf = realloc(c->buf, c->cap);
	}
	*b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* Take bytes in; close on EOF, an error or an oversized request. */
static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;

	(void)b;
	if (n < 0 || c->len + (size_t)n > REQ_MAX) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	conn_parse(c);
}

/* Accept a connection. */
static void on_conn(uv_stream_t *server, int status)
{
	struct conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof *c);
	uv_tcp_init(loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

/* Stop on SIGTERM, saying how many requests were served. */
static void on_term(uv_signal_t *h, int sig)
{
	(void)sig;
	fprintf(stderr, "llm-server: %lu requests served", served);
	if (served > 0)
		fprintf(stderr, ", each %.3f ms after the delay on average (%.3f to %.3f)",
		    (double)late_sum_ns / (double)served / 1e6, (double)late_min_ns / 1e6,
		    (double)late_max_ns / 1e6);
	fputc('\n', stderr);
	uv_stop(h->loop);
}

/* Parse the flags, listen, write the port, serve. */
int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	struct sockaddr_storage got;
	int len = sizeof got;
	const char *port_file = NULL;
	uv_tcp_t server;
	uv_signal_t term;
	FILE *f;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--delay-ms") == 0)
			delay_ms = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--port-file") == 0)
			port_file = argv[i + 1];
	}
	if (port_file == NULL) {
		fprintf(stderr, "usage: llm-server --delay-ms N --port-file PATH\n");
		return 2;
	}
	loop = uv_default_loop();
	/* It plays a remote server: its answers must not wait for a core behind the system
	 * being measured, nor for timer slack. Real-time priority where permitted (measured
	 * on the 2 loaded cores at 64 workers: 0.04 ms late on average, 1.8 ms at nice -10,
	 * 2.1 ms at the default priority), else nice -10 where permitted. */
	{
		struct sched_param sp = { .sched_priority = 1 };

		if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
			(void)!setpriority(PRIO_PROCESS, 0, -10);
	}
	prctl(PR_SET_TIMERSLACK, 1UL);
	due_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (due_fd < 0 || uv_poll_init(loop, &due_poll, due_fd) != 0 ||
	    uv_poll_start(&due_poll, UV_READABLE, due_tick) != 0) {
		fprintf(stderr, "llm-server: cannot set up a timer\n");
		return 1;
	}
	uv_tcp_init(loop, &server);
	uv_ip4_addr("127.0.0.1", 0, &addr);
	if (uv_tcp_bind(&server, (struct sockaddr *)&addr, 0) != 0 ||
	    uv_listen((uv_stream_t *)&server, 4096, on_conn) != 0) {
		fprintf(stderr, "llm-server: cannot listen\n");
		return 1;
	}
	uv_tcp_getsockname(&server, (struct sockaddr *)&got, &len);
	if ((f = fopen(port_file, "w")) == NULL)
		return 1;
	fprintf(f, "%d\n", ntohs(((struct sockaddr_in *)&got)->sin_port));
	fclose(f);
	uv_signal_init(loop, &term);
	uv_signal_start(&term, on_term, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
