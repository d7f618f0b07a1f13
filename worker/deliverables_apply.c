/*
 * Writing deliverables into the workspace, confined.
 *
 * Rules, each named in refusals: a path must obey common/relpath.h (relative, free of
 * backslashes, control characters and ".." components, outside the reserved directories,
 * naming a file), no two paths of a set may clash (one file the directory of another),
 * and each must lie under the phase's scope. Walking it from the workspace one
 * component at a time, an existing component must be a directory or a symlink whose real
 * target stays inside the workspace, in scope and out of the reserved directories; the
 * file itself must not be a directory, a special file, or a symlink leaving the
 * workspace. A component that exists and is no directory, and a directory or a special
 * file at the file's own path, are told apart from the rules' refusals (DLV_ECONFLICT):
 * the path is in scope, and what is in the way is the workspace's (an earlier phase of
 * the run wrote "a.py", and this one writes "a.py/x.py"; a check made a FIFO there).
 * Files are written to a temporary name in the same directory (a new file 0644 less the
 * umask), synced and renamed over the target (keeping the old file's mode). Neither the
 * database's files nor the log file are ever written or deleted.
 */
#include "worker/deliverables.h"
#include "common/relpath.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* True when normalised `rel` is inside one of the scope's entries. An entry of "" or "."
 * grants the whole workspace; malformed entries grant nothing. */
static bool dlv_in_scope(const struct dlv_scope *scope, const char *rel)
{
	char e[PATH_MAX];
	size_t i;

	for (i = 0; i < scope->npaths + scope->ndeliverables; i++) {
		const char *raw = i < scope->npaths ? scope->paths[i] :
		                                      scope->deliverables[i - scope->npaths];
		const char *s = raw;

		while (*s == '.' && s[1] == '/')
			s += 2;
		if (s[0] == '\0' || strcmp(s, ".") == 0)
			return true;
		if (relpath_norm(raw, e, sizeof e) == NULL && relpath_under(rel, e))
			return true;
	}
	return false;
}

/* Real path of the workspace, or NULL with `err`. */
static char *dlv_workspace_real(const char *workspace, char *err, size_t errlen)
{
	char *real = realpath(workspace, NULL);
	struct stat st;

	if (real == NULL || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "workspace %s: %s", workspace,
		    real == NULL ? strerror(errno) : "not a directory");
		free(real);
		return NULL;
	}
	return real;
}

/* The workspace of one apply: its directory, opened once (or lent by the caller), and its
 * real path, resolved only when a symlink needs it. */
struct dlv_ws {
	const char *path;
	int fd;     /* -1: not opened yet */
	char *real; /* NULL: not resolved yet */
	bool lent;  /* fd is the caller's, left open */
};

/* Open the workspace directory unless it is open; -1 with err set on failure. */
static int dlv_ws_open(struct dlv_ws *ws, char *err, size_t errlen)
{
	if (ws->fd >= 0)
		return 0;
	ws->fd = open(ws->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ws->fd < 0) {
		snprintf(err, errlen, "workspace %s: %s", ws->path,
		    errno == ENOTDIR ? "not a directory" : strerror(errno));
		return -1;
	}
	return 0;
}

/* The workspace's real path (resolved at the first call), or NULL with err set. */
static const char *dlv_ws_real(struct dlv_ws *ws, char *err, size_t errlen)
{
	if (ws->real == NULL)
		ws->real = dlv_workspace_real(ws->path, err, errlen);
	return ws->real;
}

/* Close the workspace directory (unless lent) and forget its real path. */
static void dlv_ws_close(struct dlv_ws *ws)
{
	if (ws->fd >= 0 && !ws->lent)
		close(ws->fd);
	free(ws->real);
	ws->fd = -1;
	ws->real = NULL;
}

/* Relative part of `real` inside `ws_real`, or NULL when it is outside. */
static const char *dlv_inside(const char *ws_real, const char *real)
{
	size_t k = strlen(ws_real);

	if (strcmp(ws_real, "/") == 0)
		return real + 1;
	if (strncmp(real, ws_real, k) != 0)
		return NULL;
	if (real[k] == '\0')
		return real + k;
	return real[k] == '/' ? real + k + 1 : NULL;
}

