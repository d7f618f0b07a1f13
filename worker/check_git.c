/* The workspace's git repository kept from a check command: pinned in its mount namespace,
 * and what it made where nothing could be pinned found and moved away after it. */
#include "worker/check_git.h"
#include "worker/check_git_nested.h"
#include "worker/check_git_refs.h"
#include "worker/check_git_run.h"
#include "common/sysdirs.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* What git runs or reads settings from in a repository's directory: bound read-only in a
 * confined check's mount namespace when there. */
static const char *const check_git_kept[] = { "config", "config.worktree", "commondir", "hooks",
	"info", "modules", "worktrees", NULL };

/* What a check must neither make nor change in a .git directory (check_git_after): what
 * git reads settings from, the list of commits past which a shallow repository's history
 * is cut off (made, it hides history), and the state of a rebase, a cherry-pick or a
 * revert in progress, whose todo list `git rebase --continue` runs (`exec` lines).
 * CHECK_GIT_WATCHED of them; check_git_entry_dirs names those whose entries are compared
 * one by one too. */
static const char *const check_git_made[] = { "commondir", "config.worktree", "config", "hooks",
	"info", "shallow", "rebase-merge", "rebase-apply", "sequencer", NULL };
_Static_assert(ARRAY_SIZE(check_git_made) == CHECK_GIT_WATCHED + 1, "check_git_made's count");

/* The directories of check_git_made whose entries are compared one by one: a hook
 * rewritten in place changes no entry of its directory. Their index in check_git_made. */
static const size_t check_git_entry_dirs[CHECK_GIT_ENTRIES] = { 3, 4 };

/* Add `path` to the pins of `g`, read-only or bound onto itself; nothing when they are
 * full. */
static void check_git_pin(struct check_git *g, const char *path, bool readonly)
{
	size_t n = strlen(path);

	/* A path too long to mount on is one the check cannot reach by name either. */
	if (g->npin == CHECK_GIT_PIN_MAX || n >= PATH_MAX)
		return;
	memcpy(g->pin[g->npin], path, n + 1);
	g->pin_readonly[g->npin++] = readonly;
}

/* Read the first line of the file `path` into `line` (of `n` bytes), its newline dropped.
 * Returns false when it cannot be read or is empty. */
static bool check_git_line(const char *path, char *line, size_t n)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat sb;
	ssize_t got = -1;

	if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
		got = read(fd, line, n - 1);
	if (fd >= 0)
		close(fd);
	if (got <= 0)
		return false;
	line[got] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	return line[0] != '\0';
}

/* The real path, in `real`, of `ref` read from a file in the directory `dir` (relative to
 * it unless absolute), when it lies in the workspace `ws` below its top. */
static bool check_git_inside(const char *ws, const char *dir, const char *ref, char *real)
{
	char path[PATH_MAX * 2];

	snprintf(
	    path, sizeof path, "%s%s%s", ref[0] == '/' ? "" : dir, ref[0] == '/' ? "" : "/", ref);
	return realpath(path, real) != NULL && path_holds(ws, real) && strcmp(ws, real) != 0;
}

/* Pin the repository directory `dir` (a real path in the workspace): itself, bound onto
 * itself, and what of check_git_kept it holds, read-only; then the common directory its
 * commondir names, when that lies in the workspace `ws` too. */
static void check_git_pin_dir(struct check_git *g, const char *ws, const char *dir, int depth)
{
	char path[PATH_MAX * 2], line[PATH_MAX], common[PATH_MAX];
	struct stat sb;

	if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return;
	for (size_t i = 0; i < g->npin; i++)
		if (strcmp(g->pin[i], dir) == 0)
			return;
	check_git_pin(g, dir, false);
	for (size_t i = 0; check_git_kept[i] != NULL; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, check_git_kept[i]);
		if (lstat(path, &sb) == 0 && (S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)))
			check_git_pin(g, path, true);
	}
	snprintf(path, sizeof path, "%s/commondir", dir);
	if (depth == 0 && check_git_line(path, line, sizeof line) &&
	    check_git_inside(ws, dir, line, common))
		check_git_pin_dir(g, ws, common, depth + 1);
}

bool check_git_id_of(int dirfd, const char *name, struct check_git_id *id)
{
	struct statx sx;
	ssize_t n;

	memset(id, 0, sizeof *id);
	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) != 0)
		return false;
	id->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	id->ino = sx.stx_ino;
	id->type = sx.stx_mode & S_IFMT;
	id->has_btime = (sx.stx_mask & STATX_BTIME) != 0;
	id->btime = sx.stx_btime;
	id->mtime = sx.stx_mtime;
	id->ctime = sx.stx_ctime;
	id->size = sx.stx_size;
	if (S_ISLNK(sx.stx_mode) &&
	    (n = readlinkat(dirfd, name, id->link, sizeof id->link - 1)) >= 0)
		id->link[n] = '\0';
	return true;
}

