/* The libcurl transport: tries, retries, backoff, body cap, heartbeats. */
#include "worker/llm.h"
#include "worker/curl_lib.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LLM_HEARTBEAT_MS 500
#define LLM_CONNECT_TIMEOUT_MS 10000
#define LLM_POLL_SLICE_MS 200

/* libcurl, once the first call has loaded it (llm_handle). */
static const struct curl_lib *cu;

int llm_provider_parse(const char *name)
{
	if (name != NULL && strcmp(name, "anthropic") == 0)
		return LLM_ANTHROPIC;
	if (name != NULL && strcmp(name, "openai") == 0)
		return LLM_OPENAI;
	return -1;
}

const char *llm_provider_name(enum llm_provider p)
{
	return p == LLM_ANTHROPIC ? "anthropic" : "openai";
}

const char *llm_key_variable(enum llm_provider p)
{
	return p == LLM_ANTHROPIC ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
}

char *llm_scrubbed(const char *s, const char *key)
{
	static const char mask[] = "[redacted]";
	size_t klen = key != NULL ? strlen(key) : 0;
	struct strbuf out = { 0 };
	const char *hit;

	/* A short "key" (a placeholder such as "dummy") is no secret: masking it would mangle
	 * ordinary words. */
	if (klen < LLM_KEY_SCRUB_MIN)
		return xstrdup(s);
	while ((hit = strstr(s, key)) != NULL) {
		strbuf_put(&out, s, (size_t)(hit - s));
		strbuf_puts(&out, mask);
		s = hit + klen;
	}
	strbuf_puts(&out, s);
	return out.s;
}

void llm_scrub(char *s, size_t cap, const char *key)
{
	char *clean;

	if (s == NULL || cap == 0)
		return;
	clean = llm_scrubbed(s, key);
	strlcpy_ap(s, clean, cap);
	free(clean);
}

int64_t llm_backoff_ms(int try_number, double jitter, int64_t retry_after_ms)
{
	int64_t base = LLM_BACKOFF_BASE_MS;
	int k;

	for (k = 2; k < try_number && base < LLM_BACKOFF_MAX_MS; k++)
		base *= 2;
	if (base > LLM_BACKOFF_MAX_MS)
		base = LLM_BACKOFF_MAX_MS;
	if (jitter < 0 || jitter >= 1)
		jitter = 0;
	base = (int64_t)((double)base * (0.5 + 0.5 * jitter));
	if (retry_after_ms >= 0) {
		if (retry_after_ms > LLM_RETRY_AFTER_MAX_MS)
			retry_after_ms = LLM_RETRY_AFTER_MAX_MS;
		if (retry_after_ms > base)
			base = retry_after_ms;
	}
	return base;
}

int64_t llm_parse_retry_after(const char *value)
{
	const char *s = value;
	char *end, why[256];
	long long secs;
	time_t when;

	while (isspace((unsigned char)*s))
		s++;
	if (isdigit((unsigned char)*s)) {
		errno = 0;
		secs = strtoll(s, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		if (*end != '\0')
			return -1;
		/* A day or more (past what 64 bits hold too) is as long as any wait gets. */
		if (errno == ERANGE || secs > 86400)
			secs = 86400;
		return (int64_t)secs * 1000;
	}
	if (cu == NULL && (cu = curl_lib(why, sizeof why)) == NULL)
		return -1;
	when = cu->getdate(s, NULL);
	if (when < 0)
		return -1;
	when -= time(NULL);
	return when > 0 ? (int64_t)when * 1000 : 0;
}

/* The most bytes of an answer's Content-Type shown to name it, and the most kept: enough
 * that a key in it (a gateway echoing the request's headers) is whole when it is masked,
 * before the cut to the bytes shown. */
#define LLM_CONTENT_TYPE_SHOWN 64
#define LLM_CONTENT_TYPE_KEPT 1024

/* State of one HTTP try. */
struct llm_xfer {
	char *body;
	size_t len, cap, max;
	bool too_large;
	int64_t retry_after_ms;
	char content_type[LLM_CONTENT_TYPE_KEPT + 1]; /* of the last answer, "" when none */
};

/* Collect the response body, refusing more than the cap. */
static size_t llm_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct llm_xfer *x = userp;
	size_t n = size * nmemb;

	if (x->len + n > x->max) {
		x->too_large = true;
		return 0;
	}
	if (x->len + n + 1 > x->cap) {
		x->cap = (x->len + n + 1) * 2;
		if (x->cap > x->max + 1)
			x->cap = x->max + 1;
		x->body = xrealloc(x->body, x->cap);
	}
	memcpy(x->body + x->len, data, n);
	x->len += n;
	x->body[x->len] = '\0';
	return n;
}