/* The reserved directory normalised workspace-relative `rel` lies in (the .autopack
 * directory at the top, a .git directory anywhere, in any case: relpath_norm's rules), or
 * NULL. */
static const char *dlv_reserved(const char *rel)
{
	for (const char *s = rel; *s != '\0';) {
		size_t k = strcspn(s, "/");

		if (k == 4 && strncasecmp(s, ".git", 4) == 0)
			return ".git";
		if (s == rel && k == 9 && strncasecmp(s, ".autopack", 9) == 0)
			return ".autopack";
		s += k;
		s += strspn(s, "/");
	}
	return NULL;
}

/* Whether `joined`, where a symlink at `prefix` leads with the rest of `path`, may be
 * written: in scope and in no reserved directory (a check, which may not write its
 * .autopack/logs, left a link to it for the worker to write through). Returns 0 or -1
 * with `err`. */
static int dlv_link_allowed(const struct dlv_scope *scope, const char *path, const char *prefix,
    const char *joined, char *err, size_t errlen)
{
	const char *reserved = dlv_reserved(joined);

	if (reserved != NULL) {
		snprintf(err, errlen,
		    "path \"%s\": symlink %s leads into the %s directory, which is reserved (-> %s)",
		    path, prefix, reserved, joined);
		return -1;
	}
	if (!dlv_in_scope(scope, joined)) {
		snprintf(err, errlen,
		    "path \"%s\": symlink %s leads outside the phase's scope (-> %s)", path, prefix,
		    joined);
		return -1;
	}
	return 0;
}

/* Check a symlink at workspace-relative `prefix`: its real target must be inside the
 * workspace and, joined with `rest`, in scope and in no reserved directory. Returns 0 or
 * -1 with `err`. */
static int dlv_check_link(struct dlv_ws *ws, const struct dlv_scope *scope, const char *path,
    const char *prefix, const char *rest, char *err, size_t errlen)
{
	const char *ws_real = dlv_ws_real(ws, err, errlen);
	char *full, *target;
	const char *inside;
	int rc = 0;

	if (ws_real == NULL)
		return -1;
	full = xasprintf("%s/%s", ws_real, prefix);
	target = realpath(full, NULL);
	if (target == NULL) {
		snprintf(err, errlen, "path \"%s\": symlink %s points to nothing", path, prefix);
		rc = -1;
	} else if ((inside = dlv_inside(ws_real, target)) == NULL) {
		snprintf(err, errlen, "path \"%s\": symlink %s leaves the workspace (-> %s)", path,
		    prefix, target);
		rc = -1;
	} else {
		char *joined = xasprintf(
		    "%s%s%s", inside, inside[0] != '\0' && rest[0] ? "/" : "", rest);

		rc = dlv_link_allowed(scope, path, prefix, joined, err, errlen);
		free(joined);
	}
	free(target);
	free(full);
	return rc;
}

/* Check the directory a symlink at workspace-relative `prefix` led to, opened as `fd`, as
 * dlv_check_link checked the link: by where it is (/proc/self/fd), since the link may have
 * been changed between that check and the open (another run's check, in a workspace that
 * runs share). Returns 0 or -1 with `err`. */
static int dlv_check_opened(struct dlv_ws *ws, const struct dlv_scope *scope, const char *path,
    const char *prefix, const char *rest, int fd, char *err, size_t errlen)
{
	const char *ws_real = dlv_ws_real(ws, err, errlen), *inside;
	char link[64], where[PATH_MAX];
	ssize_t n;
	int rc = -1;

	if (ws_real == NULL)
		return -1;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if ((n = readlink(link, where, sizeof where - 1)) < 0) {
		snprintf(err, errlen, "path \"%s\": cannot tell where symlink %s leads: %s: %s",
		    path, prefix, link, strerror(errno));
		return -1;
	}
	where[n] = '\0';
	if ((inside = dlv_inside(ws_real, where)) != NULL) {
		char *joined = xasprintf(
		    "%s%s%s", inside, inside[0] != '\0' && rest[0] ? "/" : "", rest);

		rc = dlv_in_scope(scope, joined) && dlv_reserved(joined) == NULL ? 0 : -1;
		free(joined);
	}
	if (rc != 0)
		snprintf(err, errlen,
		    "path \"%s\": symlink %s was changed while it was checked, to lead outside the "
		    "workspace or the phase's scope, or into a reserved directory (-> %s)",
		    path, prefix, where);
	return rc;
}

