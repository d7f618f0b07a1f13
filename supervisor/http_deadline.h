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

struct http_conn;

/* The connections open, each with its deadline; shared by the server thread, which adds,
 * clears and removes them, and the loop, which enforces them. */
struct http_deadlines {
	pthread_mutex_t lock;
	struct http_conn *head;
	uint64_t closed; /* connections closed for a late request, in all */
};

void http_deadlines_init(struct http_deadlines *d);
/* Free what is left (after the server stopped). */
void http_deadlines_free(struct http_deadlines *d);
/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback (cls: the http_deadlines): a
 * connection that starts is given a deadline for its first request (without a descriptor
 * of its own to close it by, it gets none); one that closes is forgotten. */
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

#endif
