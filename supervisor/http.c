/* The HTTP server of --http ADDR:PORT: GET /healthz, /metrics, /api/status and / (the
 * dashboard), read-only. libmicrohttpd serves them from a thread of its own, so no client
 * (slow, huge, many, malformed) can hold up the event loop or the writer: the thread never
 * touches the supervisor's state or the database. Instead the loop publishes a snapshot
 * every HTTP_SNAPSHOT_MS (the status document and the metrics, as text) and the thread
 * answers from the newest one. Health is judged in the thread too, so it stays honest
 * when the loop itself is stuck: the snapshot's own reasons, plus a SQLite database's file
 * checked by device:inode at each request, plus a snapshot older than HTTP_STALE_MS. A
 * PostgreSQL database has no file: the loop checks its identity (the server's system
 * identifier, the database name and its uuid) every second, and its verdict is in the
 * snapshot. */
#include "supervisor/observe.h"
#include "common/jsondump.h"
#include "supervisor/droplog.h"
#include "supervisor/http_deadline.h"
#include "common/jsonload.h"
#include "common/log.h"
#include "common/util.h"
#include "common/numarg.h"
#include "common/utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define HTTP_SNAPSHOT_MS 1000
#define HTTP_STALE_MS 15000
/* A connection silent this long (idle, or sending its request too slowly) is closed: short
 * enough that connections left open free their place soon. Every answer closes its
 * connection (`Connection: close`), so no client of ours waits on one between requests. */
#define HTTP_TIMEOUT_S 5
#define HTTP_CONNECTION_MEMORY 32768 /* a request's line and headers must fit */
/* libmicrohttpd's own strictness: its default. Held to the protocol (1) it answered an
 * HTTP/1.1 request without a Host header with two status lines and header blocks before
 * one body, and closed a request line with two spaces unanswered; that Host is checked by
 * http_request_cb instead. */
#define HTTP_STRICT 0

/* What the loop published; immutable once published, freed with its last reference. */
struct http_snap {
	int refs;
	char *status;   /* the status document, JSON */
	char *metrics;  /* the exposition */
	char *health;   /* the loop's part of /healthz, JSON, reasons included */
	bool status_ok; /* the status document could be built */
	uint64_t made_ms;
};

struct http {
	struct MHD_Daemon *daemon;
	uv_timer_t timer;
	pthread_mutex_t lock;
	struct http_snap *snap;
	char *url;
	struct droplog log_limit;        /* libmicrohttpd's messages, at most one a second */
	bool started;                    /* MHD_start_daemon returned; under lock */
	char start_msg[256];             /* libmicrohttpd's first message before that, under lock */
	struct http_deadlines deadlines; /* of each connection's next request */
	/* constant while serving; read by the thread */
	char *db_path; /* the SQLite file; NULL for PostgreSQL */
	bool loopback; /* listening on a loopback address: a request must name an address */
	dev_t dev;
	ino_t ino;
};

/* Parse ADDR:PORT (ADDR an IPv4 address, [IPv6] or localhost) into sa; 0 or -1 with err. */
static int http_addr_parse(
    const char *spec, struct sockaddr_storage *sa, socklen_t *len, char *err, size_t errlen)
{
	const char *whole = spec, *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
		.ai_socktype = SOCK_STREAM },
	                *res = NULL;
	char host[256];
	size_t hl;
	long long port;

	if (colon == NULL || colon == spec || colon[1] == '\0') {
		snprintf(err, errlen, "\"%s\" is not ADDR:PORT (for example 127.0.0.1:9464)", spec);
		return -1;
	}
	if (numarg_ll(colon + 1, &port) != 0 || port < 0 || port > 65535) {
		snprintf(err, errlen, "\"%s\": port \"%s\" is not a number from 0 to 65535", spec,
		    colon + 1);
		return -1;
	}
	hl = (size_t)(colon - spec);
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof host) {
		snprintf(err, errlen, "address too long");
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) {
		snprintf(err, errlen,
		    "\"%s\": \"%s\" is not an IPv4 address, a bracketed IPv6 address or localhost",
		    whole, host);
		return -1;
	}
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	/* libmicrohttpd listens on IPv6 only (IPV6_V6ONLY), where binding an IPv4-mapped
	 * address fails with a bare "Invalid argument". */
	if (sa->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
		char v4[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr[12], v4,
		    sizeof v4);
		snprintf(err, errlen,
		    "\"%s\": [%s] is an IPv4 address written as IPv6, which the server cannot "
		    "listen on; write it as IPv4: %s:%s",
		    whole, host, v4, colon + 1);
		return -1;
	}
	return 0;
}