/* Close a directory dlv_walk returned, unless it is the workspace's own. */
static void dlv_dir_close(const struct dlv_ws *ws, int dirfd)
{
	if (dirfd >= 0 && dirfd != ws->fd)
		close(dirfd);
}

/* True when `name` in the directory open as `dirfd` is a file of the protected database:
 * the name is the database's file name, alone or followed by '-' or '.' (its -wal, -shm,
 * .lock, backups), and that directory is the database's (by device and inode, so a
 * symlinked way there is caught too). The name is compared first: the two `stat`s are
 * made only for a name that could be one of the database's files. */
static bool dlv_protected(const struct dlv_scope *scope, int dirfd, const char *name)
{
	const char *base;
	struct stat d, p;
	size_t n;
	char *dir;
	bool same;

	if (scope->protect == NULL || (base = strrchr(scope->protect, '/')) == NULL)
		return false;
	n = strlen(base + 1);
	if (n == 0 || strncmp(name, base + 1, n) != 0 || strchr("-.", name[n]) == NULL)
		return false; /* not the name, nor it and "-..." or "...." */
	dir = base == scope->protect ? xstrdup("/") :
	                               xstrndup(scope->protect, (size_t)(base - scope->protect));
	same = fstat(dirfd, &d) == 0 && stat(dir, &p) == 0 && d.st_dev == p.st_dev &&
	    d.st_ino == p.st_ino;
	free(dir);
	return same;
}

/* True when `st`, a regular file the path reaches, is the file scope->keep names (the log
 * file): the same device and inode, however reached (a hard link too). */
static bool dlv_kept(const struct dlv_scope *scope, const struct stat *st)
{
	struct stat k;

	return scope->keep != NULL && stat(scope->keep, &k) == 0 && k.st_dev == st->st_dev &&
	    k.st_ino == st->st_ino;
}

/* The mode dlv_walk gives a file that does not exist yet: it is made 0644 less the
 * umask, as any program makes a file (0600 under the unit's UMask=0077). */
#define DLV_MODE_NEW ((mode_t)-1)

/* What a file of mode `mode` that is not a directory is, in words. */
static const char *dlv_kind(mode_t mode)
{
	return S_ISREG(mode) ? "a file" :
	    S_ISLNK(mode)    ? "a symbolic link to something that is not a directory" :
	    S_ISFIFO(mode)   ? "a FIFO" :
	    S_ISSOCK(mode)   ? "a socket" :
	                       "a device";
}

/* Say in `err` that `what` (workspace-relative) is, as `kind` says, in the way of `path`:
 * `as_dir`, the path needs it as a directory; else the path names that directory as a
 * file. */
static void dlv_conflict(
    const char *path, const char *what, const char *kind, bool as_dir, char *err, size_t errlen)
{
	snprintf(err, errlen,
	    "path \"%s\": %s is %s in the workspace, and this path %s (an earlier phase of the "
	    "run, or another program, made it so: the run's deliverables overlap)",
	    path, what, kind, as_dir ? "needs it as a directory" : "names it as a file");
}

/*
 * Walk `rel` from the open workspace directory: check every component and, when `create`,
 * make missing directories. Returns an open descriptor of the parent directory (the
 * workspace's own descriptor for a file at the top; close it with dlv_dir_close), with
 * its last component in *name and in *mode the mode a file written there keeps (the
 * existing regular file's, else DLV_MODE_NEW); -2 when a directory is missing and !create; -3
 * with `err` when the file system refused to make a missing one (no space, read-only) or
 * the worker may not open or look into an existing one (its mode and owner named); -4
 * with `err` when a component exists and is no directory, or the path itself is a
 * directory (dlv_conflict) or a FIFO, a socket or a device; or -1 with `err`.
 */
