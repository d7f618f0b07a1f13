/* The control server: a Unix socket (mode 0600, same-uid peers only) that takes
 * `request` frames from autopack-ctl and answers each with a `reply` naming this
 * database. A malformed frame drops the peer; a failed command is an error reply and the
 * connection stays. */
#include "supervisor/cmd.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct sup_cmd sup_cmds[] = {
	{ "status", false, cmd_status },
	{ "workers", false, cmd_workers },
	{ "metrics", false, cmd_metrics },
	{ "pause", true, cmd_pause },
	{ "resume", true, cmd_resume },
	{ "scale", true, cmd_scale },
	{ "stop", true, cmd_stop },
	{ "retry", true, cmd_retry },
	{ "cancel", true, cmd_cancel },
	{ "run import", true, cmd_run_import },
	{ "seed telemetry-run", true, cmd_seed },
};

static struct ctl_conn *conns;

int cmd_error(struct cmd_reply *rep, const char *code, const char *fmt, ...)
{
	va_list ap;

	rep->code = code;
	va_start(ap, fmt);
	if (vasprintf(&rep->message, fmt, ap) < 0)
		rep->message = NULL;
	va_end(ap);
	return -1;
}

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

/* Describe how the request's expected database differs from this one into buf (size
 * len); false if it names this one (the parts it leaves out match anything). */
static bool control_wrong_db(
    struct sup *s, const struct proto_request *req, const char *devino, char *buf, size_t len)
{
	const char *part = NULL;

	if (req->expect_uuid != NULL && strcmp(req->expect_uuid, s->st->uuid) != 0)
		part = "uuid";
	else if (req->expect_url != NULL && strcmp(req->expect_url, s->st->url) != 0)
		part = "file";
	else if (req->expect_devino != NULL && strcmp(req->expect_devino, devino) != 0)
		part = "device:inode";
	if (part == NULL)
		return false;
	snprintf(buf, len,
	    "this supervisor holds database %s (uuid %s, device:inode %s), not %s (uuid %s, "
	    "device:inode %s): the %s differs",
	    s->st->url, s->st->uuid, devino, req->expect_url != NULL ? req->expect_url : "?",
	    req->expect_uuid != NULL ? req->expect_uuid : "?",
	    req->expect_devino != NULL ? req->expect_devino : "?", part);
	return true;
}

/* Run a request and send its reply. */
static void control_request(struct ctl_conn *c, const struct proto_request *req)
{
	struct sup *s = c->sup;
	struct proto_msg m = { .type = PROTO_REPLY };
	struct cmd_reply rep = { 0 };
	const struct sup_cmd *cmd = NULL;
	char devino[64], why[1024];
	bool wrong_db;
	char *body = NULL;
	size_t i;
	int rc;

	snprintf(devino, sizeof devino, "%lu:%lu", (unsigned long)s->st->dev,
	    (unsigned long)s->st->ino);
	wrong_db = control_wrong_db(s, req, devino, why, sizeof why);
	for (i = 0; i < ARRAY_SIZE(sup_cmds); i++)
		if (strcmp(sup_cmds[i].name, req->command) == 0)
			cmd = &sup_cmds[i];
	if (wrong_db)
		rc = cmd_error(&rep, "wrong_database", "%s", why);
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
	m.u.reply.db_devino = devino;
	m.u.reply.body = body;
	chan_send(&c->chan, &m);
	free(body);
	free(rep.message);
	json_decref(rep.body);
}

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
