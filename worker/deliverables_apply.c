/*
 * Writing deliverables into the workspace, confined.
 *
 * Rules, each named in refusals: a path must obey common/relpath.h (relative, free of
 * backslashes, control characters and ".." components, outside the reserved directories,
 * naming a file), no two paths of a set may clash (one file the directory of another),
 * and each must lie under the phase's scope. Walking it from the workspace one
 * component at a time, an existing component must be a directory or a symlink whose real
 * target stays inside the workspace (and in scope); the file itself must not be a
 * directory, a special file, or a symlink leaving the workspace. Files are written to a
 * temporary name in the same directory, synced and renamed over the target.
 */
#include "worker/deliverables.h"
#include "common/relpath.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Open the workspace directory by its real path (returned in *ws_real, a heap string);
 * -1 with err set on failure (nothing to free). */
static int dlv_workspace_open(const char *workspace, char **ws_real, char *err, size_t errlen)
{
	int fd;

	*ws_real = dlv_workspace_real(workspace, err, errlen);
	if (*ws_real == NULL)
		return -1;
	fd = open(*ws_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "workspace %s: %s", *ws_real, strerror(errno));
		free(*ws_real);
		*ws_real = NULL;
	}
	return fd;
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

/* Check a symlink at workspace-relative `prefix`: its real target must be inside the
 * workspace and, joined with `rest`, in scope. Returns 0 or -1 with `err`. */
static int dlv_check_link(const char *ws_real, const struct dlv_scope *scope, const char *path,
    const char *prefix, const char *rest, char *err, size_t errlen)
{
	char *full = xasprintf("%s/%s", ws_real, prefix);
	char *target = realpath(full, NULL);
	const char *inside;
	int rc = 0;

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
		if (!dlv_in_scope(scope, joined)) {
			snprintf(err, errlen,
			    "path \"%s\": symlink %s leads outside the phase's scope (-> %s)", path,
			    prefix, joined);
			rc = -1;
		}
		free(joined);
	}
	free(target);
	free(full);
	return rc;
}

/*
 * Walk `rel` from the workspace directory `wsfd`: check every component and, when `create`,
 * make missing directories. Returns an open descriptor of the parent directory (its last
 * component goes to *name), -2 when a directory is missing and !create, or -1 with `err`.
 */
static int dlv_walk(const char *ws_real, int wsfd, const struct dlv_scope *scope, const char *path,
    char *rel, bool create, const char **name, char *err, size_t errlen)
{
	int dirfd = dup(wsfd);
	char *comp = rel, *slash;
	struct stat st;

	if (dirfd < 0) {
		snprintf(err, errlen, "path \"%s\": %s", path, strerror(errno));
		return -1;
	}
	while ((slash = strchr(comp, '/')) != NULL) {
		int next;

		*slash = '\0';
		if (fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno != ENOENT) {
				snprintf(
				    err, errlen, "path \"%s\": %s: %s", path, rel, strerror(errno));
				goto fail;
			}
			if (!create) {
				*slash = '/';
				close(dirfd);
				return -2;
			}
			if (mkdirat(dirfd, comp, 0755) != 0 && errno != EEXIST) {
				snprintf(err, errlen, "path \"%s\": cannot create directory %s: %s",
				    path, rel, strerror(errno));
				goto fail;
			}
			next = openat(dirfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		} else if (S_ISLNK(st.st_mode)) {
			if (dlv_check_link(ws_real, scope, path, rel, slash + 1, err, errlen) < 0)
				goto fail;
			next = openat(dirfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		} else if (S_ISDIR(st.st_mode)) {
			next = openat(dirfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		} else {
			snprintf(err, errlen, "path \"%s\": %s is not a directory", path, rel);
			goto fail;
		}
		if (next < 0) {
			snprintf(err, errlen, "path \"%s\": cannot open %s: %s", path, rel,
			    strerror(errno));
			goto fail;
		}
		close(dirfd);
		dirfd = next;
		*slash = '/';
		comp = slash + 1;
	}
	if (fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "path \"%s\": is a directory", path);
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			if (dlv_check_link(ws_real, scope, path, rel, "", err, errlen) < 0)
				goto fail;
		} else if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "path \"%s\": is not a regular file", path);
			goto fail;
		}
	}
	*name = comp;
	return dirfd;
fail:
	if (slash != NULL)
		*slash = '/';
	close(dirfd);
	return -1;
}

/* Check normalised rules and scope of one path. Returns 0 or -1 with `err`. */
static int dlv_check_rules(
    const struct dlv_scope *scope, const char *path, char *rel, size_t n, char *err, size_t errlen)
{
	const char *rule = relpath_file(path, rel, n);

	if (rule != NULL) {
		snprintf(err, errlen, "path \"%s\": %s", path, rule);
		return -1;
	}
	if (!dlv_in_scope(scope, rel)) {
		snprintf(err, errlen, "path \"%s\": outside the phase's scope", path);
		return -1;
	}
	return 0;
}

/* Check that `path` may be written under the workspace within the scope: its rules,
 * then its walk from the workspace directory, opened into *wsfd (and its real path into
 * *ws_real) unless it already is. DLV_ESCOPE or DLV_EIO with err set. */
