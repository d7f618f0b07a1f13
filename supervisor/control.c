/* The control server: a Unix socket (mode 0600, same-uid peers only) that takes
 * `request` frames from autopack-ctl and answers each with a `reply` naming this
 * database. A malformed frame is answered with its reason and drops the peer; a failed
 * command is an error reply and the connection stays. Each connection has one request at
 * a time in hand (the next is not read before the reply is written), so however many
 * clients ask, and however fast, the loop goes on draining. At most CONTROL_CONN_MAX
 * connections are open at once (fewer under a low limit of open files, control_conn_max),
 * and none may hold its place doing nothing: one that sends no whole request within
 * CONTROL_FIRST_MS of its accept, or none for CONTROL_IDLE_MS after its last, is closed,
 * and a connection over the cap is accepted by closing the one that waited longest
 * without a request in hand (see control_victim), so that idle connections never lock
 * `status`, `scale` or `stop` out. Every connection dropped or refused is logged, at most
 * one line a second for each cause and the rest counted (droplog.h). */
#include "supervisor/cmd.h"
#include "common/jsondump.h"
#include "supervisor/droplog.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/store/store.h"
#include "common/store/store_runtime.h"
#include "common/utf8.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Replies a control client may leave unread before it is dropped. */
#define CONTROL_OUTPUT_MAX (8u << 20)
/* Control connections open at once; a new one over this closes another (control_victim).
 * Under a limit of open files below CONTROL_CONN_MAX * CONTROL_FILES_SHARE, the limit /
 * CONTROL_FILES_SHARE (at least 2): connections take at most an eighth of the descriptors,
 * so that a flood of them leaves the workers, the peer checks (/proc) and the database
 * theirs. */
#define CONTROL_CONN_MAX 64
#define CONTROL_FILES_SHARE 8
/* How long a connection may stay open without a whole request: from its accept to its
 * first request, and after each request (loop time the supervisor ran). */
#define CONTROL_FIRST_MS 5000
#define CONTROL_IDLE_MS 60000
/* How long a reply may stay unread (loop time the supervisor ran) before the client is
 * dropped, and how often that is looked at. */
#define CONTROL_UNREAD_MS 15000
#define CONTROL_SWEEP_MS 1000

static const struct sup_cmd sup_cmds[] = {
	{ "status", false, 0, cmd_status },
	{ "workers", false, 0, cmd_workers },
	{ "metrics", false, 0, cmd_metrics },
	{ "pause", true, 0, cmd_pause },
	{ "resume", true, 0, cmd_resume },
	{ "scale", true, -1, cmd_scale },
	{ "stop", true, -1, cmd_stop },
	{ "retry", false, -1, cmd_retry }, /* logs each phase itself */
	{ "cancel", true, -1, cmd_cancel },
	{ "run import", true, -1, cmd_run_import },
	{ "seed telemetry-run", true, -1, cmd_seed },
};

static struct ctl_conn *conns;
static int conn_max = CONTROL_CONN_MAX; /* set by control_listen (control_conn_max) */
/* The causes of drops (droplog.h): faults logged at most once a second; the closes a busy
 * socket makes by design, and the refusals of a phase's processes (a phase may connect
 * without end), once a minute. */
static struct droplog drop_malformed = DROPLOG_INIT(
    "control connection(s) dropped for a malformed frame", DROPLOG_SECOND);
static struct droplog drop_fault = DROPLOG_INIT(
    "control connection(s) dropped for replies left unread or a failed read or accept",
    DROPLOG_SECOND);
static struct droplog drop_uid = DROPLOG_INIT(
    "control connection(s) of another user refused", DROPLOG_SECOND);
static struct droplog drop_phase = DROPLOG_INIT(
    "control connection(s) of a phase's processes refused", DROPLOG_MINUTE);
static struct droplog drop_idle = DROPLOG_INIT("control connection(s) closed idle", DROPLOG_MINUTE);
static struct droplog drop_room = DROPLOG_INIT(
    "control connection(s) closed to make room for new ones", DROPLOG_MINUTE);
static struct droplog *const drop_causes[] = { &drop_malformed, &drop_fault, &drop_uid, &drop_phase,
	&drop_idle, &drop_room };
static uv_timer_t ctl_sweep;
static dev_t ctl_dev; /* the published socket, so that only it is removed at the end */
static ino_t ctl_ino;
/* The handle listening on it: the supervisor's ctl_server, or one made since its name was
 * removed (control_watch). */
