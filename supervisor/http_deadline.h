/* A deadline for each request to the HTTP server: its line and headers must have arrived
 * within HTTP_REQUEST_S of the connection's start or of the end of its previous request.
 * libmicrohttpd's own timeout counts silence only, so a client sending a byte every few
 * seconds would hold its connection for as long as its headers may grow. */
#ifndef AUTOPACK_SUPERVISOR_HTTP_DEADLINE_H
#define AUTOPACK_SUPERVISOR_HTTP_DEADLINE_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#define HTTP_REQUEST_S 10
/* Connections at once (libmicrohttpd refuses more at accept). A new connection that
 * leaves fewer than HTTP_CONNECTIONS_SPARE places free closes the oldest connection still
 * waiting for its request, and one that is its address's HTTP_CONNECTIONS_PER_IP + 1st
 * the oldest of that address still waiting: clients that open connections and send
 * nothing, from one address or from many (every 127.x address reaches a loopback
 * server), keep nobody out, as a client's connection sends its request at once. 16 is
 * room for a browser's six connections to a host, a Prometheus scraper and a few tools
 * behind one address. */
#define HTTP_CONNECTIONS 128
#define HTTP_CONNECTIONS_SPARE 8
#define HTTP_CONNECTIONS_PER_IP 16
/* Each connection holds two descriptors (its socket and the duplicate its deadline is
 * enforced by): the server takes at most a quarter of the descriptors the process may
 * open, so that a flood of connections leaves the workers, the control socket and the
 * database theirs. */
#define HTTP_FILES_SHARE 8

struct http_conn;

/* The connections open, each with its deadline; shared by the server thread, which adds,
 * clears and removes them, and the loop, which enforces them. */
struct http_deadlines {
	pthread_mutex_t lock;
	unsigned limit;  /* connections at once: HTTP_CONNECTIONS, or fewer (http_limit) */
	unsigned per_ip; /* of one address: HTTP_CONNECTIONS_PER_IP, at most limit */
	unsigned spare;  /* places kept free: HTTP_CONNECTIONS_SPARE, or limit / 4 (at least 1) */
	struct http_conn *head;
	uint64_t closed;       /* connections closed for a late request, in all */
	uint64_t evicted;      /* connections closed waiting, to make room for a new one */
	uint64_t evicted_told; /* of which http_deadlines_evicted has told */
};

/* The connections the server takes at once under a limit of `files` open descriptors
 * (ulimit -n): HTTP_CONNECTIONS, or files / HTTP_FILES_SHARE when that is fewer (at
 * least 1). */
unsigned http_limit(unsigned long long files);
/* Set up d for at most `limit` connections at once. */
void http_deadlines_init(struct http_deadlines *d, unsigned limit);
/* Free what is left (after the server stopped). */
void http_deadlines_free(struct http_deadlines *d);
/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback (cls: the http_deadlines): a
 * connection that starts is given a deadline for its first request (without a descriptor
 * of its own to close it by, it gets none), and makes room for itself (the oldest waiting
 * connection closed, see HTTP_CONNECTIONS and http_deadlines.limit); one that closes is
 * forgotten. */
void http_deadline_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode code);
/* The request on c has arrived (headers complete): no deadline until it is answered. */
void http_deadline_arrived(struct http_deadlines *d, struct MHD_Connection *c);
/* libmicrohttpd's MHD_OPTION_NOTIFY_COMPLETED callback (cls: the http_deadlines): the
 * next request on the connection has a deadline from now. */
void http_deadline_completed(
    void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode code);
/* Answer each connection past its deadline with 408 Request Timeout and shut it down
 * (libmicrohttpd then closes it); returns how many. Called by the loop. */
unsigned http_deadlines_enforce(struct http_deadlines *d);
/* How many waiting connections were closed to make room since the last call. */
uint64_t http_deadlines_evicted(struct http_deadlines *d);

#endif