static int dlv_walk(struct dlv_ws *ws, const struct dlv_scope *scope, const char *path, char *rel,
    bool create, const char **name, mode_t *mode, char *err, size_t errlen)
{
	int dirfd = ws->fd, failed = -1;
	char *comp = rel, *slash;
	struct stat st;

	while ((slash = strchr(comp, '/')) != NULL) {
		bool existing_dir = false; /* a directory there that would not open */
		int next, open_errno;

		*slash = '\0';
		/* A real directory (not a symlink) opens at once; anything else is looked at
		 * to tell what it is. */
		next = openat(dirfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next >= 0)
			goto descend;
		open_errno = errno;
		if (open_errno == ENOENT || fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno != ENOENT) {
				snprintf(
				    err, errlen, "path \"%s\": %s: %s", path, rel, strerror(errno));
				if (errno == EACCES || errno == EPERM)
					failed = -3;
				goto fail;
			}
			if (!create) {
				*slash = '/';
				dlv_dir_close(ws, dirfd);
				return -2;
			}
			if (mkdirat(dirfd, comp, 0755) != 0 && errno != EEXIST) {
				snprintf(err, errlen, "path \"%s\": cannot create directory %s: %s",
				    path, rel, strerror(errno));
				failed = -3;
				goto fail;
			}
			next = openat(dirfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		} else if (S_ISLNK(st.st_mode)) {
			if (dlv_check_link(ws, scope, path, rel, slash + 1, err, errlen) < 0)
				goto fail;
			next = openat(dirfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (next < 0 && errno == ENOTDIR) {
				dlv_conflict(path, rel, dlv_kind(st.st_mode), true, err, errlen);
				failed = -4;
				goto fail;
			}
			if (next >= 0 &&
			    dlv_check_opened(ws, scope, path, rel, slash + 1, next, err, errlen) <
			        0) {
				close(next);
				goto fail;
			}
		} else if (S_ISDIR(st.st_mode)) {
			next = -1;
			existing_dir = true;
			errno = open_errno;
		} else {
			dlv_conflict(path, rel, dlv_kind(st.st_mode), true, err, errlen);
			failed = -4;
			goto fail;
		}
		if (next < 0) {
			/* Refused for its permissions, the directory is in scope all the same: the
			 * worker cannot write there. */
			bool denied = errno == EACCES || errno == EPERM;

			if (denied && existing_dir)
				snprintf(err, errlen,
				    "path \"%s\": cannot open directory %s: %s (its mode %04o, owner uid"
				    " %u gid %u; this worker runs as uid %u gid %u)",
				    path, rel, strerror(errno), (unsigned)(st.st_mode & 07777),
				    (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)geteuid(),
				    (unsigned)getegid());
			else
				snprintf(err, errlen, "path \"%s\": cannot open %s: %s", path, rel,
				    strerror(errno));
			if (denied)
				failed = -3;
			goto fail;
		}
descend:
		dlv_dir_close(ws, dirfd);
		dirfd = next;
		*slash = '/';
		comp = slash + 1;
	}
	*mode = DLV_MODE_NEW;
	if (dlv_protected(scope, dirfd, comp)) {
		snprintf(err, errlen, "path \"%s\": is the database %s or one of its files", path,
		    scope->protect);
		goto fail;
	}
	if (fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode)) {
			dlv_conflict(path, rel, "a directory", false, err, errlen);
			failed = -4;
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			if (dlv_check_link(ws, scope, path, rel, "", err, errlen) < 0)
				goto fail;
		} else if (!S_ISREG(st.st_mode)) {
			/* A FIFO, a socket or a device at the file's own path (a check made it):
			 * in the way as a directory there is, and never written over. */
			snprintf(err, errlen,
			    "path \"%s\": %s is %s in the workspace, not a regular file (a check "
			    "command or another program made it): remove it",
			    path, rel, dlv_kind(st.st_mode));
			failed = -4;
			goto fail;
		} else if (dlv_kept(scope, &st)) {
			/* Replaced or removed, it would take every line logged so far with it. */
			snprintf(err, errlen,
			    "path \"%s\": is the log file %s of the supervisor and its workers "
			    "(--log-file)",
			    path, scope->keep);
			goto fail;
		} else {
			/* Its permissions, but never set-user-ID or set-group-ID: a file
			 * made so in the workspace is rewritten without either bit. */
			*mode = st.st_mode & 01777;
		}
	}
	*name = comp;
	return dirfd;