static uv_pipe_t *ctl_listener;
/* A loss of the socket's name that control_watch could not undo was logged. */
static bool ctl_loss_told;
/* A loss of the uuid claim that control_claim_watch could not undo was logged. */
static bool ctl_claim_told;

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

/* Run a request of connection c, logging it in control_log when the command is logged. */
int control_run(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	const struct sup_cmd *cmd = NULL;
	char devino[48], why[1024];
	bool wrong_db;
	size_t i;
	int rc;

	store_devino(s->st, devino);
	wrong_db = control_wrong_db(s, req, devino, why, sizeof why);
	for (i = 0; i < ARRAY_SIZE(sup_cmds); i++)
		if (strcmp(sup_cmds[i].name, req->command) == 0)
			cmd = &sup_cmds[i];
	if (wrong_db)
		rc = cmd_error(rep, "wrong_database", "%s", why);
	else if (cmd == NULL)
		rc = cmd_error(rep, "unknown_command", "unknown command \"%s\"", req->command);
	else if (cmd->max_args >= 0 && req->args.n > (size_t)cmd->max_args)
		rc = cmd_error(rep, "bad_argument", "%s takes no argument, not \"%s\"%s", cmd->name,
		    utf8_one_line(why, req->args.items[0], 128),
		    req->args.n > 1 ? " and more" : "");
	else
		rc = cmd->exec(s, c, req, rep);
	if (cmd != NULL && cmd->logged && !wrong_db) {
		char *args = args_join(req);

		writer_control_log(
		    s, c->pid, c->uid, req->command, args, rc == 0, rc == 0 ? "ok" : rep->message);
		free(args);
	}
	return rc;
}

/* Run a request and send its reply. */
static void control_request(struct ctl_conn *c, const struct proto_request *req)
{
	struct sup *s = c->sup;
	struct proto_msg m = { .type = PROTO_REPLY };
	struct cmd_reply rep = { 0 };
	char devino[48];
	char *body = NULL;
	int rc = control_run(s, c, req, &rep);

	store_devino(s->st, devino);
	if (rc == 0 && rep.body != NULL)
		body = json_dumps_short(rep.body, JSON_COMPACT);
	m.u.reply.id = req->id;
	m.u.reply.ok = rc == 0;
	m.u.reply.code = (char *)rep.code;
	m.u.reply.message = rep.message;
	m.u.reply.db_url = s->st->url;
	m.u.reply.db_uuid = s->st->uuid;
	m.u.reply.db_devino = devino;
	m.u.reply.body = body;
	c->sent_ms = c->idle_ms = uv_now(s->loop);
	c->sent_lag = c->idle_lag = lag_note(s);
	c->served = true;
	chan_send(&c->chan, &m, NULL);
	free(body);
	free(rep.message);
	json_decref(rep.body);
}

/* Write message m into c's socket now, without waiting: true when the socket took the
 * whole frame, false when nothing of it was written (output of c's still waits, or the
 * socket is full: a peer that does not read) or, for a frame the socket took only part
 * of, when the peer is left with a cut frame. A reply this small is one buffer of the
 * socket's, taken whole or not at all. */
static bool control_send_now(struct ctl_conn *c, const struct proto_msg *m)
{
	struct proto_buf b;
	struct proto_err err;
	uv_os_fd_t fd;
	bool sent = false;

	if (c->chan.queued > 0 || c->chan.out.len > 0 ||
	    uv_fileno((uv_handle_t *)&c->chan.pipe, &fd) != 0)
		return false;
	proto_buf_init(&b);
	if (proto_msg_pack(m, &b, &err) == 0)
		sent = send(fd, b.data, b.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)b.len;
	proto_buf_free(&b);
	return sent;
}

/* Send c an error reply (id 0, `code`, `message`, naming this database) and close the
 * connection. The reply is written into the socket and the connection closed at once,
 * its descriptor with it; when the socket does not take the reply now, with `at_once`
 * the connection is closed untold, else the reply is queued and the connection closed
 * once it is written (its descriptor held until then, a loop turn at least), or at once
 * when it cannot be queued. */
static void control_close_telling(
    struct ctl_conn *c, const char *code, const char *message, bool at_once)
{
	struct sup *s = c->sup;
	struct proto_msg m = { .type = PROTO_REPLY };
	char devino[48];

