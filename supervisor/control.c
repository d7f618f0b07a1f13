/* The control server: a Unix socket (mode 0600, same-uid peers only) that takes
 * `request` frames from autopack-ctl and answers each with a `reply` naming this
 * database. A malformed frame drops the peer; a failed command is an error reply and the
 * connection stays. */
#include "supervisor/cmd.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Replies a control client may leave unread before it is dropped. */
#define CONTROL_OUTPUT_MAX (8u << 20)

static const struct sup_cmd sup_cmds[] = {
	{ "status", false, cmd_status },
	{ "workers", false, cmd_workers },
	{ "metrics", false, cmd_metrics },
	{ "pause", true, cmd_pause },
	{ "resume", true, cmd_resume },
	{ "scale", true, cmd_scale },
	{ "stop", true, cmd_stop },
	{ "retry", false, cmd_retry }, /* logs each phase itself */
	{ "cancel", true, cmd_cancel },
	{ "run import", true, cmd_run_import },
	{ "seed telemetry-run", true, cmd_seed },
};

static struct ctl_conn *conns;

/* Join the request arguments with spaces for the control log. */
static char *args_join(const struct proto_request *req)
{
	size_t i, len = 1;
	char *out;

	for (i = 0; i < req->args.n; i++)
		len += strlen(req->args.items[i]) + 1;
	out = xcalloc(1, len);
	for (i = 0; i < req->args.n; i++) {
		if (i > 0)
			strcat(out, " ");
		strcat(out, req->args.items[i]);
	}
	return out;
}

/* Run a request and send its reply. */
static void control_request(struct ctl_conn *c, const struct proto_request *req)
{
	struct sup *s = c->sup;
	struct proto_msg m = { .type = PROTO_REPLY };
	struct cmd_reply rep = { 0 };
	const struct sup_cmd *cmd = NULL;
	bool wrong_db = req->expect_uuid != NULL && strcmp(req->expect_uuid, s->st->uuid) != 0;
	char *body = NULL;
	size_t i;
	int rc;

	for (i = 0; i < ARRAY_SIZE(sup_cmds); i++)
		if (strcmp(sup_cmds[i].name, req->command) == 0)
			cmd = &sup_cmds[i];
	if (wrong_db)
		rc = cmd_error(&rep, "wrong_database",
		    "this supervisor holds database %s (uuid %s),"
		    " not uuid %s",
		    s->st->url, s->st->uuid, req->expect_uuid);
	else if (cmd == NULL)
		rc = cmd_error(&rep, "unknown_command", "unknown command \"%s\"", req->command);
	else
		rc = cmd->exec(s, c, req, &rep);
	if (cmd != NULL && cmd->logged && !wrong_db) {
		char *args = args_join(req);

		writer_control_log(
		    s, c->pid, c->uid, req->command, args, rc == 0, rc == 0 ? "ok" : rep.message);
		free(args);
	}
	if (rc == 0 && rep.body != NULL)
		body = json_dumps(rep.body, JSON_COMPACT);
	m.u.reply.id = req->id;
	m.u.reply.ok = rc == 0;
	m.u.reply.code = (char *)rep.code;
	m.u.reply.message = rep.message;
	m.u.reply.db_url = s->st->url;
	m.u.reply.db_uuid = s->st->uuid;
	m.u.reply.body = body;
	chan_send(&c->chan, &m, NULL);
	free(body);
	free(rep.message);
	json_decref(rep.body);
}

/* Serve one request; anything else drops the peer. */
static void control_msg_cb(struct chan *ch, struct proto_msg *m)
{
	struct ctl_conn *c = container_of(ch, struct ctl_conn, chan);

	if (m->type != PROTO_REQUEST) {
		log_warn("control peer pid %d sent a %s message; disconnecting it", (int)c->pid,
		    proto_type_name(m->type));
		chan_close(ch, "not a request");
	} else {
		control_request(c, &m->u.request);
	}
	proto_msg_free(m);
}