/* Whether the timestamps `a` and `b` are the same. */
static bool check_git_ts_same(const struct statx_timestamp *a, const struct statx_timestamp *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

bool check_git_id_same(const struct check_git_id *a, const struct check_git_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->type == b->type &&
	    (!a->has_btime || !b->has_btime || check_git_ts_same(&a->btime, &b->btime)) &&
	    strcmp(a->link, b->link) == 0;
}

/* Whether `a` and `b` are the same file, as it was (nothing written to it since). */
static bool check_git_id_unchanged(const struct check_git_id *a, const struct check_git_id *b)
{
	return check_git_id_same(a, b) && a->size == b->size &&
	    check_git_ts_same(&a->mtime, &b->mtime) && check_git_ts_same(&a->ctime, &b->ctime);
}

/* Record in `out` (heap, *n of them) the entries of the directory `name` under `dirfd`,
 * CHECK_GIT_ENTRY_MAX at most. */
static void check_git_entries_take(
    int dirfd, const char *name, struct check_git_entry **out, size_t *n)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *e;
	DIR *d;

	*out = NULL;
	*n = 0;
	if (fd < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL && *n < CHECK_GIT_ENTRY_MAX) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (*n % 16 == 0)
			*out = xrealloc(*out, (*n + 16) * sizeof **out);
		snprintf((*out)[*n].name, sizeof(*out)[*n].name, "%s", e->d_name);
		if (check_git_id_of(fd, e->d_name, &(*out)[*n].id))
			(*n)++;
	}
	closedir(d);
}

/* Pin, after the workspace's repository (g->ntop becomes how many pins that has), each
 * repository directory nested below the top of the workspace `ws` (a real path) that
 * g->nested lists, as the top one is (check_git_pin_dir, no commondir followed): an
 * operator's repository there keeps its settings and hooks from a confined check. A
 * `.git` file or link is not: what it names is pinned where it lies in the top's
 * repository (its modules), or not at all. */
static void check_git_pin_nested(struct check_git *g, const char *ws)
{
	char path[PATH_MAX * 2];

	g->ntop = g->npin;
	for (size_t i = 0; i < g->nested->n && g->npin < CHECK_GIT_PIN_MAX; i++) {
		if (!S_ISDIR(g->nested->e[i].id.type))
			continue;
		snprintf(path, sizeof path, "%s/%s", ws, g->nested->e[i].path);
		check_git_pin_dir(g, ws, path, 1);
	}
}

/* Free what check_git_before put on the heap of `g`, and clear it. */
static void check_git_clear(struct check_git *g)
{
	for (size_t i = 0; i < CHECK_GIT_ENTRIES; i++)
		free(g->entry[i]);
	if (g->refs != NULL)
		check_git_refs_free(g->refs);
	if (g->nested != NULL)
		check_git_nested_free(g->nested);
	if (g->gitlinks != NULL)
		check_git_nested_free(g->gitlinks);
	free(g->refs);
	free(g->nested);
	free(g->gitlinks);
	memset(g, 0, sizeof *g);
}