/* Keep the value of the header line `data` (`n` bytes, its name `k` bytes long) in `out`
 * (`cap` bytes): leading blanks and the line's end left out, cut to fit, every byte that
 * is no printable ASCII as '?'. */
static void llm_header_value(const char *data, size_t n, size_t k, char *out, size_t cap)
{
	size_t i = k, j = 0;

	while (i < n && (data[i] == ' ' || data[i] == '\t'))
		i++;
	for (; i < n && data[i] != '\r' && data[i] != '\n' && j + 1 < cap; i++)
		out[j++] = data[i] >= 0x20 && data[i] < 0x7f ? data[i] : '?';
	out[j] = '\0';
}

/* Pick retry-after and the Content-Type out of the response headers (those of the last
 * answer: a status line forgets what an earlier one, a 100 Continue or a 103 Early Hints,
 * said; a Retry-After of an interim answer is no wait asked by the final one). */
static size_t llm_header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct llm_xfer *x = userp;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:", ctype[] = "content-type:";

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		x->content_type[0] = '\0';
		x->retry_after_ms = -1;
	} else if (n > sizeof ctype - 1 && strncasecmp(data, ctype, sizeof ctype - 1) == 0)
		llm_header_value(
		    data, n, sizeof ctype - 1, x->content_type, sizeof x->content_type);
	if (n > sizeof name - 1 && n < 256 && strncasecmp(data, name, sizeof name - 1) == 0) {
		char v[256];
		memcpy(v, data + sizeof name - 1, n - (sizeof name - 1));
		v[n - (sizeof name - 1)] = '\0';
		v[strcspn(v, "\r\n")] = '\0';
		x->retry_after_ms = llm_parse_retry_after(v);
	}
	return n;
}

/* Sleep `ms`, through the hook or in slices with heartbeats. */
static void llm_sleep(const struct llm_hooks *h, int64_t ms)
{
	uint64_t end;

	if (h->sleep_ms != NULL) {
		h->sleep_ms(h->ctx, ms);
		return;
	}
	if (h->heartbeat != NULL)
		h->heartbeat(h->ctx); /* what the try reported leaves before the wait */
	end = clock_mono_ms() + (uint64_t)ms;
	for (;;) {
		uint64_t now = clock_mono_ms();
		int64_t slice;
		struct timespec ts;

		if (now >= end)
			break;
		slice = (int64_t)(end - now) > LLM_HEARTBEAT_MS ? LLM_HEARTBEAT_MS :
		                                                  (int64_t)(end - now);
		ts.tv_sec = slice / 1000;
		ts.tv_nsec = (slice % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		if (h->heartbeat != NULL)
			h->heartbeat(h->ctx);
	}
}

/* A jitter value in [0, 1). */
static double llm_jitter(const struct llm_hooks *h)
{
	static bool seeded;

	if (h->jitter != NULL)
		return h->jitter(h->ctx);
	if (!seeded) {
		srand48((long)getpid() ^ (long)clock_wall_ms());
		seeded = true;
	}
	return drand48();
}

/* The sockets libcurl asks to have watched, as its socket callback reports them. A
 * transfer uses one (two while a connection races IPv4 against IPv6); a connection kept
 * in the cache between calls is not watched. */
#define LLM_WATCH_MAX 8
static struct {
	struct pollfd fds[LLM_WATCH_MAX];
	nfds_t n;
} llm_watch;

/* libcurl's socket callback: start, change or stop watching `s`. Returns -1 (the
 * transfer fails) when more sockets are asked for than the table holds. */
static int llm_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	nfds_t i;

	(void)easy;
	(void)userp;
	(void)socketp;
	for (i = 0; i < llm_watch.n && llm_watch.fds[i].fd != s; i++)
		;
	if (what == CURL_POLL_REMOVE) {
		if (i < llm_watch.n)
			llm_watch.fds[i] = llm_watch.fds[--llm_watch.n];
		return 0;
	}
	if (i == llm_watch.n) {
		if (llm_watch.n == LLM_WATCH_MAX)
			return -1;
		llm_watch.n++;
		llm_watch.fds[i].fd = s;
	}
	llm_watch.fds[i].events = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) |
	    ((what & CURL_POLL_OUT) ? POLLOUT : 0));
	llm_watch.fds[i].revents = 0;
	return 0;
}