fail:
	if (slash != NULL)
		*slash = '/';
	dlv_dir_close(ws, dirfd);
	return failed;
}

/* The most of a path a message quotes when it breaks a rule (a path too long among
 * them): its start and its end, the middle left out. */
#define DLV_PATH_SHOWN 512

/* Check normalised rules and scope of one path. Returns 0 or -1 with `err`. */
static int dlv_check_rules(
    const struct dlv_scope *scope, const char *path, char *rel, size_t n, char *err, size_t errlen)
{
	const char *rule = relpath_file(path, rel, n);
	char shown[DLV_PATH_SHOWN];

	if (rule != NULL) {
		snprintf(
		    err, errlen, "path \"%s\": %s", str_elide(shown, path, sizeof shown), rule);
		return -1;
	}
	if (!dlv_in_scope(scope, rel)) {
		snprintf(err, errlen, "path \"%s\": outside the phase's scope", path);
		return -1;
	}
	return 0;
}

/* Check that `path` may be written under the workspace within the scope; DLV_ESCOPE,
 * DLV_ECONFLICT or DLV_EIO (the workspace, or a directory on the path, that the worker may
 * not open or look into) with err set. */
int dlv_check_path(const char *workspace, int wsfd, const struct dlv_scope *scope, const char *path,
    char *err, size_t errlen)
{
	struct dlv_ws ws = { workspace, wsfd >= 0 ? wsfd : -1, NULL, wsfd >= 0 };
	char rel[PATH_MAX];
	const char *name;
	mode_t mode;
	int fd, rc;

	if (dlv_check_rules(scope, path, rel, sizeof rel, err, errlen) < 0)
		return DLV_ESCOPE;
	if (dlv_ws_open(&ws, err, errlen) < 0)
		return DLV_EIO;
	fd = dlv_walk(&ws, scope, path, rel, false, &name, &mode, err, errlen);
	rc = fd >= 0 || fd == -2 ? DLV_OK :
	    fd == -4             ? DLV_ECONFLICT :
	    fd == -3             ? DLV_EIO :
	                           DLV_ESCOPE;
	dlv_dir_close(&ws, fd);
	dlv_ws_close(&ws);
	return rc;
}

/* The most temporary names dlv_write tries for one file: each one taken (left by a
 * worker killed while it wrote, whose pid this one has now, or put there by a check)
 * moves it to the next. */
#define DLV_TMP_TRIES 64

/* Write `f` under directory `dirfd` as `name` with `mode` (DLV_MODE_NEW: 0644 less the
 * umask): temporary file, fsync, rename, fsync of the directory. */
