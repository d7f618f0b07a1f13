/* Control commands served by the supervisor, one file per group, gathered in control.c. */
#ifndef AUTOPACK_CMD_H
#define AUTOPACK_CMD_H

#include <jansson.h>

#include "supervisor/sup.h"

struct ctl_conn {
	struct sup *sup;
	struct chan chan;
	pid_t pid;
	uid_t uid;
	bool evicted;      /* closed to make room for a newer connection: no longer counted */
	bool served;       /* it has sent a whole request */
	uint64_t sent_ms;  /* loop time the reply being written was queued */
	uint64_t sent_lag; /* the loop's lag then */
	uint64_t idle_ms;  /* loop time of its accept or of its last request */
	uint64_t idle_lag; /* the loop's lag then */
	struct ctl_conn *next;
};

/* What a command hands back: a JSON body on success, or an error code and message. */
struct cmd_reply {
	json_t *body;
	const char *code;
	char *message;
};

struct sup_cmd {
	const char *name;
	bool logged;  /* recorded in control_log */
	int max_args; /* arguments it takes at most; -1: it checks them itself */
	int (*exec)(struct sup *s, struct ctl_conn *c, const struct proto_request *req,
	    struct cmd_reply *rep);
};

/* Fail a command with a code and a formatted message; returns -1. */
int cmd_error(struct cmd_reply *rep, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The commands. Each runs one request: it fills rep->body (a JSON object) and returns 0,
 * or returns cmd_error(rep, code, message); the connection stays open either way. */
int cmd_status(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_workers(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_metrics(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_pause(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_resume(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_scale(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_run_import(
    struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_seed(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_retry(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_cancel(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);
int cmd_stop(struct sup *, struct ctl_conn *, const struct proto_request *, struct cmd_reply *);

#endif