/* Tell libcurl what poll() found on the watched sockets (a copy: its callbacks change
 * the table). Returns false when libcurl fails. */
static bool llm_dispatch(CURLM *multi, const struct pollfd *fds, nfds_t n, int *running)
{
	nfds_t i;

	for (i = 0; i < n; i++) {
		short r = fds[i].revents;
		int mask = 0;

		/* An error or hang-up is handed over as readiness: libcurl finds it in the
		 * read or write it then makes, and reports it as it would any failed I/O. */
		if ((fds[i].events & POLLIN) && (r & (POLLIN | POLLHUP | POLLERR)))
			mask |= CURL_CSELECT_IN;
		if ((fds[i].events & POLLOUT) && (r & (POLLOUT | POLLHUP | POLLERR)))
			mask |= CURL_CSELECT_OUT;
		if (mask != 0 &&
		    cu->multi_socket_action(multi, fds[i].fd, mask, running) != CURLM_OK)
			return false;
	}
	return true;
}

/* The multi handle of the worker's life, created at the first call; NULL if libcurl
 * cannot make one. It holds the connection cache, so a call to the same provider reuses
 * the connection (and TLS session) of the previous one. */
static CURLM *llm_multi(void)
{
	static CURLM *multi;

	if (multi == NULL && (multi = cu->multi_init()) != NULL) {
		cu->multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, llm_socket_cb);
		cu->multi_setopt(multi, CURLMOPT_SOCKETDATA, NULL);
	}
	return multi;
}

/*
 * Run one transfer on `easy` so heartbeats keep flowing: the sockets libcurl watches are
 * polled here (at most LLM_POLL_SLICE_MS at a time, or up to libcurl's next timeout) and
 * what poll() found is handed to curl_multi_socket_action, so libcurl reads and writes
 * without polling the socket again itself. Returns the transfer's result;
 * CURLE_FAILED_INIT or CURLE_OUT_OF_MEMORY when it could not run.
 */