/* Forget a closed control connection. */
static void control_close_cb(struct chan *ch, const char *why)
{
	struct ctl_conn *c = container_of(ch, struct ctl_conn, chan);
	struct ctl_conn **pp;

	if (why != NULL)
		log_warn("control peer pid %d dropped: %s", (int)c->pid, why);
	for (pp = &conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	free(c);
}

/* Accept a control connection from a peer of our own uid. */
static void control_conn_cb(uv_stream_t *server, int status)
{
	struct sup *s = server->data;
	struct ctl_conn *c;
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;

	if (status < 0) {
		log_warn("control socket: %s", uv_strerror(status));
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->sup = s;
	chan_init(s->loop, &c->chan, 1u << 20, control_msg_cb, control_close_cb);
	c->chan.max_queued = CONTROL_OUTPUT_MAX;
	if (uv_accept(server, (uv_stream_t *)&c->chan.pipe) != 0) {
		chan_close(&c->chan, "accept failed");
		c->next = conns;
		conns = c;
		return;
	}
	c->next = conns;
	conns = c;
	if (uv_fileno((uv_handle_t *)&c->chan.pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		chan_close(&c->chan, "cannot read peer credentials");
		return;
	}
	c->pid = cred.pid;
	c->uid = cred.uid;
	if (cred.uid != getuid()) {
		log_warn("control peer pid %d has uid %d, not %d; refused", (int)cred.pid,
		    (int)cred.uid, (int)getuid());
		chan_close(&c->chan, "peer uid differs");
		return;
	}
	chan_start(&c->chan);
}

/* Choose the socket path: the flag, else /tmp/autopack-<uid>/<uuid>.sock in a private
 * directory. Returns NULL with a message logged when the directory is unsafe. */
static char *control_path(struct sup *s)
{
	char *dir;
	struct stat sb;

	if (s->cfg.control_path != NULL)
		return xstrdup(s->cfg.control_path);
	dir = xasprintf("/tmp/autopack-%d", (int)getuid());
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_error("cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != getuid() ||
	    (sb.st_mode & 077) != 0) {
		log_error("%s is not a private directory of uid %d; use --control PATH", dir,
		    (int)getuid());
		free(dir);
		return NULL;
	}
	free(dir);
	return xasprintf("/tmp/autopack-%d/%s.sock", (int)getuid(), s->st->uuid);
}

/* Bind and listen on the control socket; -1 (logged) on failure. */
int control_listen(struct sup *s)
{
	struct stat sb;
	mode_t old;
	int rc;

	if ((s->control_path = control_path(s)) == NULL)
		return -1;
	if (strlen(s->control_path) >= 108) {
		log_error("control socket path too long (%zu bytes, limit 107): %s",
		    strlen(s->control_path), s->control_path);
		return -1;
	}
	/* We hold the database lock, so a socket left at this path is stale. */
	if (lstat(s->control_path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			log_error("%s exists and is not a socket; refusing to replace it",
			    s->control_path);
			return -1;
		}
		unlink(s->control_path);
	}
	uv_pipe_init(s->loop, &s->ctl_server, 0);
	s->ctl_server.data = s;
	old = umask(077);
	rc = uv_pipe_bind(&s->ctl_server, s->control_path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->ctl_server, 16, control_conn_cb);
	if (rc != 0) {
		log_error("control socket %s: %s", s->control_path, uv_strerror(rc));
		uv_close((uv_handle_t *)&s->ctl_server, NULL);
		return -1;
	}
	chmod(s->control_path, 0600);
	s->ctl_open = true;
	return 0;
}

/* Stop listening, remove the socket and close the connections. */
void control_close(struct sup *s)
{
	struct ctl_conn *c, *next;

	if (!s->ctl_open)
		return;
	s->ctl_open = false;
	uv_close((uv_handle_t *)&s->ctl_server, NULL);
	unlink(s->control_path);
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		chan_close(&c->chan, NULL);
	}
}
