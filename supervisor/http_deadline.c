/* Deadlines for the requests of the HTTP server's connections (see http_deadline.h). Each
 * connection's socket is duplicated when it starts, so that the loop can shut it down by
 * a descriptor that stays its own until the record is freed: the server thread may close
 * and reuse the connection's own number at any time. */
#include "supervisor/http_deadline.h"
#include "common/util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct http_conn {
	struct http_conn *next, **prev; /* newest first */
	int fd;                         /* a duplicate of the connection's socket */
	uint64_t deadline_ms; /* monotonic; 0: none (a request is being answered, or done) */
	bool evicted;         /* shut down to make room, not closed yet: no longer counted */
	int family;           /* the client's address family and address (port left out) */
	unsigned char addr[16];
};

#define HTTP_STR_(x) #x
#define HTTP_STR(x) HTTP_STR_(x)
/* The 408 answer's body, and its length as the Content-Length says it. */
#define HTTP_408_BODY                                                                              \
	"{\"ok\": false, \"error\": \"request_timeout\", \"message\": "                            \
	"\"the request line and headers took over " HTTP_STR(HTTP_REQUEST_S) " s\"}\n"
#define HTTP_408_LEN 100
_Static_assert(sizeof HTTP_408_BODY - 1 == HTTP_408_LEN, "HTTP_408_LEN is the body's length");

static const char http_408[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: " HTTP_STR(HTTP_408_LEN) "\r\n\r\n" HTTP_408_BODY;

unsigned http_limit(unsigned long long files)
{
	unsigned long long n = files / HTTP_FILES_SHARE;

	return n >= HTTP_CONNECTIONS ? HTTP_CONNECTIONS : n > 0 ? (unsigned)n : 1;
}

void http_deadlines_init(struct http_deadlines *d, unsigned limit)
{
	pthread_mutex_init(&d->lock, NULL);
	d->limit = limit;
	d->per_ip = limit < HTTP_CONNECTIONS_PER_IP ? limit : HTTP_CONNECTIONS_PER_IP;
	d->spare = limit / 4 > HTTP_CONNECTIONS_SPARE ? HTTP_CONNECTIONS_SPARE :
	    limit / 4 > 0                             ? limit / 4 :
	                                                1;
	d->head = NULL;
	d->closed = 0;
	d->evicted = d->evicted_told = 0;
}

void http_deadlines_free(struct http_deadlines *d)
{
	struct http_conn *k, *next;

	for (k = d->head; k != NULL; k = next) {
		next = k->next;
		close(k->fd);
		free(k);
	}
	d->head = NULL;
	pthread_mutex_destroy(&d->lock);
}

/* The record of c, or NULL. */
static struct http_conn *http_conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(
	    c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return i != NULL ? i->socket_context : NULL;
}

/* Record the client's address of c in k (left zero when it cannot be read). */
static void http_conn_addr(struct http_conn *k, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(
	    c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = i != NULL ? i->client_addr : NULL;

	if (sa != NULL && sa->sa_family == AF_INET) {
		k->family = AF_INET;
		memcpy(k->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		k->family = AF_INET6;
		memcpy(k->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

/* Whether a and b come from one address. */
static bool http_conn_same_addr(const struct http_conn *a, const struct http_conn *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* Whether x's request (some of it) has arrived, unread yet by the server: it is no
 * connection waiting idle. */
static bool http_conn_has_request(const struct http_conn *x)
{
	int n = 0;

	return ioctl(x->fd, FIONREAD, &n) == 0 && n > 0;
}

/* With the lock held and k just added: when k's address now holds more than d->per_ip
 * connections, shut down the oldest of that address that waits for its request; else,
 * when the connections leave fewer than d->spare places free, the oldest of any address
 * that waits for its request. A connection whose request is being answered, or has
 * arrived, is never taken; one shut down already, not closed yet, is not counted.
 * Returns whether one was taken. */
static bool http_conn_make_room(struct http_deadlines *d, struct http_conn *k)
{
	struct http_conn *x, *victim = NULL;
	unsigned all = 0, here = 0;
	bool same;

	for (x = d->head; x != NULL; x = x->next) {
		if (x->evicted)
			continue;
		all++;
		here += http_conn_same_addr(x, k);
	}
	if (here > d->per_ip)
		same = true;
	else if (all > d->limit - d->spare)
		same = false;
	else
		return false;
	/* Newest first: the last one that qualifies is the oldest. */
	for (x = d->head; x != NULL; x = x->next)
		if (!x->evicted && x != k && x->deadline_ms != 0 &&
		    (!same || http_conn_same_addr(x, k)) && !http_conn_has_request(x))
			victim = x;
	if (victim == NULL)
		return false;
	victim->deadline_ms = 0;
	victim->evicted = true;
	shutdown(victim->fd, SHUT_RDWR);
	d->evicted++;
	return true;
}

void http_deadline_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	struct http_deadlines *d = cls;
	struct http_conn *k = *socket_context;
	const union MHD_ConnectionInfo *i;
	int fd;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (i == NULL || (fd = fcntl(i->connect_fd, F_DUPFD_CLOEXEC, 0)) < 0)
			return;
		k = xcalloc(1, sizeof *k);
		k->fd = fd;
		k->deadline_ms = clock_mono_ms() + HTTP_REQUEST_S * 1000;
		http_conn_addr(k, c);
		pthread_mutex_lock(&d->lock);
		k->next = d->head;
		k->prev = &d->head;
		if (d->head != NULL)
			d->head->prev = &k->next;
		d->head = k;
		http_conn_make_room(d, k);
		pthread_mutex_unlock(&d->lock);
		*socket_context = k;
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_CLOSED || k == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	*k->prev = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&d->lock);
	close(k->fd);
	free(k);
	*socket_context = NULL;
}

void http_deadline_arrived(struct http_deadlines *d, struct MHD_Connection *c)
{
	struct http_conn *k = http_conn_of(c);

	if (k == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	k->deadline_ms = 0;
	pthread_mutex_unlock(&d->lock);
}

void http_deadline_completed(
    void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode code)
{
	struct http_deadlines *d = cls;
	struct http_conn *k = http_conn_of(c);

	(void)state;
	(void)code;
	if (k == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	k->deadline_ms = clock_mono_ms() + HTTP_REQUEST_S * 1000;
	pthread_mutex_unlock(&d->lock);
}

unsigned http_deadlines_enforce(struct http_deadlines *d)
{
	uint64_t now = clock_mono_ms();
	unsigned n = 0;
	struct http_conn *k;

	pthread_mutex_lock(&d->lock);
	for (k = d->head; k != NULL; k = k->next) {
		if (k->deadline_ms == 0 || now < k->deadline_ms)
			continue;
		k->deadline_ms = 0;
		(void)!send(k->fd, http_408, sizeof http_408 - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		shutdown(k->fd, SHUT_RDWR);
		n++;
	}
	d->closed += n;
	pthread_mutex_unlock(&d->lock);
	return n;
}

uint64_t http_deadlines_evicted(struct http_deadlines *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->lock);
	n = d->evicted - d->evicted_told;
	d->evicted_told = d->evicted;
	pthread_mutex_unlock(&d->lock);
	return n;
}