static CURLcode llm_perform(CURL *easy, const struct llm_hooks *h)
{
	CURLM *multi = llm_multi();
	CURLcode result = CURLE_FAILED_INIT;
	uint64_t last_beat = clock_mono_ms();
	int running = 1;

	if (multi == NULL)
		return CURLE_OUT_OF_MEMORY;
	if (cu->multi_add_handle(multi, easy) != CURLM_OK)
		return CURLE_FAILED_INIT;
	while (running) {
		struct pollfd fds[LLM_WATCH_MAX];
		nfds_t n = llm_watch.n;
		long wait_ms = -1;
		CURLMsg *msg;
		int left, ready = 0;
		bool ok;

		if (cu->multi_timeout(multi, &wait_ms) != CURLM_OK)
			break;
		if (wait_ms < 0 || wait_ms > LLM_POLL_SLICE_MS)
			wait_ms = LLM_POLL_SLICE_MS;
		if (wait_ms > 0) {
			memcpy(fds, llm_watch.fds, n * sizeof fds[0]);
			ready = poll(fds, n, (int)wait_ms);
			if (ready < 0 && errno != EINTR)
				break;
		}
		/* Sockets found ready, else libcurl's timers (a due one, or none yet). */
		ok = ready > 0 ?
		    llm_dispatch(multi, fds, n, &running) :
		    cu->multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running) == CURLM_OK;
		if (!ok)
			break;
		while ((msg = cu->multi_info_read(multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE)
				result = msg->data.result;
		if (!running)
			break;
		if (h->heartbeat != NULL && clock_mono_ms() - last_beat >= LLM_HEARTBEAT_MS) {
			h->heartbeat(h->ctx);
			last_beat = clock_mono_ms();
		}
	}
	cu->multi_remove_handle(multi, easy);
	return result;
}

/* Classify a transport failure. */
static const char *llm_curl_class(CURLcode rc, const struct llm_xfer *x)
{
	if (x->too_large)
		return LLM_E_TOO_LARGE;
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return LLM_E_TIMEOUT;
	return LLM_E_NETWORK;
}

/* True when a try that failed with `cls` may be retried. */
static bool llm_retryable(const char *cls)
{
	return strcmp(cls, LLM_E_RATE_LIMITED) == 0 || strcmp(cls, LLM_E_SERVER) == 0 ||
	    strcmp(cls, LLM_E_TIMEOUT) == 0 || strcmp(cls, LLM_E_NETWORK) == 0;
}

/* The endpoint URL for the provider. */
static char *llm_url(const struct llm_config *cfg)
{
	size_t n = strlen(cfg->base_url);

	while (n > 0 && cfg->base_url[n - 1] == '/')
		n--;
	return xasprintf("%.*s%s", (int)n, cfg->base_url,
	    cfg->provider == LLM_ANTHROPIC ? "/v1/messages" : "/chat/completions");
}

/* The header that carries the key, without the key. */
static const char *llm_key_header(enum llm_provider p)
{
	return p == LLM_ANTHROPIC ? "x-api-key: " : "Authorization: Bearer ";
}

/* The User-Agent line, given in the request's own headers: libcurl formats the line of
 * CURLOPT_USERAGENT anew at every transfer, and then again into the request's head. */
#define LLM_USER_AGENT "User-Agent: autopack-worker/" AUTOPACK_VERSION

/* The Accept-Encoding line libcurl writes for CURLOPT_ACCEPT_ENCODING "" (still set: it
 * decodes the answer), given in the request's own headers for the same reason: every
 * encoding libcurl decodes, in its order (deflate and gzip with zlib, br with brotli, zstd
 * with zstd); NULL when it decodes none (libcurl then writes its own line). */
static const char *llm_accept_encoding(void)
{
	static char line[64];
	static bool done;
	const curl_version_info_data *v;

	if (!done) {
		struct strbuf b = { 0 };

		done = true;
		v = cu->version_info(CURLVERSION_NOW);
		if (v != NULL && (v->features & CURL_VERSION_LIBZ))
			strbuf_puts(&b, ", deflate, gzip");
		if (v != NULL && (v->features & CURL_VERSION_BROTLI))
			strbuf_puts(&b, ", br");
		if (v != NULL && (v->features & CURL_VERSION_ZSTD))
			strbuf_puts(&b, ", zstd");
		if (b.s != NULL)
			snprintf(line, sizeof line, "Accept-Encoding: %s", b.s + 2);
		free(b.s);
	}
	return line[0] != '\0' ? line : NULL;
}

/* Headers of a request, the key among them (last). */
static struct curl_slist *llm_headers(const struct llm_config *cfg)
{
	const char *accept_encoding = llm_accept_encoding();
	struct curl_slist *h = NULL;
	char *kh;

	h = cu->slist_append(h, LLM_USER_AGENT);
	if (accept_encoding != NULL)
		h = cu->slist_append(h, accept_encoding);
	h = cu->slist_append(h, "Content-Type: application/json");
	h = cu->slist_append(h, "Expect:");
	if (cfg->provider == LLM_ANTHROPIC)
		h = cu->slist_append(h, "anthropic-version: 2023-06-01");
	kh = xasprintf("%s%s", llm_key_header(cfg->provider), cfg->api_key);
	h = cu->slist_append(h, kh);
#ifdef AUTOPACK_MUTANT_key_in_another_header
	h = cu->slist_append(h, kh + 2); /* the key under another header's name */
#endif
	explicit_bzero(kh, strlen(kh));
	free(kh);
	return h;
}

/* Free a header list, its key wiped first. */
static void llm_headers_free(struct curl_slist *headers)
{
	for (struct curl_slist *e = headers; e != NULL; e = e->next)
		explicit_bzero(e->data, strlen(e->data));
	cu->slist_free_all(headers);
}

/*
 * Where the worker's calls go: the URL and the headers built for one provider, base URL
 * and key, kept from call to call while the calls name the same three (a worker's calls
 * all do), and set on the handle once. The key is in the last header's text (compared
 * there: no other copy is kept); the list is wiped when replaced.
 */
static struct {
	enum llm_provider provider;
	char *base_url, *url;
	CURLU *parsed; /* url as libcurl parses it, or NULL: libcurl refused it */
	struct curl_slist *headers;
} llm_target;

/* True when llm_target was built for cfg. */
static bool llm_target_is(const struct llm_config *cfg)
{
	const struct curl_slist *last = llm_target.headers;
	const char *name = llm_key_header(cfg->provider);
	size_t n = strlen(name);

	if (last == NULL || llm_target.provider != cfg->provider ||
	    strcmp(llm_target.base_url, cfg->base_url) != 0)
		return false;
	while (last->next != NULL)
		last = last->next;
	return strncmp(last->data, name, n) == 0 && strcmp(last->data + n, cfg->api_key) == 0;
}

/* The headers of a CONNECT to a proxy: the User-Agent line only (never the key), as
 * libcurl writes it there for CURLOPT_USERAGENT. Given for an https URL only: a request
 * sent to an HTTP proxy as it is carries these besides its own. NULL when the list cannot
 * be made. */
static struct curl_slist *llm_proxy_headers(void)
{
	static struct curl_slist *h;

	if (h == NULL)
		h = cu->slist_append(NULL, LLM_USER_AGENT);
	return h;
}

/* Point `easy` at cfg's URL and headers, built and set anew only when cfg names another
 * provider, base URL or key than the calls before, or the handle is another. Returns the
 * URL. */
static const char *llm_target_use(CURL *easy, const struct llm_config *cfg)
{
	static CURL *on;
	struct curl_slist *old = llm_target.headers;
	CURLU *old_parsed = llm_target.parsed;

	if (on == easy && llm_target_is(cfg))
		return llm_target.url;
	free(llm_target.base_url);
	free(llm_target.url);
	llm_target.provider = cfg->provider;
	llm_target.base_url = xstrdup(cfg->base_url);
	llm_target.url = llm_url(cfg);
	llm_target.headers = llm_headers(cfg);
	/* Parsed once, with the flags libcurl parses a CURLOPT_URL with at every transfer; a
	 * URL it refuses is set as text, for the transfer to fail as it would. */
	if ((llm_target.parsed = cu->url()) != NULL &&
	    cu->url_set(llm_target.parsed, CURLUPART_URL, llm_target.url,
	        CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		cu->url_cleanup(llm_target.parsed);
		llm_target.parsed = NULL;
	}
	cu->easy_setopt(easy, CURLOPT_CURLU, llm_target.parsed);
	cu->easy_setopt(easy, CURLOPT_URL, llm_target.parsed != NULL ? NULL : llm_target.url);
	cu->easy_setopt(easy, CURLOPT_HTTPHEADER, llm_target.headers);
	cu->easy_setopt(easy, CURLOPT_PROXYHEADER,
	    strncasecmp(llm_target.url, "https://", 8) == 0 ? llm_proxy_headers() : NULL);
#ifdef AUTOPACK_MUTANT_key_in_the_connect
	cu->easy_setopt(easy, CURLOPT_PROXYHEADER, llm_target.headers); /* the key to a proxy */
#endif
	on = easy;
	llm_headers_free(old);
	if (old_parsed != NULL)
		cu->url_cleanup(old_parsed);
	return llm_target.url;
}

/* The variables libcurl reads at each transfer for a proxy, in either case. */
static const char *const llm_proxy_vars[] = { "http_proxy", "HTTP_PROXY", "https_proxy",
	"HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY" };

/* Set the options every try shares, once for the handle's life. Where the environment
 * names no proxy (a worker's environment is the one it started with), none is set here
 * (CURLOPT_PROXY and CURLOPT_NOPROXY ""), so that libcurl does not read the variables at
 * each transfer; where it names one, libcurl reads them at each transfer. */
static void llm_easy_init(CURL *easy)
{
	size_t i;

	for (i = 0; i < sizeof llm_proxy_vars / sizeof llm_proxy_vars[0]; i++)
		if (getenv(llm_proxy_vars[i]) != NULL)
			break;
	if (i == sizeof llm_proxy_vars / sizeof llm_proxy_vars[0]) {
		cu->easy_setopt(easy, CURLOPT_PROXY, "");
		cu->easy_setopt(easy, CURLOPT_NOPROXY, "");
	}
	cu->easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	cu->easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	cu->easy_setopt(easy, CURLOPT_POST, 1L);
	cu->easy_setopt(easy, CURLOPT_WRITEFUNCTION, llm_write_cb);
	cu->easy_setopt(easy, CURLOPT_HEADERFUNCTION, llm_header_cb);
	cu->easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
}

/* Set up `easy` for one try: the options that point into the call (llm_easy_clear takes
 * them back after it). */
static void llm_easy_setup(
    CURL *easy, const char *body, struct llm_xfer *x, int64_t timeout_ms, char *errbuf)
{
	cu->easy_setopt(easy, CURLOPT_POSTFIELDS, body);
	cu->easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	cu->easy_setopt(easy, CURLOPT_WRITEDATA, x);
	cu->easy_setopt(easy, CURLOPT_HEADERDATA, x);
	cu->easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	cu->easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(timeout_ms < LLM_CONNECT_TIMEOUT_MS ? timeout_ms : LLM_CONNECT_TIMEOUT_MS));
	cu->easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
}

/* Forget the options of a try that point into its call frame (body, buffers); the shared
 * options, the target's URL and headers, and the connections stay. */
static void llm_easy_clear(CURL *easy)
{
	cu->easy_setopt(easy, CURLOPT_POSTFIELDS, (char *)NULL);
	cu->easy_setopt(easy, CURLOPT_WRITEDATA, (void *)NULL);
	cu->easy_setopt(easy, CURLOPT_HEADERDATA, (void *)NULL);
	cu->easy_setopt(easy, CURLOPT_ERRORBUFFER, (char *)NULL);
}

/* Report a try through the hook, with the error (a buffer of `cap` bytes) scrubbed. */
static void llm_report(const struct llm_config *cfg, const struct llm_hooks *h, struct llm_try *t,
    char *error, size_t cap)
{
	if (error != NULL)
		llm_scrub(error, cap, cfg->api_key);
	t->error = error;
	if (h->on_try != NULL)
		h->on_try(h->ctx, t);
}

/* Set the response's final error. */
static void llm_fail(const struct llm_config *cfg, struct llm_response *out, const char *cls,
    long status, const char *msg)
{
	out->ok = false;
	out->error_class = cls;
	out->http_status = status;
	strlcpy_ap(out->error, msg, sizeof out->error);
	llm_scrub(out->error, sizeof out->error, cfg->api_key);
}

/* The worker's one HTTP handle, created and given its shared options at first use, run
 * in llm_perform's multi handle, which keeps the connections (and TLS sessions) between
 * calls; NULL when it cannot be created (tried again at the next call). */
static CURL *llm_handle(char *err, size_t n)
{
	static CURL *easy;

	if (cu == NULL && (cu = curl_lib(err, n)) == NULL)
		return NULL;
	if (easy == NULL && (easy = cu->easy_init()) != NULL)
		llm_easy_init(easy);
	if (easy == NULL)
		snprintf(err, n, "cannot create an HTTP handle");
	return easy;
}

/* The timeout of a try starting at `now`: the configured one, cut to the attempt's
 * deadline; 0 when the deadline has passed. */
static int64_t llm_try_timeout(const struct llm_config *cfg, uint64_t now)
{
	int64_t timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : 120000;

	if (cfg->deadline_mono_ms != 0) {
		int64_t left = (int64_t)cfg->deadline_mono_ms - (int64_t)now;
		if (left <= 0)
			return 0;
		if (left < timeout)
			timeout = left;
	}
	return timeout;
}

/* Cut from a parse error (jansson's words) its " near '…'" context, the first bytes of the
 * token where the body stopped being JSON, when it shares 4 bytes in a row with the key:
 * a body holding part of the key before a byte that ends the parse (a gateway echoing a
 * header cut short) would show that part, which masking the whole key cannot find. */
static void llm_near_clean(char *perr, const char *key)
{
	size_t klen = key != NULL ? strlen(key) : 0, n;
	char *near = strstr(perr, " near '");

	if (near == NULL || klen < LLM_KEY_SCRUB_MIN)
		return;
	n = strlen(near + 7);
	for (size_t i = 0; i + 4 <= n; i++)
		if (memmem(key, klen, near + 7 + i, 4) != NULL) {
			*near = '\0';
			return;
		}
}

/* Replace the heap string *s by a copy with the key masked, when the key is in it. */
static void llm_mask(char **s, const char *key)
{
	char *masked;

	if (*s == NULL || key == NULL || strlen(key) < LLM_KEY_SCRUB_MIN || strstr(*s, key) == NULL)
		return;
	masked = llm_scrubbed(*s, key);
	free(*s);
	*s = masked;
}

/* Mask the key in the answer's text and stop reason (a provider that echoes it must not
 * put it in a file the phase's code reads, or in a row), then cut the stop reason to
 * LLM_STOP_REASON_MAX bytes: masked before the cut, no part of the key is left at it. */
static void llm_answer_clean(const struct llm_config *cfg, struct llm_response *out)
{
	llm_mask(&out->text, cfg->api_key);
	llm_mask(&out->stop_reason, cfg->api_key);
	llm_mask(&out->no_text, cfg->api_key);
	if (out->stop_reason != NULL && strlen(out->stop_reason) > LLM_STOP_REASON_MAX) {
		char *cut = utf8_clean(out->stop_reason, LLM_STOP_REASON_MAX);

		free(out->stop_reason);
		out->stop_reason = cut;
	}
}

/* Judge a finished try (`redirect`: where a 3xx answer points, or NULL): NULL when it
 * succeeded (the answer parsed into `out`, its tokens copied into `t`), else its error
 * class, with what went wrong in `msg` (and in `t` the tokens of a 2xx JSON answer that is
 * no message, when it reports them). */
static const char *llm_try_judge(const struct llm_config *cfg, const char *url, CURLcode rc,
    const struct llm_xfer *x, const char *errbuf, const char *redirect, struct llm_try *t,
    struct llm_response *out, char *msg, size_t msglen)
{
	if (rc != CURLE_OK) {
		if (x->too_large)
			snprintf(msg, msglen, "%s: response body over %zu bytes", url, x->max);
		else if (rc == CURLE_OUT_OF_MEMORY)
			/* libcurl's word for an answer's header line past its limit too. */
			snprintf(msg, msglen,
			    "%s: %s (or a response header line over libcurl's 100 KiB)", url,
			    errbuf[0] ? errbuf : cu->easy_strerror(rc));
		else
			snprintf(
			    msg, msglen, "%s: %s", url, errbuf[0] ? errbuf : cu->easy_strerror(rc));
		return llm_curl_class(rc, x);
	}
	if (t->http_status >= 200 && t->http_status < 300) {
		char perr[256];
		if (llm_body_parse(cfg->provider, x->body ? x->body : "", x->len, out, perr,
		        sizeof perr) == 0) {
			llm_answer_clean(cfg, out);
			t->prompt_tokens = out->prompt_tokens;
			t->completion_tokens = out->completion_tokens;
			t->total_tokens = out->total_tokens;
			return NULL;
		}
		llm_near_clean(perr, cfg->api_key);
		/* JSON that is no message still says what the provider counted (and bills). */
		t->prompt_tokens = out->prompt_tokens;
		t->completion_tokens = out->completion_tokens;
		t->total_tokens = out->total_tokens;
		llm_response_free(out);
		out->truncated = out->at_window = false;
		if (x->content_type[0] != '\0' && strstr(x->content_type, "json") == NULL &&
		    strncmp(perr, LLM_NOT_JSON, sizeof LLM_NOT_JSON - 1) == 0) {
			/* An HTML page (a web server, a proxy's login), an event stream: said. */
			char *shown = llm_scrubbed(x->content_type, cfg->api_key);

			if (strlen(shown) > LLM_CONTENT_TYPE_SHOWN) /* printable ASCII: any cut */
				shown[LLM_CONTENT_TYPE_SHOWN] = '\0';
			snprintf(msg, msglen, "%s: %s (Content-Type %s)", url, perr, shown);
			free(shown);
		} else {
			snprintf(msg, msglen, "%s: %s", url, perr);
		}
		return LLM_E_MALFORMED;
	}
	char etext[400];

	llm_error_text(x->body ? x->body : "", x->len, cfg->api_key, etext, sizeof etext);
	if (t->http_status >= 300 && t->http_status < 400 && redirect != NULL) {
		/* Masked before the cut, as the error text is; cut at a character's start. */
		char *where = llm_scrubbed(redirect, cfg->api_key);
		char *shown = utf8_clean(where, 300);

		snprintf(msg, msglen,
		    "%s: HTTP %ld: redirected to %s, which is not followed (the key goes to"
		    " the configured address only): point --llm-base-url there",
		    url, t->http_status, shown);
		free(shown);
		free(where);
	} else if (etext[0] == '\0')
		/* A proxy's 502, a 401 of a server that says no more: the status is all. */
		snprintf(msg, msglen, "%s: HTTP %ld, with an empty body", url, t->http_status);
	else
		snprintf(msg, msglen, "%s: HTTP %ld: %s", url, t->http_status, etext);
	/* 408: the server (or a proxy before it) gave up waiting for the request, as a
	 * timeout of ours would; retried as one. */
	return t->http_status == 429 ? LLM_E_RATE_LIMITED :
	    t->http_status == 408    ? LLM_E_TIMEOUT :
	    t->http_status >= 500    ? LLM_E_SERVER :
	                               LLM_E_CLIENT;
}

/* Wait out the backoff before try `next`; false (with the reason added to the response's
 * error) when the attempt's deadline leaves no time for it. */
static bool llm_wait_next(const struct llm_config *cfg, const struct llm_hooks *h,
    struct llm_response *out, int next, int64_t retry_after_ms)
{
	int64_t wait = llm_backoff_ms(next, llm_jitter(h), retry_after_ms);

	if (cfg->deadline_mono_ms != 0 &&
	    clock_mono_ms() + (uint64_t)wait >= cfg->deadline_mono_ms) {
		size_t k = strlen(out->error);
		snprintf(out->error + k, sizeof out->error - k, " (no time left for another try)");
		return false;
	}
	llm_sleep(h, wait);
	return true;
}

/* The buffer the answers are read into, kept from try to try while it is at most
 * LLM_ANSWER_KEEP bytes. */
#define LLM_ANSWER_KEEP (64 * 1024)
static struct {
	char *buf;
	size_t cap;
} llm_answer;

/* Keep the buffer of a finished try's answer for the next, or free it when it grew past
 * LLM_ANSWER_KEEP. */
static void llm_answer_keep(struct llm_xfer *x)
{
	if (x->cap > LLM_ANSWER_KEEP) {
		free(x->body);
		x->body = NULL;
		x->cap = 0;
	}
	llm_answer.buf = x->body;
	llm_answer.cap = x->cap;
}

int llm_call(const struct llm_config *cfg, const struct llm_request *req,
    const struct llm_hooks *hooks, struct llm_response *out)
{
	static const struct llm_hooks no_hooks;
	const struct llm_hooks *h = hooks != NULL ? hooks : &no_hooks;
	int retries = cfg->max_retries > 0 ? cfg->max_retries : 0;
	char *body;

	if (retries > LLM_RETRIES_MAX)
		retries = LLM_RETRIES_MAX;
	memset(out, 0, sizeof *out);
	out->prompt_tokens = out->completion_tokens = out->total_tokens = -1;
	body = llm_body_build(cfg, req);

	for (int try_number = 1; try_number <= retries + 1; try_number++) {
		struct llm_xfer x = { .max = cfg->max_body ? cfg->max_body : LLM_BODY_MAX_DEFAULT,
			.retry_after_ms = -1,
			.body = llm_answer.buf,
			.cap = llm_answer.cap };
		struct llm_try t = { .try_number = try_number,
			.prompt_tokens = -1,
			.completion_tokens = -1,
			.total_tokens = -1 };
		char errbuf[CURL_ERROR_SIZE] = "", msg[640], *redirect = NULL;
		uint64_t start = clock_mono_ms();
		int64_t timeout = llm_try_timeout(cfg, start);
		const char *cls, *url;
		CURL *easy;
		CURLcode rc;

		if (timeout == 0) {
			llm_fail(cfg, out, LLM_E_TIMEOUT, 0,
			    "the attempt's deadline passed before the request");
			break;
		}
		if (h->on_send != NULL && h->on_send(h->ctx, try_number) != 0) {
			llm_fail(cfg, out, LLM_E_NETWORK, 0,
			    "not sent: the supervisor did not take the call's announcement");
			break;
		}
		if ((easy = llm_handle(msg, sizeof msg)) == NULL) {
			llm_fail(cfg, out, LLM_E_NETWORK, 0, msg);
			break;
		}
		url = llm_target_use(easy, cfg);
		if (x.body != NULL)
			x.body[0] = '\0';
		llm_easy_setup(easy, body, &x, timeout, errbuf);
		rc = llm_perform(easy, h);
		cu->easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &t.http_status);
		if (cu->easy_getinfo(easy, CURLINFO_REDIRECT_URL, &redirect) != CURLE_OK)
			redirect = NULL;
		redirect = redirect != NULL ? xstrdup(redirect) : NULL;
		llm_easy_clear(easy);
		t.latency_ms = (int64_t)(clock_mono_ms() - start);
		out->tries = try_number;
		out->http_status = t.http_status;

		cls = llm_try_judge(cfg, url, rc, &x, errbuf, redirect, &t, out, msg, sizeof msg);
		free(redirect);
		llm_answer_keep(&x);
		if (cls == NULL) {
			out->ok = true;
			out->error_class = NULL;
			out->error[0] = '\0';
			llm_report(cfg, h, &t, NULL, 0);
			break;
		}
		t.error_class = cls;
		llm_report(cfg, h, &t, msg, sizeof msg);
		llm_fail(cfg, out, cls, t.http_status, msg);
		if (!llm_retryable(cls) || try_number > retries ||
		    !llm_wait_next(cfg, h, out, try_number + 1, x.retry_after_ms))
			break;
	}
	free(body);
	return out->ok ? 0 : -1;
}

void llm_response_free(struct llm_response *r)
{
	free(r->text);
	free(r->stop_reason);
	free(r->no_text);
	r->text = r->stop_reason = r->no_text = NULL;
}