	store_devino(s->st, devino);
	m.u.reply.ok = false;
	m.u.reply.code = (char *)code;
	m.u.reply.message = (char *)message;
	m.u.reply.db_url = s->st->url;
	m.u.reply.db_uuid = s->st->uuid;
	m.u.reply.db_devino = devino;
	if (control_send_now(c, &m) || at_once)
		chan_close(&c->chan, NULL);
	else if (chan_send(&c->chan, &m, NULL) == 0)
		chan_close_after_write(&c->chan);
	else
		chan_close(&c->chan, NULL);
}

/* Drop a peer whose frame was refused (malformed, or no request): logged, and the peer is
 * told why in a reply (id 0, code bad_request) before the connection is closed; closed at
 * once when even that cannot be sent. */
static void control_refused_cb(struct chan *ch, const char *why)
{
	struct ctl_conn *c = container_of(ch, struct ctl_conn, chan);
	char msg[1024];

	droplog_warn(&drop_malformed, "control peer pid %d dropped: %s", (int)c->pid, why);
	snprintf(msg, sizeof msg, "request refused, connection closed: %s", why);
	control_close_telling(c, "bad_request", msg, false);
}

/* Serve one request; anything else drops the peer. */
static void control_msg_cb(struct chan *ch, struct proto_msg *m)
{
	struct ctl_conn *c = container_of(ch, struct ctl_conn, chan);
	char why[128];

	if (m->type != PROTO_REQUEST) {
		snprintf(why, sizeof why, "it sent a %s message, not a request",
		    proto_type_name(m->type));
		control_refused_cb(ch, why);
	} else {
		control_request(c, &m->u.request);
	}
	proto_msg_free(m);
}

/* Take connection c out of the list of connections (nothing when it is not in it). */
static void control_unlink(struct ctl_conn *c)
{
	struct ctl_conn **pp;

	for (pp = &conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			c->next = NULL;
			return;
		}
	}
}

/* Log the drops of every cause counted and not told yet: those whose second is over, or
 * all with `at_end`. */
static void control_drops_flush(bool at_end)
{
	for (size_t i = 0; i < ARRAY_SIZE(drop_causes); i++)
		droplog_flush(drop_causes[i], at_end);
}

/* Forget a closed control connection; why it closed is logged unless it was closed idle,
 * to make room or refused, which was logged then. */
static void control_close_cb(struct chan *ch, const char *why)
{
	struct ctl_conn *c = container_of(ch, struct ctl_conn, chan);

	if (why != NULL && !c->evicted)
		droplog_warn(&drop_fault, "control peer pid %d dropped: %s", (int)c->pid, why);
	/* After control_close no sweep is left to tell what was counted. */
	if (!c->sup->ctl_open)
		control_drops_flush(true);
	control_unlink(c);
	free(c);
}

/* The connections open and not being closed. */
static int control_open_count(void)
{
	struct ctl_conn *c;
	int n = 0;

	for (c = conns; c != NULL; c = c->next)
		if (!c->evicted && !c->chan.closing && !c->chan.last)
			n++;
	return n;
}

/* Whether connection c has sent bytes not yet handled: read into its buffer, or still
 * waiting in its socket (a client's request written right after its connect, which the
 * loop has not read yet). */