void check_git_before(
    const char *workspace, struct check_git *g, void (*heartbeat)(void *ctx), void *ctx)
{
	char ws[PATH_MAX], path[PATH_MAX * 2], line[PATH_MAX], dir[PATH_MAX];
	struct stat sb;
	int wsfd, gfd;

	check_git_clear(g);
	g->refs = xcalloc(1, sizeof *g->refs);
	g->nested = xcalloc(1, sizeof *g->nested);
	g->gitlinks = xcalloc(1, sizeof *g->gitlinks);
	if (realpath(workspace, ws) == NULL)
		return;
	if ((wsfd = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		check_git_nested_take(wsfd, g->nested, heartbeat, ctx);
		close(wsfd);
	}
	snprintf(path, sizeof path, "%s/.git", ws);
	if (lstat(path, &sb) != 0 || !check_git_id_of(AT_FDCWD, path, &g->id)) {
		check_git_pin_nested(g, ws);
		return;
	}
	g->had_git = true;
	if (S_ISDIR(sb.st_mode)) {
		for (size_t i = 0; check_git_made[i] != NULL; i++) {
			snprintf(path, sizeof path, "%s/.git/%s", ws, check_git_made[i]);
			g->had[i] = check_git_id_of(AT_FDCWD, path, &g->watched[i]);
		}
		snprintf(path, sizeof path, "%s/.git", ws);
		if ((gfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
			for (size_t i = 0; i < CHECK_GIT_ENTRIES; i++)
				check_git_entries_take(gfd, check_git_made[check_git_entry_dirs[i]],
				    &g->entry[i], &g->nentry[i]);
			close(gfd);
		}
		if (strlen(path) < sizeof g->gitdir) /* longer, no call could open it */
			strlcpy_ap(g->gitdir, path, sizeof g->gitdir);
		check_git_pin_dir(g, ws, path, 0);
	} else if (S_ISREG(sb.st_mode)) {
		/* A `gitdir:` file (a linked worktree, a submodule): itself read-only, and the
		 * repository it names when that lies in the workspace. */
		check_git_pin(g, path, true);
		if (check_git_line(path, line, sizeof line) && strncmp(line, "gitdir: ", 8) == 0) {
			snprintf(path, sizeof path, "%s%s%s", line[8] == '/' ? "" : ws,
			    line[8] == '/' ? "" : "/", line + 8);
			if (realpath(path, dir) != NULL)
				snprintf(g->gitdir, sizeof g->gitdir, "%s", dir);
			if (check_git_inside(ws, ws, line + 8, dir))
				check_git_pin_dir(g, ws, dir, 0);
		}
	} else if (S_ISLNK(sb.st_mode)) {
		if (realpath(path, dir) != NULL)
			snprintf(g->gitdir, sizeof g->gitdir, "%s", dir);
		/* A link to the repository: that one, when it lies in the workspace. The link
		 * itself cannot be bound; one the check puts in its place is found after it. */
		if (check_git_inside(ws, ws, ".git", dir))
			check_git_pin_dir(g, ws, dir, 0);
	}
	if (g->gitdir[0] != '\0') {
		check_git_refs_take(g->gitdir, g->refs);
		check_git_gitlinks_take(g->gitdir, g->gitlinks);
	}
	check_git_pin_nested(g, ws);
}

/* Open the directory `name` under `dirfd`, creating it (mode 0700) when missing; a
 * symbolic link there is not followed. Returns the descriptor, or -1 with errno. */
static int check_git_dir_open(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && (mkdirat(dirfd, name, 0700) == 0 || errno == EEXIST))
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* Open <workspace>/.autopack/quarantine, making it when missing; what a check put under
 * that name (a link, a file) is removed first: .autopack is the worker's. Returns the
 * descriptor, or -1 with errno. */
static int check_git_quarantine(int wsfd)
{
	int top = check_git_dir_open(wsfd, ".autopack"), q, e;

	if (top < 0)
		return -1;
	q = check_git_dir_open(top, "quarantine");
	if (q < 0 && (errno == ELOOP || errno == ENOTDIR) && unlinkat(top, "quarantine", 0) == 0)
		q = check_git_dir_open(top, "quarantine");
	e = errno;
	close(top);
	errno = e;
	return q;
}

/* Move `name` in `from` to <workspace>/.autopack/quarantine/<tag>.<label> (a name a check
 * took there first gets .1, .2, …), or, when it cannot be and is no directory, remove it;
 * append to `err` (at *k of `errlen`) what the check did (`what`) and what became of it. */
static void check_git_move(int wsfd, int from, const char *name, const char *tag, const char *label,
    const char *what, char *err, size_t errlen, size_t *k)
{
	char dest[NAME_MAX + 64];
	int q = check_git_quarantine(wsfd), e = errno, moved = -1;
	struct stat sb;

	for (int n = 0; q >= 0 && moved != 0 && n < 10; n++) {
		snprintf(dest, sizeof dest, n == 0 ? "%s.%s" : "%s.%s.%d", tag, label, n);
		moved = renameat2(from, name, q, dest, RENAME_NOREPLACE);
		e = errno;
		if (moved != 0 && e != EEXIST && e != ENOTEMPTY)
			break;
	}
	if (moved == 0)
		*k += (size_t)snprintf(err + *k, errlen - *k,
		    "%s%s, moved to .autopack/quarantine/%s", *k > 0 ? "; " : "", what, dest);
	else if (fstatat(from, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(sb.st_mode) &&
	    unlinkat(from, name, 0) == 0)
		*k += (size_t)snprintf(err + *k, errlen - *k,
		    "%s%s, removed (it could not be moved to .autopack/quarantine: %s)",
		    *k > 0 ? "; " : "", what, strerror(e));
	else
		*k += (size_t)snprintf(err + *k, errlen - *k,
		    "%s%s, which could not be moved to .autopack/quarantine (%s): remove it before "
		    "running git there",
		    *k > 0 ? "; " : "", what, strerror(e));
	if (*k >= errlen)
		*k = errlen - 1;
	if (q >= 0)
		close(q);
}

/* Open the directory `rel` (a relative path, "" for `wsfd` itself) under `wsfd`, through
 * real directories only. Returns the descriptor, or -1. */
static int check_git_walk(int wsfd, const char *rel)
{
	char copy[PATH_MAX], *tok, *save;
	int fd = dup(wsfd), next;

	snprintf(copy, sizeof copy, "%s", rel);
	for (tok = strtok_r(copy, "/", &save); tok != NULL && fd >= 0;
	     tok = strtok_r(NULL, "/", &save)) {
		next = openat(fd, tok, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	return fd;
}

/* Whether the entries of check_git_made[i] are compared one by one (it is hooks or info,
 * and had fewer than CHECK_GIT_ENTRY_MAX): then that directory, still the same, is not
 * moved away whole for an entry made or removed. */
static bool check_git_entries_compared(const struct check_git *g, size_t i)
{
	for (size_t d = 0; d < CHECK_GIT_ENTRIES; d++)
		if (check_git_entry_dirs[d] == i)
			return g->nentry[d] < CHECK_GIT_ENTRY_MAX;
	return false;
}

/* Move away each entry of the .git directory `gfd`'s hooks and info that the check made
 * or changed (an entry it removed is named only), compared with `g`. */
static void check_git_entries_after(int wsfd, int gfd, const char *tag, const struct check_git *g,
    char *err, size_t errlen, size_t *k)
{
	char what[NAME_MAX + 160], label[NAME_MAX + 16];
	struct check_git_entry *now;
	struct check_git_id id;
	size_t n;

	for (size_t d = 0; d < CHECK_GIT_ENTRIES; d++) {
		const char *dir = check_git_made[check_git_entry_dirs[d]];
		int dfd;

		/* A directory made, moved away or put in place of the one that was there is
		 * named whole already. */
		if (!check_git_entries_compared(g, check_git_entry_dirs[d]) ||
		    !g->had[check_git_entry_dirs[d]] || !check_git_id_of(gfd, dir, &id) ||
		    !check_git_id_same(&g->watched[check_git_entry_dirs[d]], &id))
			continue;
		check_git_entries_take(gfd, dir, &now, &n);
		dfd = openat(gfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		for (size_t i = 0; i < g->nentry[d]; i++) {
			bool there = false;

			for (size_t j = 0; j < n && !there; j++)
				there = strcmp(now[j].name, g->entry[d][i].name) == 0;
			if (!there && *k + 1 < errlen) {
				*k += (size_t)snprintf(err + *k, errlen - *k,
				    "%sthe check command removed .git/%s/%s in the workspace",
				    *k > 0 ? "; " : "", dir, g->entry[d][i].name);
				if (*k >= errlen)
					*k = errlen - 1;
			}
		}
		for (size_t j = 0; j < n && dfd >= 0; j++) {
			bool had = false, same = false;

			for (size_t i = 0; i < g->nentry[d] && !had; i++)
				if (strcmp(now[j].name, g->entry[d][i].name) == 0) {
					had = true;
					same = check_git_id_of(dfd, now[j].name, &id) &&
					    check_git_id_unchanged(&g->entry[d][i].id, &id);
				}
			if (same)
				continue;
			snprintf(what, sizeof what,
			    "the check command %s .git/%s/%s in the workspace",
			    had ? "changed" : "made", dir, now[j].name);
			snprintf(label, sizeof label, "git-%s-%s", dir, now[j].name);
			check_git_move(wsfd, dfd, now[j].name, tag, label, what, err, errlen, k);
		}
		if (dfd >= 0)
			close(dfd);
		free(now);
	}
}

/* Move away each repository below the workspace's top that the check made (compared with
 * `g`), and take out of the index each gitlink it added. */
static void check_git_nested_after(int wsfd, const char *workspace, const char *tag,
    const struct check_git *g, char *err, size_t errlen, size_t *k, void (*heartbeat)(void *ctx),
    void *ctx)
{
	struct check_git_nested_list now = { 0 };
	char what[PATH_MAX + 160], label[32], parent[PATH_MAX];
	int made = 0;

	check_git_nested_take(wsfd, &now, heartbeat, ctx);
	for (size_t i = 0; i < now.n; i++) {
		const char *path = now.e[i].path, *slash = strrchr(path, '/');
		int pfd;

		if (heartbeat != NULL && i % 64 == 63)
			heartbeat(ctx);

		if (check_git_nested_has(g->nested, &now.e[i], false))
			continue;
		snprintf(
		    parent, sizeof parent, "%.*s", slash != NULL ? (int)(slash - path) : 0, path);
		snprintf(what, sizeof what,
		    "the check command made a repository at %s in the workspace%s", path,
		    strcmp(slash != NULL ? slash + 1 : path, ".git") == 0 ? "" : " (a bare one)");
		snprintf(label, sizeof label, "nested-%d", ++made);
		if ((pfd = check_git_walk(wsfd, parent)) < 0)
			continue;
		check_git_move(
		    wsfd, pfd, slash != NULL ? slash + 1 : path, tag, label, what, err, errlen, k);
		close(pfd);
	}
	check_git_nested_free(&now);
	if (g->gitdir[0] == '\0')
		return;
	check_git_gitlinks_take(g->gitdir, &now);
	for (size_t i = 0; i < now.n; i++) {
		const char *args[] = { "update-index", "--force-remove", "--", now.e[i].path,
			NULL };
		bool out;

		if (check_git_nested_has(g->gitlinks, &now.e[i], true) || *k + 1 >= errlen)
			continue;
		out = check_git_run(g->gitdir, workspace, args, NULL, 0, heartbeat, ctx) == 0;
		*k += (size_t)snprintf(err + *k, errlen - *k,
		    "%sthe check command added the submodule %s to the index (a gitlink), %s",
		    *k > 0 ? "; " : "", now.e[i].path,
		    out ? "taken out of it" :
		          "which could not be taken out of it: `git rm --cached` "
		          "takes it out");
		if (*k >= errlen)
			*k = errlen - 1;
	}
	check_git_nested_free(&now);
}

int check_git_after(const char *workspace, const char *tag, const struct check_git *g, char *err,
    size_t errlen, void (*heartbeat)(void *ctx), void *ctx)
{
	int wsfd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC), gfd;
	char what[160], label[64];
	struct check_git_id id;
	size_t k = 0, before;
	bool now, same = false;

	err[0] = '\0';
	if (wsfd < 0)
		return 0;
	now = check_git_id_of(wsfd, ".git", &id);
	if (!g->had_git && now) {
		check_git_move(wsfd, wsfd, ".git", tag, "git",
		    "the check command made .git in the workspace, where there was none", err,
		    errlen, &k);
	} else if (g->had_git && !now) {
		k += (size_t)snprintf(
		    err, errlen, "the check command removed the workspace's .git");
	} else if (g->had_git && !check_git_id_same(&g->id, &id)) {
		check_git_move(wsfd, wsfd, ".git", tag, "git",
		    "the check command put another .git in place of the workspace's (the one that "
		    "was there is not put back)",
		    err, errlen, &k);
	} else if (g->had_git && S_ISDIR(id.type) &&
	    (gfd = openat(wsfd, ".git", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		same = true;
		for (size_t i = 0; check_git_made[i] != NULL; i++) {
			if (!check_git_id_of(gfd, check_git_made[i], &id) ||
			    (g->had[i] && check_git_id_unchanged(&g->watched[i], &id)) ||
			    (g->had[i] && check_git_entries_compared(g, i) &&
			        check_git_id_same(&g->watched[i], &id)))
				continue;
			snprintf(what, sizeof what, "the check command %s .git/%s in the workspace",
			    g->had[i] ? "changed" : "made", check_git_made[i]);
			snprintf(label, sizeof label, "git-%s", check_git_made[i]);
			check_git_move(
			    wsfd, gfd, check_git_made[i], tag, label, what, err, errlen, &k);
		}
		check_git_entries_after(wsfd, gfd, tag, g, err, errlen, &k);
		close(gfd);
	} else if (g->had_git) {
		same = true;
	}
	check_git_nested_after(wsfd, workspace, tag, g, err, errlen, &k, heartbeat, ctx);
	if (k > 0 && k + 1 < errlen)
		k += (size_t)snprintf(err + k, errlen - k,
		    " (git reads it, and runs what it names, outside the check's confinement)");
	if (k >= errlen)
		k = errlen - 1;
	/* History: only in the repository that was there. */
	before = k;
	if (same && g->refs != NULL)
		check_git_refs_after(g->refs, err, errlen, &k, heartbeat, ctx);
	if (k > before && k + 1 < errlen)
		snprintf(err + k, errlen - k,
		    " (a check may add commits on top of a ref, not rewrite history)");
	close(wsfd);
	return err[0] == '\0' ? 0 : -1;
}
