/* The control client: connects to a running supervisor's socket, sends a request, reads
 * replies. Blocking I/O with a deadline, through proto/fdio.h. */
#ifndef AUTOPACK_CTL_CLIENT_H
#define AUTOPACK_CTL_CLIENT_H

#include <stddef.h>

#include "proto/fdio.h"

struct ctl_client {
	struct proto_fd io;
	int timeout_ms;
};

/* Connect to the socket at `path`, served by a process of this uid. Returns 0, or -1 with
 * err set (one of another uid named with its pid and uid). */
int client_connect(
    struct ctl_client *c, const char *path, int timeout_ms, char *err, size_t errlen);
/* Send a request. Returns 0, -1 with err set when sending failed, or -2 with err set when
 * the request cannot be encoded (an argument that is not UTF-8): nothing was sent. */
int client_send(struct ctl_client *c, const struct proto_request *req, char *err, size_t errlen);
/* Read the next reply into `m`. Returns 0, or -1 with err set (timeout, EOF, bad frame,
 * a message that is not a reply). */
int client_recv(struct ctl_client *c, struct proto_msg *m, char *err, size_t errlen);
/* Close the connection. */
void client_close(struct ctl_client *c);

#endif