static int dlv_write(
    int dirfd, const char *name, mode_t mode, const struct dlv_file *f, char *err, size_t errlen)
{
	static unsigned counter;
	static pid_t pid; /* the worker's, asked once: the name only has to be unique */
	char *tmp = NULL;
	size_t off = 0;
	int fd = -1;

	assert(f->mode != DLV_DELETE && (f->content != NULL || f->content_len == 0));
	assert(strchr(name, '/') == NULL); /* dlv_walk hands over the last component */
	if (pid == 0)
		pid = getpid();
	for (int k = 0; fd < 0 && k < DLV_TMP_TRIES; k++) {
		free(tmp);
		/* Named after the file, but within NAME_MAX even for a name of 255 bytes. */
		tmp = xasprintf(".%.200s.autopack-%ld-%u.tmp", name, (long)pid, counter++);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    mode == DLV_MODE_NEW ? 0644 : mode);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		int e = errno;

		/* Not this name's to remove: another file had it. */
		free(tmp);
		tmp = NULL;
		errno = e;
		goto fail;
	}
	while (off < f->content_len) {
		ssize_t w = write(fd, f->content + off, f->content_len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if ((mode != DLV_MODE_NEW && fchmod(fd, mode) != 0) || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) != 0)
		goto fail;
	fsync(dirfd);
	free(tmp);
	return 0;
fail:
	snprintf(err, errlen, "path \"%s\": cannot write: %s", f->path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		unlinkat(dirfd, tmp, 0);
	free(tmp);
	return -1;
}

/* Directories the check keeps open for the writes (a set may hold DLV_FILES_MAX files in
 * as many directories; the others are walked again). */
#define DLV_KEEP_DIRS 32

/* How many directories the check keeps open: DLV_KEEP_DIRS, or a quarter of the
 * descriptors this process may open when that is fewer (a low `ulimit -n`): the others
 * are the walks', the writes' and the rest of the worker's. Only a set of more than one
 * file asks the limit: one file keeps at most one directory, and a limit below four
 * descriptors leaves a worker none to run on. */
static size_t dlv_keep_max(size_t nfiles)
{
	struct rlimit rl;

	if (nfiles > 1 && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 < DLV_KEEP_DIRS)
		return (size_t)(rl.rlim_cur / 4);
	return DLV_KEEP_DIRS;
}

/* Where one file of a set goes, as the check found it. */
struct dlv_target {
	char *rel;        /* normalised (heap) */
	int dirfd;        /* its directory, open; -2: missing or not kept (walked again) */
	const char *name; /* in rel */
	mode_t mode;
};

/* Write or delete every file of the set in the workspace, all paths checked first (in
 * the same open workspace directory the writes go to, each directory walked once when
 * it exists); DLV_ESCOPE or DLV_EIO with err set at the first failure. */
int dlv_apply(const char *workspace, const struct dlv_scope *scope, const struct dlv_set *set,
    char *err, size_t errlen)
{
	struct dlv_ws ws = { workspace, -1, NULL, false };
	struct dlv_target *t = xcalloc(set->n + 1, sizeof *t);
	const char **paths = xcalloc(set->n + 1, sizeof *paths);
	size_t i, kept = 0, checked = 0, keep = dlv_keep_max(set->n);
	char rel[PATH_MAX];
	int rc = DLV_OK;

	/* Each path, then the set as a whole ("a" and "a/b.py" cannot both be files), all
	 * before the first write: a refused set writes nothing. */
	for (i = 0; i < set->n && rc == DLV_OK; i++, checked++) {
		paths[i] = set->files[i].path;
		t[i].dirfd = -2;
		if (dlv_check_rules(scope, paths[i], rel, sizeof rel, err, errlen) < 0) {
			rc = DLV_ESCOPE;
			continue;
		}
		t[i].rel = xstrdup(rel);
		if (dlv_ws_open(&ws, err, errlen) < 0) {
			rc = DLV_EIO;
		} else {
			int fd = dlv_walk(&ws, scope, paths[i], t[i].rel, false, &t[i].name,
			    &t[i].mode, err, errlen);
			if (fd == -1)
				rc = DLV_ESCOPE;
			else if (fd == -4)
				rc = DLV_ECONFLICT;
			else if (fd >= 0 && fd != ws.fd && kept >= keep)
				dlv_dir_close(&ws, fd);
			else if (fd >= 0) {
				kept += fd != ws.fd;
				t[i].dirfd = fd;
			}
		}
	}
	if (rc == DLV_OK && relpath_files_check("files", paths, set->n, err, errlen) != 0)
		rc = DLV_ESCOPE;
	if (rc == DLV_ECONFLICT)
		snprintf(err + strlen(err), errlen - strlen(err), "; nothing was written");
	free(paths);
	if (rc == DLV_OK && dlv_ws_open(&ws, err, errlen) < 0)
		rc = DLV_EIO;
	for (i = 0; i < set->n && rc == DLV_OK; i++) {
		const struct dlv_file *f = &set->files[i];
		int dirfd = t[i].dirfd;

		if (dirfd == -2) {
			dirfd = dlv_walk(&ws, scope, f->path, t[i].rel, f->mode != DLV_DELETE,
			    &t[i].name, &t[i].mode, err, errlen);
			if (dirfd == -2)
				continue; /* deleting under a directory that does not exist */
			if (dirfd < 0) {
				rc = dirfd == -3 ? DLV_EIO :
				    dirfd == -4  ? DLV_ECONFLICT :
				                   DLV_ESCOPE;
				break;
			}
		}
		if (f->mode == DLV_DELETE) {
			if (unlinkat(dirfd, t[i].name, 0) != 0 && errno != ENOENT) {
				snprintf(err, errlen, "path \"%s\": cannot delete: %s", f->path,
				    strerror(errno));
				rc = DLV_EIO;
			}
		} else if (dlv_write(dirfd, t[i].name, t[i].mode, f, err, errlen) < 0) {
			rc = DLV_EIO;
		}
		/* One walked again is closed at once: a set's directories are never all open. */
		if (dirfd != t[i].dirfd)
			dlv_dir_close(&ws, dirfd);
		if (scope->heartbeat != NULL && i + 1 < set->n)
			scope->heartbeat(scope->ctx);
	}
	for (i = 0; i < checked; i++) {
		dlv_dir_close(&ws, t[i].dirfd);
		free(t[i].rel);
	}
	free(t);
	dlv_ws_close(&ws);
	return rc;
}

/* Resolve a workspace-relative path to a regular file inside the workspace for reading;
 * NULL with err set otherwise. */
char *dlv_resolve_read(const char *workspace, const char *path, char *err, size_t errlen)
{
	char rel[PATH_MAX];
	const char *rule = relpath_norm(path, rel, sizeof rel);
	char *ws_real, *full, *real = NULL, shown[DLV_PATH_SHOWN];
	struct stat st;

	if (rule != NULL) {
		snprintf(
		    err, errlen, "path \"%s\": %s", str_elide(shown, path, sizeof shown), rule);
		return NULL;
	}
	ws_real = dlv_workspace_real(workspace, err, errlen);
	if (ws_real == NULL)
		return NULL;
	full = xasprintf("%s/%s", ws_real, rel);
	real = realpath(full, NULL);
	if (real == NULL) {
		snprintf(err, errlen, "path \"%s\": %s", path, strerror(errno));
	} else if (dlv_inside(ws_real, real) == NULL) {
		snprintf(err, errlen, "path \"%s\": leaves the workspace (-> %s)", path, real);
		free(real);
		real = NULL;
	} else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "path \"%s\": not a regular file", path);
		free(real);
		real = NULL;
	}
	free(full);
	free(ws_real);
	return real;
}