/* Check an --http value; 0 or -1 with err. */
int http_addr_check(const char *spec, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t len;

	return http_addr_parse(spec, &sa, &len, err, errlen);
}

/* Whether the address is a loopback one. */
static bool http_loopback(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Drop a reference to a snapshot (under the lock). */
static void snap_put(struct http_snap *sn)
{
	if (sn == NULL || --sn->refs > 0)
		return;
	free(sn->status);
	free(sn->metrics);
	free(sn->health);
	free(sn);
}

/* Build the health document the loop can vouch for. */
static char *http_health_json(struct sup *s)
{
	int64_t last = metrics_last_commit_wall_ms(s);
	json_t *reasons = status_health_reasons(s);
	bool healthy = json_array_size(reasons) == 0;
	bool pg = s->st->backend == DB_PG;
	char devino[48], *text;
	json_t *j;

	store_devino(s->st, devino);
	j = json_pack(
	    "{s:s, s:s, s:s, s:s?, s:s?, s:s, s:b, s:i, s:s, s:o, s:I, s:{s:i, s:i}, s:o}",
	    "status", healthy ? "ok" : "unhealthy", "db_url", s->st->url, "db_uuid", s->st->uuid,
	    "device_inode", pg ? NULL : devino, "server_id", pg ? s->st->server_id : NULL, "state",
	    status_state_name(s), "paused", s->paused, "pid", (int)getpid(), "version",
	    AUTOPACK_VERSION, "last_commit_age_seconds",
	    last > 0 ? json_real((double)(clock_wall_ms() - last) / 1000.0) : json_null(),
	    "writer_queue_writes", (json_int_t)s->ops_n, "workers", "live", s->live, "wanted",
	    s->target, "reasons", reasons);
	text = json_dumps_short(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

/* Publish a new snapshot for the thread. */
static void http_publish(struct sup *s)
{
	struct http *h = s->http;
	struct http_snap *sn = xcalloc(1, sizeof *sn), *old;
	struct store_err err;
	json_t *doc = status_doc(s, &err);

	sn->refs = 1;
	sn->status_ok = doc != NULL;
	if (doc != NULL) {
		sn->status = json_dumps_short(doc, JSON_COMPACT);
		json_decref(doc);
	} else {
		json_t *e = json_pack(
		    "{s:b, s:s, s:s}", "ok", false, "error", "store_error", "message", err.text);

		sn->status = json_dumps_short(e, JSON_COMPACT);
		json_decref(e);
	}
	sn->metrics = metrics_text(s);
	sn->health = http_health_json(s);
	sn->made_ms = clock_mono_ms();
	pthread_mutex_lock(&h->lock);
	old = h->snap;
	h->snap = sn;
	snap_put(old);
	pthread_mutex_unlock(&h->lock);
}

/* Log, in one line each, the connections closed since the last call to make room for
 * new ones, and the `late` ones answered 408. */
static void http_log_closes(struct sup *s, unsigned n)
{
	uint64_t made_room = http_deadlines_evicted(&s->http->deadlines);

	if (n > 0)
		log_warn("http: %u connection(s) answered 408 and closed: the request line and"
		         " headers took over %d s",
		    n, HTTP_REQUEST_S);
	if (made_room > 0)
		log_warn("http: %llu connection(s) that had sent no request closed to make room"
		         " for new ones (%d at most from one address, %d in all)",
		    (unsigned long long)made_room, s->http->deadlines.per_ip,
		    s->http->deadlines.limit - s->http->deadlines.spare);
}

/* Publish the next snapshot, close the connections whose request is late, and log the
 * closes and the server's messages counted in the last second (once a second each). */
static void http_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	http_log_closes(s, http_deadlines_enforce(&s->http->deadlines));
	droplog_flush(&s->http->log_limit, false);
	http_publish(s);
}

/* Take a reference to the newest snapshot. */
static struct http_snap *snap_get(struct http *h)
{
	struct http_snap *sn;

	pthread_mutex_lock(&h->lock);
	sn = h->snap;
	sn->refs++;
	pthread_mutex_unlock(&h->lock);
	return sn;
}

/* Drop a reference taken with snap_get. */
static void snap_release(struct http *h, struct http_snap *sn)
{
	pthread_mutex_lock(&h->lock);
	snap_put(sn);
	pthread_mutex_unlock(&h->lock);
}

/* Queue a response with the body copied, its type and the headers every answer has. */
static enum MHD_Result http_send(
    struct MHD_Connection *c, unsigned status, const char *type, const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (strncmp(type, "text/html", 9) == 0)
		MHD_add_response_header(r, "Content-Security-Policy",
		    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
		    " connect-src 'self'; img-src data:; frame-ancestors 'none'");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* Queue a JSON error {ok: false, error, message}. The message may quote what the client
 * sent (its method): bytes that are no UTF-8 become U+FFFD, so that the answer can always
 * be built (JSON holds only UTF-8) and the client is told what was wrong rather than
 * dropped. */
static enum MHD_Result http_error(struct MHD_Connection *c, unsigned status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result http_error(
    struct MHD_Connection *c, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512], *clean, *text;
	enum MHD_Result rc;
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	clean = utf8_clean(msg, sizeof msg);
	j = json_pack("{s:b, s:s, s:s}", "ok", false, "error", code, "message", clean);
	free(clean);
	text = json_dumps_short(j, JSON_COMPACT);
	json_decref(j);
	rc = text != NULL ? http_send(c, status, "application/json", text, strlen(text)) : MHD_NO;
	free(text);
	return rc;
}

/* Answer /healthz: the loop's verdict, the database file as it is now, the loop's
 * liveness. */
static enum MHD_Result http_healthz(struct http *h, struct MHD_Connection *c)
{
	struct http_snap *sn = snap_get(h);
	json_t *j = json_loads_bounded(sn->health, 0, NULL), *reasons;
	uint64_t age = clock_mono_ms() - sn->made_ms;
	enum MHD_Result rc;
	struct stat sb;
	char msg[512], *text;

	snap_release(h, sn);
	if (j == NULL)
		return http_error(c, 500, "internal", "health document unreadable");
	reasons = json_object_get(j, "reasons");
#ifdef AUTOPACK_MUTANT_healthz_ignores_the_file
	if (false) {
#else
	if (h->db_path != NULL &&
	    (stat(h->db_path, &sb) != 0 || sb.st_dev != h->dev || sb.st_ino != h->ino)) {
#endif
		if (stat(h->db_path, &sb) != 0)
			snprintf(msg, sizeof msg,
			    "%s: %s; the database file opened is gone from it", h->db_path,
			    strerror(errno));
		else
			snprintf(msg, sizeof msg,
			    "%s is now device:inode %lu:%lu, not the file opened (%lu:%lu)",
			    h->db_path, (unsigned long)sb.st_dev, (unsigned long)sb.st_ino,
			    (unsigned long)h->dev, (unsigned long)h->ino);
		json_array_append_new(
		    reasons, json_pack("{s:s, s:s}", "code", "database_lost", "message", msg));
	}
	if (age > HTTP_STALE_MS) {
		snprintf(msg, sizeof msg, "the supervisor's event loop has not answered for %.1f s",
		    (double)age / 1000.0);
		json_array_append_new(
		    reasons, json_pack("{s:s, s:s}", "code", "loop_stalled", "message", msg));
	}
	json_object_set_new(
	    j, "status", json_string(json_array_size(reasons) ? "unhealthy" : "ok"));
	json_object_set_new(j, "snapshot_age_seconds", json_real((double)age / 1000.0));
	text = json_dumps_short(j, JSON_COMPACT);
	rc = http_send(c, json_array_size(reasons) ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
	    "application/json", text, strlen(text));
	free(text);
	json_decref(j);
	return rc;
}

/* Whether the Host a request names is an address (IPv4, [IPv6]) or localhost, with or
 * without a port, or is absent (HTTP/1.0): what a browser sends for a page of this server,
 * and a reverse proxy for its upstream by default. Asked of a server on a loopback
 * address: a page of another site whose name it made resolve to 127.0.0.1 (DNS
 * rebinding) names that site, and reads nothing. */
static bool http_host_ours(const char *host)
{
	char name[256], buf[sizeof(struct in6_addr)];
	bool bracketed = host != NULL && host[0] == '[';
	const char *end;
	size_t n;

	if (host == NULL)
		return true;
	if (bracketed) {
		end = strchr(host, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return false;
		host++;
	} else {
		end = strchr(host, ':');
		if (end == NULL)
			end = host + strlen(host);
	}
	n = (size_t)(end - host);
	if (n == 0 || n >= sizeof name)
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	return strcasecmp(name, "localhost") == 0 || inet_pton(AF_INET, name, buf) == 1 ||
	    (bracketed && inet_pton(AF_INET6, name, buf) == 1);
}

/* Count the Host header lines of a request (libmicrohttpd's header iterator). */
static enum MHD_Result http_host_count_cb(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	unsigned *n = cls;

	(void)kind;
	(void)value;
	if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		(*n)++;
	return MHD_YES;
}

/* Answer one request; every path is read-only. */
static enum MHD_Result http_request_cb(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload, size_t *upload_size, void **state)
{
	struct http *h = cls;
	struct http_snap *sn;
	enum MHD_Result rc;
	unsigned hosts = 0;

	(void)upload;
	(void)state;
	http_deadline_arrived(&h->deadlines, c);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		*upload_size = 0;
		return http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
		    "this server is read-only: GET or HEAD, not %.32s", method);
	}
	/* Two Host lines name two servers: the check below would read the first only, and a
	 * proxy before this server may have judged the request by the other. RFC 9112, 3.2:
	 * answered 400. */
	MHD_get_connection_values(c, MHD_HEADER_KIND, http_host_count_cb, &hosts);
	if (hosts > 1)
		return http_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "the request names its Host %u times; give it once", hosts);
	/* RFC 9112, 3.2: an HTTP/1.1 request without a Host is answered 400 (HTTP/1.0 needs
	 * none). */
	if (hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
		return http_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", "%s",
		    "an HTTP/1.1 request must name its Host; this one names none");
	if (h->loopback &&
	    !http_host_ours(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
		return http_error(c, MHD_HTTP_MISDIRECTED_REQUEST, "misdirected_request", "%s",
		    "the request's Host is not an address of this server: ask by its address "
		    "(or localhost); a page of another site whose name resolves here is not "
		    "answered");
	if (strcmp(url, "/healthz") == 0)
		return http_healthz(h, c);
	if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
		return http_send(
		    c, MHD_HTTP_OK, "text/html; charset=utf-8", dashboard_html, dashboard_html_len);
	if (strcmp(url, "/metrics") != 0 && strcmp(url, "/api/status") != 0)
		return http_error(c, MHD_HTTP_NOT_FOUND, "not_found",
		    "no such path; try /, /healthz, /metrics or /api/status");
	sn = snap_get(h);
	if (url[1] == 'm')
		rc = http_send(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		    sn->metrics, strlen(sn->metrics));
	else
		rc = http_send(c, sn->status_ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
		    "application/json", sn->status, strlen(sn->status));
	snap_release(h, sn);
	return rc;
}

/* Leave the path as sent: every path served is plain ASCII, so an escape (%00, %2e) can
 * only name something that is not served. */
static size_t http_unescape_cb(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

/* Cut a request's query string to nothing before libmicrohttpd parses it: no path served
 * takes one, and libmicrohttpd takes a record out of the connection's 32 KiB for each of
 * its arguments, so a query of some 450 of them (2 KiB: `?a=1&a=1&…`) left no room for
 * any answer, and the connection hung unanswered until its timeout. `uri` points into
 * libmicrohttpd's own copy of the request line, which it cuts at the '?' itself once this
 * returns. Returns no per-request state. */
static void *http_uri_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
	char *query = strchr(uri, '?');

	(void)cls;
	(void)c;
	if (query != NULL)
		query[1] = '\0';
	return NULL;
}

/* Route libmicrohttpd's messages into the log, at most one a second and the rest counted
 * (droplog.h): a client sending junk must not flood it. */
static void http_log_cb(void *cls, const char *fmt, va_list ap)
{
	struct http *h = cls;
	char msg[512];
	size_t n;

	pthread_mutex_lock(&h->lock);
	if (!h->started) { /* http_start says it, with its own words */
		if (h->start_msg[0] == '\0')
			vsnprintf(h->start_msg, sizeof h->start_msg, fmt, ap);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	pthread_mutex_unlock(&h->lock);
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	droplog_warn(&h->log_limit, "http: %s", msg);
}

/* Parse the address, publish a first snapshot and start the server thread. */
int http_start(struct sup *s)
{
	struct sockaddr_storage sa;
	struct http *h;
	const union MHD_DaemonInfo *info;
	struct rlimit files;
	char err[512], host[INET6_ADDRSTRLEN];
	socklen_t len;
	unsigned port;

	if (s->cfg.http_addr == NULL)
		return 0;
	if (http_addr_parse(s->cfg.http_addr, &sa, &len, err, sizeof err) != 0) {
		log_error("--http: %s", err);
		return -1;
	}
	h = xcalloc(1, sizeof *h);
	s->http = h;
	pthread_mutex_init(&h->lock, NULL);
	droplog_init(&h->log_limit, "message(s) from the HTTP server", DROPLOG_SECOND);
	if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == RLIM_INFINITY)
		files.rlim_cur = (rlim_t)HTTP_CONNECTIONS * HTTP_FILES_SHARE;
	http_deadlines_init(&h->deadlines, http_limit((unsigned long long)files.rlim_cur));
	h->db_path = s->st->backend == DB_PG ? NULL : xstrdup(s->st->path);
	h->dev = s->st->dev;
	h->ino = s->st->ino;
	h->loopback = http_loopback(&sa);
	uv_timer_init(s->loop, &h->timer);
	h->timer.data = s;
	http_publish(s);
	h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
	        MHD_USE_ERROR_LOG | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, http_request_cb, h, MHD_OPTION_EXTERNAL_LOGGER, http_log_cb, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
	    h->deadlines.limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
	    MHD_OPTION_UNESCAPE_CALLBACK, http_unescape_cb, NULL, MHD_OPTION_URI_LOG_CALLBACK,
	    http_uri_cb, NULL, MHD_OPTION_NOTIFY_CONNECTION, http_deadline_notify, &h->deadlines,
	    MHD_OPTION_NOTIFY_COMPLETED, http_deadline_completed, &h->deadlines,
	    MHD_OPTION_STRICT_FOR_CLIENT, HTTP_STRICT, MHD_OPTION_END);
	pthread_mutex_lock(&h->lock);
	h->started = true;
	strlcpy_ap(err, h->start_msg, sizeof err);
	pthread_mutex_unlock(&h->lock);
	err[strcspn(err, "\n")] = '\0';
	if (h->daemon == NULL) {
		/* Its message names the port it was given (0: the address carries it); its
		 * cause follows the last ": ". */
		const char *cause = strrchr(err, ':');

		log_error("--http %s: cannot listen there: %s", s->cfg.http_addr,
		    cause != NULL && cause[1] == ' ' ? cause + 2 :
		        err[0] != '\0'               ? err :
		                                       "in use, or not an address of this host");
		return -1;
	}
	if (err[0] != '\0')
		log_warn("http: %s", err);
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	port = info != NULL ? info->port : 0;
	if (sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof host);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof host);
	h->url = xasprintf(
	    sa.ss_family == AF_INET ? "http://%s:%u/" : "http://[%s]:%u/", host, port);
	s->http_url = h->url;
	http_publish(s); /* with the URL */
	uv_timer_start(&h->timer, http_timer_cb, HTTP_SNAPSHOT_MS, HTTP_SNAPSHOT_MS);
	uv_unref((uv_handle_t *)&h->timer);
	if (!http_loopback(&sa))
		log_warn(
		    "--http %s is not a loopback address: anyone who can reach it can read"
		    " this drain's status, failures and metrics (read-only, no authentication)",
		    s->cfg.http_addr);
	log_info("http: dashboard %s, metrics %smetrics, health %shealthz", h->url, h->url, h->url);
	if (h->deadlines.limit < HTTP_CONNECTIONS)
		log_warn("http: at most %u connection(s) at once, not %d: each takes 2 of the %llu "
		         "open files this process may have (ulimit -n), and the server takes a "
		         "quarter of them at most, so that a flood of connections leaves the rest "
		         "to the workers, the control socket and the database",
		    h->deadlines.limit, HTTP_CONNECTIONS, (unsigned long long)files.rlim_cur);
	return 0;
}

/* Stop the server thread and the snapshots. */
void http_stop(struct sup *s)
{
	struct http *h = s->http;

	if (h == NULL)
		return;
	if (h->daemon != NULL) {
		MHD_stop_daemon(h->daemon);
		http_log_closes(s, 0);
		droplog_flush(&h->log_limit, true);
	}
	h->daemon = NULL;
	uv_timer_stop(&h->timer);
}

/* Free the server and its last snapshot. */
void http_free(struct sup *s)
{
	struct http *h = s->http;

	if (h == NULL)
		return;
	http_stop(s);
	snap_put(h->snap);
	http_deadlines_free(&h->deadlines);
	pthread_mutex_destroy(&h->lock);
	free(h->db_path);
	free(h->url);
	free(h);
	s->http = NULL;
	s->http_url = NULL;
}