static int dlv_check_in(const char *workspace, int *wsfd, char **ws_real,
    const struct dlv_scope *scope, const char *path, char *err, size_t errlen)
{
	char rel[PATH_MAX];
	const char *name;
	int fd;

	if (dlv_check_rules(scope, path, rel, sizeof rel, err, errlen) < 0)
		return DLV_ESCOPE;
	if (*wsfd < 0 && (*wsfd = dlv_workspace_open(workspace, ws_real, err, errlen)) < 0)
		return DLV_EIO;
	fd = dlv_walk(*ws_real, *wsfd, scope, path, rel, false, &name, err, errlen);
	if (fd >= 0)
		close(fd);
	return fd >= 0 || fd == -2 ? DLV_OK : DLV_ESCOPE;
}

/* Check that `path` may be written under the workspace within the scope; DLV_ESCOPE or
 * DLV_EIO with err set. */
int dlv_check_path(const char *workspace, const struct dlv_scope *scope, const char *path,
    char *err, size_t errlen)
{
	char *ws_real = NULL;
	int wsfd = -1, rc;

	rc = dlv_check_in(workspace, &wsfd, &ws_real, scope, path, err, errlen);
	if (wsfd >= 0)
		close(wsfd);
	free(ws_real);
	return rc;
}

/* Write `f` under directory `dirfd` as `name`: temporary file, fsync, rename. */
static int dlv_write(
    int dirfd, const char *name, const struct dlv_file *f, char *err, size_t errlen)
{
	static unsigned counter;
	struct stat st;
	mode_t mode = 0644;
	char *tmp;
	size_t off = 0;
	int fd;

	assert(f->mode != DLV_DELETE && (f->content != NULL || f->content_len == 0));
	assert(strchr(name, '/') == NULL); /* dlv_walk hands over the last component */
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
		mode = st.st_mode & 07777;
	tmp = xasprintf(".%s.autopack-%ld-%u.tmp", name, (long)getpid(), counter++);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	while (off < f->content_len) {
		ssize_t w = write(fd, f->content + off, f->content_len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0)
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
	unlinkat(dirfd, tmp, 0);
	free(tmp);
	return -1;
}

/* Write or delete every file of the set in the workspace, all paths checked first (in
 * the same open workspace directory the writes go to); DLV_ESCOPE or DLV_EIO with err set
 * at the first failure. */
int dlv_apply(const char *workspace, const struct dlv_scope *scope, const struct dlv_set *set,
    char *err, size_t errlen)
{
	char rel[PATH_MAX];
	const char *name;
	char *ws_real = NULL;
	int wsfd = -1, rc = DLV_OK;
	const char **paths = xcalloc(set->n + 1, sizeof *paths);
	size_t i;

	/* Each path, then the set as a whole ("a" and "a/b.py" cannot both be files), all
	 * before the first write: a refused set writes nothing. */
	for (i = 0; i < set->n && rc == DLV_OK; i++) {
		paths[i] = set->files[i].path;
		rc = dlv_check_in(workspace, &wsfd, &ws_real, scope, paths[i], err, errlen);
	}
	if (rc == DLV_OK && relpath_files_check("files", paths, set->n, err, errlen) != 0)
		rc = DLV_ESCOPE;
	free(paths);
	if (rc == DLV_OK && wsfd < 0 &&
	    (wsfd = dlv_workspace_open(workspace, &ws_real, err, errlen)) < 0)
		rc = DLV_EIO;
	if (rc != DLV_OK) {
		if (wsfd >= 0)
			close(wsfd);
		free(ws_real);
		return rc;
	}
	for (i = 0; i < set->n && rc == DLV_OK; i++) {
		const struct dlv_file *f = &set->files[i];
		int dirfd;

		if (dlv_check_rules(scope, f->path, rel, sizeof rel, err, errlen) < 0) {
			rc = DLV_ESCOPE;
			break;
		}
		dirfd = dlv_walk(
		    ws_real, wsfd, scope, f->path, rel, f->mode != DLV_DELETE, &name, err, errlen);
		if (dirfd == -2)
			continue; /* deleting under a directory that does not exist */
		if (dirfd < 0) {
			rc = DLV_ESCOPE;
			break;
		}
		if (f->mode == DLV_DELETE) {
			if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
				snprintf(err, errlen, "path \"%s\": cannot delete: %s", f->path,
				    strerror(errno));
				rc = DLV_EIO;
			}
		} else if (dlv_write(dirfd, name, f, err, errlen) < 0) {
			rc = DLV_EIO;
		}
		close(dirfd);
	}
	close(wsfd);
	free(ws_real);
	return rc;
}

/* Resolve a workspace-relative path to a regular file inside the workspace for reading;
 * NULL with err set otherwise. */
char *dlv_resolve_read(const char *workspace, const char *path, char *err, size_t errlen)
{
	char rel[PATH_MAX];
	const char *rule = relpath_norm(path, rel, sizeof rel);
	char *ws_real, *full, *real = NULL;
	struct stat st;

	if (rule != NULL) {
		snprintf(err, errlen, "path \"%s\": %s", path, rule);
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

/* Count the deliverables absent from the workspace, naming them in `names`. */
size_t dlv_missing(
    const char *workspace, char *const *deliverables, size_t n, char *names, size_t namelen)
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