static bool control_pending(struct ctl_conn *c)
{
	uv_os_fd_t fd;
	int n = 0;

	if (c->chan.rd.len > c->chan.rd.off)
		return true;
	return uv_fileno((uv_handle_t *)&c->chan.pipe, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 &&
	    n > 0;
}

/* Whether another open connection than c comes from the same process. */
static bool control_peer_shared(const struct ctl_conn *c)
{
	const struct ctl_conn *o;

	for (o = conns; o != NULL; o = o->next)
		if (o != c && o->pid == c->pid && !o->evicted && !o->chan.closing && !o->chan.last)
			return true;
	return false;
}

/* The connection a new one over the cap replaces. First one of a process that holds
 * several (autopack-ctl holds one at a time), then, in this order: one that never sent
 * anything, one that sent (part of) its first request not yet handled, one idle after a
 * request (the longest idle first), one whose reply is still unread (the oldest first);
 * the oldest first within the first two. So a client that holds one connection and
 * writes its request as it connects is not closed for processes that open connections
 * and send nothing, however fast they connect. A command runs inside the loop turn that
 * reads it, so none is ever mid-command. NULL when every connection but `except` is
 * already closing. */
static struct ctl_conn *control_victim(const struct ctl_conn *except)
{
	struct ctl_conn *c, *best = NULL;
	uint64_t best_at = 0, at;
	int best_rank = 0, rank;

	for (c = conns; c != NULL; c = c->next) {
		if (c == except || c->evicted || c->chan.closing || c->chan.last)
			continue;
		if (c->chan.queued > 0) {
			rank = 3;
			at = c->sent_ms;
		} else {
			rank = c->served ? 2 : control_pending(c) ? 1 : 0;
			at = c->idle_ms;
		}
		if (!control_peer_shared(c))
			rank += 4;
		if (best == NULL || rank < best_rank || (rank == best_rank && at < best_at)) {
			best = c;
			best_rank = rank;
			best_at = at;
		}
	}
	return best;
}

/* Close connection c to make room for a new one, its descriptor at once: a peer whose
 * socket takes the reply now is told why first; one whose reply is unread, or whose
 * socket is full, is closed untold. Under a flood libuv accepts every connection waiting
 * in one loop turn: a close that waited for the next turn would hold a descriptor for
 * each, past the cap, until none was left to read a peer's /proc or accept with. */
static void control_evict(struct sup *s, struct ctl_conn *c)
{
	char why[256];
	bool unread = c->chan.queued > 0;
	const char *state;

	if (unread)
		state = "had left its reply unread for";
	else if (c->served)
		state = "had sent no request for";
	else if (control_pending(c))
		state = "had sent part of a request in";
	else
		state = "had sent nothing in";
	snprintf(why, sizeof why,
	    "closed to make room for a new connection: %d control connections were open (the "
	    "most served at once) and this one %s %.1f s",
	    conn_max, state,
	    (double)(uv_now(s->loop) - (unread ? c->sent_ms : c->idle_ms)) / 1000.0);
	/* Out of the list at once: under a flood of connections many closes wait for the
	 * loop's next turn, and the list is looked through at every accept. */
	c->evicted = true;
	control_unlink(c);
	droplog_warn(&drop_room, "control peer pid %d closed: %s", (int)c->pid, why);
	if (unread)
		chan_close(&c->chan, NULL);
	else
		control_close_telling(c, "too_many_connections", why, true);
}

static void control_watch(struct sup *s);
static void control_claim_watch(struct sup *s);

/* Close the connections that hold a place doing nothing: a reply unread for
 * CONTROL_UNREAD_MS, no whole first request within CONTROL_FIRST_MS of the accept, no
 * request for CONTROL_IDLE_MS after the last; then see that the socket and the uuid claim
 * are still in place (control_watch, control_claim_watch). */
static void control_sweep_cb(uv_timer_t *t)
{
	struct sup *s = t->data;
	struct ctl_conn *c;
	char why[128];

	for (c = conns; c != NULL; c = c->next) {
		uint64_t span = c->served ? CONTROL_IDLE_MS : CONTROL_FIRST_MS;

		if (c->evicted || c->chan.closing || c->chan.last)
			continue;
		if (c->chan.queued > 0) {
			if (lag_wait_ms(s, c->sent_ms, c->sent_lag, CONTROL_UNREAD_MS) > 0)
				continue;
			snprintf(why, sizeof why,
			    "it does not read its replies (a reply unread for %d s)",
			    CONTROL_UNREAD_MS / 1000);
			chan_close(&c->chan, why);
		} else if (lag_wait_ms(s, c->idle_ms, c->idle_lag, span) == 0) {
			snprintf(why, sizeof why, "it sent no whole request for %llu s%s",
			    (unsigned long long)span / 1000,
			    c->served ? " after its last" : " after it connected");
			c->evicted = true;
			droplog_warn(
			    &drop_idle, "control peer pid %d closed: %s", (int)c->pid, why);
			chan_close(&c->chan, NULL);
		}
	}
	control_drops_flush(false);
	control_watch(s);
	control_claim_watch(s);
}

/* Whether the control peer `pid` runs a phase's code: a descendant of this supervisor,
 * which are its workers, their check commands and what those started (one orphaned by
 * its worker's death is the supervisor's child until it is killed). A check reaches a
 * --control socket put outside the runtime directories, and through it could stop the
 * supervisor, scale it up to its limit or cancel and retry phases. A peer gone before it
 * could be looked at is refused too: what it left connected may be its children; and so
 * is one whose /proc could not be read (no descriptor left). Says why into `why` (`n`
 * bytes). */
static bool control_phase_peer(struct sup *s, pid_t pid, char *why, size_t n)
{
	pid_t child = 0;
	int rc;

	/* A peer in a PID namespace this one cannot see (pid 0) is no descendant: those are
	 * seen from here, in whatever namespace they run. */
	if (pid <= 0)
		return false;
	rc = procs_descends_from(pid, getpid(), &child);
	if (rc == 0 || (rc < 0 && access("/proc/self/stat", R_OK) != 0))
		return false;
	/* Out of descriptors (ulimit -n) the peer is still there: that is said, not that it
	 * left. */
	if (rc < 0 && (errno == ENOENT || errno == ESRCH)) {
		snprintf(why, n,
		    "it was gone before it could be told apart from a phase's process (%s); "
		    "refused",
		    strerror(errno));
		return true;
	}
	if (rc < 0) {
		snprintf(why, n,
		    "it could not be told apart from a phase's process: reading /proc/%d failed "
		    "(%s%s); refused",
		    (int)pid, strerror(errno),
		    errno == EMFILE || errno == ENFILE ?
		        ": the supervisor has no descriptor left; raise ulimit -n or LimitNOFILE=" :
		        "");
		return true;
	}
	for (struct worker *w = s->workers; w != NULL; w = w->next)
		if (w->pid == child) {
			snprintf(why, n,
			    "it is a process of worker %d's phase (a check command or what it "
			    "started); phase code may not control the supervisor: refused",
			    w->id);
			return true;
		}
	snprintf(why, n,
	    "it descends from the supervisor (pid %d, a child not a worker: a phase's process "
	    "its worker left); phase code may not control the supervisor: refused",
	    (int)child);
	return true;
}

/* Accept a control connection from a peer of our own uid. */
static void control_conn_cb(uv_stream_t *server, int status)
{
	struct sup *s = server->data;
	struct ctl_conn *c, *victim;
	struct ucred cred;
	socklen_t len = sizeof cred;
	char why[256];
	uv_os_fd_t fd;

	if (status < 0) {
		droplog_warn(&drop_fault, "control socket: %s", uv_strerror(status));
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->sup = s;
	chan_init(s->loop, &c->chan, 1u << 20, control_msg_cb, control_close_cb);
	c->chan.on_refused = control_refused_cb;
	c->chan.max_queued = CONTROL_OUTPUT_MAX;
	c->chan.serial = true;
	c->idle_ms = uv_now(s->loop);
	c->idle_lag = lag_note(s);
	c->next = conns;
	conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->chan.pipe) != 0) {
		chan_close(&c->chan, "accept failed");
		return;
	}
	if (uv_fileno((uv_handle_t *)&c->chan.pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		chan_close(&c->chan, "cannot read peer credentials");
		return;
	}
	c->pid = cred.pid;
	c->uid = cred.uid;
	if (cred.uid != getuid()) {
		c->evicted = true;
		droplog_warn(&drop_uid, "control peer pid %d has uid %d, not %d; refused",
		    (int)cred.pid, (int)cred.uid, (int)getuid());
		chan_close(&c->chan, NULL);
		return;
	}
	if (control_phase_peer(s, cred.pid, why, sizeof why)) {
		c->evicted = true;
		droplog_warn(&drop_phase, "control peer pid %d closed: %s", (int)c->pid, why);
		chan_close(&c->chan, NULL);
		return;
	}
	if (control_open_count() > conn_max && (victim = control_victim(c)) != NULL)
		control_evict(s, victim);
	if (chan_start(&c->chan) != 0)
		chan_close(&c->chan, "cannot read the peer");
}

/* Choose the socket path: the flag, a relative one taken from the current directory (the
 * path is recorded in the database, where autopack-ctl run from anywhere else reads it),
 * else the default socket of the database (named by its uuid and file) in the private
 * runtime directory. NULL with a message logged when the current directory cannot be
 * read or the runtime directory is unsafe. */
static char *control_path(struct sup *s)
{
	struct store_err err;
	char *dir;

	if (s->cfg.control_path != NULL && s->cfg.control_path[0] == '/')
		return xstrdup(s->cfg.control_path);
	if (s->cfg.control_path != NULL) {
		if ((dir = store_path_absolute(s->cfg.control_path, NULL)) == NULL)
			log_error("--control %s is relative, and the current directory cannot be "
			          "read (%s); give an absolute path",
			    s->cfg.control_path, strerror(errno));
		return dir;
	}
	if ((dir = store_runtime_dir(&err)) == NULL) {
		log_error("%s; use --control PATH", err.text);
		return NULL;
	}
	free(dir);
	return store_runtime_socket(s->st);
}

/* Return 1 if a process accepts connections on the socket at `path`, 0 if none does (a
 * socket left by a process that is gone), -1 if it cannot be told. Never blocks. */
static int control_socket_live(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -1;
	strlcpy_ap(sa.sun_path, path, sizeof sa.sun_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
		rc = 1;
	else if (errno == EAGAIN || errno == EINPROGRESS) /* a full backlog: live too */
		rc = 1;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		rc = 0;
	else
		rc = -1;
	close(fd);
	return rc;
}

/* Give the listening socket bound at `tmp` the name `path` in one step, never over a
 * socket on which a live process answers: one left by a dead process is replaced. 0, or
 * -1 with the reason in `why` (`n` bytes). */
static int control_publish(const char *tmp, const char *path, bool chosen, char *why, size_t n)
{
	struct stat sb;

	for (int tries = 0; tries < 5; tries++) {
		int live;

		if (link(tmp, path) == 0)
			return 0;
		if (errno != EEXIST) {
			snprintf(why, n, "control socket %s: %s", path, strerror(errno));
			return -1;
		}
		if (lstat(path, &sb) != 0)
			continue;
		if (!S_ISSOCK(sb.st_mode)) {
			snprintf(
			    why, n, "%s exists and is not a socket; refusing to replace it", path);
			return -1;
		}
		live = control_socket_live(path);
		if (live != 0) {
			snprintf(why, n, "control socket %s: %s; refusing to replace it%s", path,
			    live > 0 ? "another process (a live supervisor) answers on it" :
			               "cannot tell whether a process answers on it",
			    chosen ? " (choose another --control PATH)" : "");
			return -1;
		}
		log_info(
		    "control socket %s was left by a process that is gone; replacing it", path);
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(why, n, "removing the stale control socket %s: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	snprintf(why, n, "control socket %s keeps reappearing; refusing to replace it", path);
	return -1;
}

/* Say in `why` why the socket for `path` could not be made under its private name, with
 * libuv's error `rc`: libuv reports a directory that does not exist as EACCES, so the
 * directory is looked at first. */
static void control_bind_error(const char *path, int rc, char *why, size_t n)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	struct stat sb;

	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		strcpy(dir, ".");
	if (stat(dir, &sb) != 0)
		snprintf(
		    why, n, "control socket %s: its directory %s: %s", path, dir, strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		snprintf(why, n, "control socket %s: %s is not a directory", path, dir);
	else if (rc == UV_EACCES || rc == UV_EPERM || rc == UV_EROFS)
		snprintf(why, n,
		    "control socket %s: %s: a socket cannot be made in its directory %s; choose "
		    "a directory this user may write with --control PATH",
		    path, uv_strerror(rc), dir);
	else
		snprintf(why, n, "control socket %s: %s", path, uv_strerror(rc));
	free(dir);
}

/* Bind `server` (initialised here) and listen on it at s->control_path, published in
 * one step under that name, and note the socket's device and inode; 0, or -1 with the
 * reason in `why` (`n` bytes) and `server` closed (`done` called with it). */
static int control_bind(struct sup *s, uv_pipe_t *server, uv_close_cb done, char *why, size_t n)
{
	struct sockaddr_un sa;
	struct stat sb;
	char *tmp, *bound = NULL;
	int dirfd = -1;
	mode_t old;
	int rc;

	uv_pipe_init(s->loop, server, 0);
	server->data = s;
	if (strlen(s->control_path) >= sizeof sa.sun_path) {
		snprintf(why, n,
		    "control socket path too long (%zu bytes, at most %zu): %s; use a shorter "
		    "--control PATH",
		    strlen(s->control_path), sizeof sa.sun_path - 1, s->control_path);
		uv_close((uv_handle_t *)server, done);
		return -1;
	}
	/* Bound and listening under a private name first, then linked into place: a client
	 * never finds a socket that does not answer yet, and an existing one is never
	 * replaced while it answers. A private name longer than a socket's name may be is
	 * made in the same directory and bound through the directory's descriptor
	 * (/proc/self/fd/N/.PID.new), so that every path a socket may have is taken,
	 * whatever this process's pid. */
	tmp = xasprintf("%s.%ld.new", s->control_path, (long)getpid());
	if (strlen(tmp) >= sizeof sa.sun_path) {
		char *dir = xstrdup(s->control_path), *slash = strrchr(dir, '/');

		if (slash != NULL && slash != dir)
			*slash = '\0';
		else if (slash != NULL)
			slash[1] = '\0';
		dirfd = open(slash != NULL ? dir : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		free(tmp);
		tmp = xasprintf("%s/.%ld.new", slash != NULL ? dir : ".", (long)getpid());
		bound = xasprintf("/proc/self/fd/%d/.%ld.new", dirfd, (long)getpid());
		free(dir);
	}
	unlink(tmp);
	old = umask(077);
	rc = bound != NULL && dirfd < 0 ? UV_ENOENT :
	                                  uv_pipe_bind(server, bound != NULL ? bound : tmp);
	umask(old);
	if (dirfd >= 0)
		close(dirfd);
	free(bound);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)server, 16, control_conn_cb);
	if (rc != 0) {
		control_bind_error(s->control_path, rc, why, n);
		uv_close((uv_handle_t *)server, done);
		free(tmp);
		return -1;
	}
	chmod(tmp, 0600);
	rc = control_publish(tmp, s->control_path, s->cfg.control_path != NULL, why, n);
	unlink(tmp);
	free(tmp);
	if (rc == 0 && lstat(s->control_path, &sb) != 0) {
		snprintf(why, n, "control socket %s: %s", s->control_path, strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		uv_close((uv_handle_t *)server, done);
		return -1;
	}
	ctl_dev = sb.st_dev;
	ctl_ino = sb.st_ino;
	return 0;
}

/* Free a listening handle made by control_watch once closed. */
static void control_listener_free_cb(uv_handle_t *h)
{
	free(h);
}

/* Close the listening handle, freeing it when control_watch made it. */
static void control_listener_close(struct sup *s)
{
	uv_close((uv_handle_t *)ctl_listener,
	    ctl_listener == &s->ctl_server ? NULL : control_listener_free_cb);
	ctl_listener = NULL;
}

/* Whether `path` names a file right in directory `dir`. */
static bool control_in_dir(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/' && strchr(path + n + 1, '/') == NULL;
}

/* Make the control socket again when its name was removed while the supervisor runs (rm,
 * a cleaner of /tmp or of the runtime directory): without it no live command reaches the
 * supervisor. Its directory is made again too when it is the default one. A name another
 * file took is left alone. What could not be undone is logged once, until the socket is
 * in place again. */
static void control_watch(struct sup *s)
{
	struct store_err err;
	struct stat sb;
	uv_pipe_t *again;
	char *dir = NULL, why[1024];

	if (lstat(s->control_path, &sb) == 0) {
		if (sb.st_dev == ctl_dev && sb.st_ino == ctl_ino) {
			ctl_loss_told = false;
		} else if (!ctl_loss_told) {
			ctl_loss_told = true;
			log_warn(
			    "control socket %s: another file took its name; live commands "
			    "(autopack-ctl status, stop) cannot reach this supervisor until it "
			    "is removed, when the supervisor makes its socket again",
			    s->control_path);
		}
		return;
	}
	if (errno != ENOENT)
		return;
	if (s->cfg.control_path == NULL && (dir = store_runtime_dir(&err)) == NULL)
		snprintf(why, sizeof why, "%s", err.text);
	else if (dir != NULL && !control_in_dir(s->control_path, dir))
		snprintf(why, sizeof why,
		    "its directory is gone, and the runtime directory is now %s", dir);
	else
		why[0] = '\0';
	free(dir);
	again = why[0] != '\0' ? NULL : xcalloc(1, sizeof *again);
	if (again == NULL ||
	    control_bind(s, again, control_listener_free_cb, why, sizeof why) != 0) {
		if (!ctl_loss_told)
			log_warn(
			    "control socket %s was removed, and cannot be made again: %s; live "
			    "commands (autopack-ctl status, stop) cannot reach this supervisor",
			    s->control_path, why);
		ctl_loss_told = true;
		return;
	}
	control_listener_close(s);
	ctl_listener = again;
	ctl_loss_told = false;
	log_warn(
	    "control socket %s was removed by another program; made it again", s->control_path);
}

/* Keep the uuid claim (store_runtime_claim_keep) while the supervisor runs, saying when
 * it was taken again. A claim another process took meanwhile (a copy's supervisor started
 * while it was gone) is said once, until it can be taken again. */
static void control_claim_watch(struct sup *s)
{
	struct store_err err;
	int rc = store_runtime_claim_keep(&s->claim_fd, s->st, &err);

	if (rc < 0) {
		if (!ctl_claim_told)
			log_warn("the uuid claim of %s was removed, and cannot be taken again: %s",
			    s->st->url, err.text);
		ctl_claim_told = true;
		return;
	}
	ctl_claim_told = false;
	if (rc > 0)
		log_warn("the uuid claim of %s was removed by another program; took it again",
		    s->st->url);
}

/* The control connections served at once under the process's limit of open files. */
static int control_conn_max(void)
{
	struct rlimit files;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == RLIM_INFINITY)
		return CONTROL_CONN_MAX;
	n = files.rlim_cur / CONTROL_FILES_SHARE;
	return n >= CONTROL_CONN_MAX ? CONTROL_CONN_MAX : n >= 2 ? (int)n : 2;
}

/* Remove the control sockets in the runtime directory `dir` on which nobody listens (a
 * connect is refused): those of supervisors that were killed, which nothing else removes
 * (a PostgreSQL supervisor's is named by its pid, a SQLite one's by a file that may never
 * be drained again). Only "*.sock" sockets of this user right in `dir` are looked at (a
 * socket being made has another name until it listens), and one is removed only while the
 * name still holds the socket that refused. Says how many were removed. */
static void control_sweep_dead(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int removed = 0;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		struct stat before, after;
		char *path;

		if (len < 6 || strcmp(e->d_name + len - 5, ".sock") != 0)
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (lstat(path, &before) == 0 && S_ISSOCK(before.st_mode) &&
		    before.st_uid == getuid() &&
		    strlen(path) < sizeof(struct sockaddr_un){ 0 }.sun_path &&
		    control_socket_live(path) == 0 && lstat(path, &after) == 0 &&
		    after.st_dev == before.st_dev && after.st_ino == before.st_ino &&
		    unlink(path) == 0)
			removed++;
		free(path);
	}
	closedir(d);
	if (removed > 0)
		log_info("removed %d control socket(s) in %s on which nobody listened (left by "
		         "supervisors that were killed)",
		    removed, dir);
}

/* Bind and listen on the control socket; -1 (logged) on failure. */
int control_listen(struct sup *s)
{
	struct store_err err;
	char why[1024], *dir;

	if ((s->control_path = control_path(s)) == NULL)
		return -1;
	if (control_bind(s, &s->ctl_server, NULL, why, sizeof why) != 0) {
		log_error("%s", why);
		return -1;
	}
	if (s->cfg.control_path == NULL && (dir = store_runtime_dir(&err)) != NULL) {
		control_sweep_dead(dir);
		free(dir);
	}
	ctl_listener = &s->ctl_server;
	s->ctl_open = true;
	conn_max = control_conn_max();
	if (conn_max < CONTROL_CONN_MAX)
		log_warn(
		    "control socket: at most %d connection(s) at once, not %d: the connections "
		    "take an eighth of the open files this process may have (ulimit -n) at "
		    "most, so that a flood of them leaves the rest to the workers and the "
		    "database",
		    conn_max, CONTROL_CONN_MAX);
	uv_timer_init(s->loop, &ctl_sweep);
	ctl_sweep.data = s;
	uv_timer_start(&ctl_sweep, control_sweep_cb, CONTROL_SWEEP_MS, CONTROL_SWEEP_MS);
	return 0;
}

/* Stop listening, remove the socket and close the connections. */
void control_close(struct sup *s)
{
	struct ctl_conn *c, *next;
	struct stat sb;

	if (!s->ctl_open)
		return;
	s->ctl_open = false;
	control_listener_close(s);
	uv_close((uv_handle_t *)&ctl_sweep, NULL);
	/* Only our own socket is removed, never one that replaced it. */
	if (lstat(s->control_path, &sb) == 0 && sb.st_dev == ctl_dev && sb.st_ino == ctl_ino)
		unlink(s->control_path);
	for (c = conns; c != NULL; c = next) {
		next = c->next;
		chan_close(&c->chan, NULL);
	}
	control_drops_flush(true);
}