/* True when `set` writes (not deletes) the file at normalised `rel`. */
static bool dlv_set_writes(const struct dlv_set *set, const char *rel)
{
	char got[PATH_MAX];
	size_t j;

	for (j = 0; set != NULL && j < set->n; j++)
		if (set->files[j].mode != DLV_DELETE &&
		    relpath_norm(set->files[j].path, got, sizeof got) == NULL &&
		    strcmp(got, rel) == 0)
			return true;
	return false;
}

/* Count the deliverables absent from the workspace, naming them in `names`. */
size_t dlv_missing(const char *workspace, char *const *deliverables, size_t n,
    const struct dlv_set *written, char *names, size_t namelen)
{
	size_t i, missing = 0, used = 0;

	if (namelen > 0)
		names[0] = '\0';
	for (i = 0; i < n; i++) {
		char rel[PATH_MAX];
		struct stat st;
		bool present = false;
		char *full;

		if (deliverables[i][0] == '\0')
			continue;
		if (relpath_norm(deliverables[i], rel, sizeof rel) == NULL) {
			size_t k = strlen(deliverables[i]);
			bool dir = deliverables[i][k - 1] == '/';

			/* The set's own file was renamed into place a moment ago. */
			if (!dir && dlv_set_writes(written, rel))
				continue;
			full = xasprintf("%s/%s", workspace, rel);
			present = stat(full, &st) == 0 &&
			    (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
			free(full);
		}
		if (present)
			continue;
		missing++;
		if (used < namelen) {
			int w = snprintf(names + used, namelen - used, "%s%s",
			    missing > 1 ? ", " : "", deliverables[i]);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	return missing;
}
