/* A repository's refs and HEAD read before a check and compared after it: what it
 * rewrote, removed or made under refs/replace/ is put back. */
#include "worker/check_git_refs.h"
#include "worker/check_git_run.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Add the ref `name` with `value` (its first line, trimmed) to `r`; nothing past
 * CHECK_GIT_REFS_MAX. */
static void check_git_refs_add(struct check_git_refs *r, const char *name, const char *value)
{
	struct check_git_ref *e;

	if (r->n == CHECK_GIT_REFS_MAX) {
		r->capped = true;
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap == 0 ? 64 : r->cap * 2;
		r->ref = xrealloc(r->ref, r->cap * sizeof *r->ref);
	}
	e = &r->ref[r->n];
	e->name = xasprintf("%s%c%.*s", name, '\0', (int)strcspn(value, "\r\n"), value);
	e->value = e->name + strlen(name) + 1;
	e->order = r->n++;
}

/* Read the first bytes of the regular file `name` under `dirfd` (not following a link)
 * into `buf` (`n` bytes); a link's target is read as "link: <target>". Returns false when
 * it is neither, or cannot be read. */
static bool check_git_refs_read(int dirfd, const char *name, char *buf, size_t n)
{
	struct stat sb;
	ssize_t got;
	int fd;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return false;
	if (S_ISLNK(sb.st_mode)) {
		memcpy(buf, "link: ", 6);
		got = readlinkat(dirfd, name, buf + 6, n - 7);
		if (got < 0)
			return false;
		buf[6 + got] = '\0';
		return true;
	}
	if (!S_ISREG(sb.st_mode) ||
	    (fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return false;
	got = read(fd, buf, n - 1);
	close(fd);
	if (got < 0)
		return false;
	buf[got] = '\0';
	return true;
}

/* Add the loose refs under the directory `dirfd` (named `prefix`, "refs/…") to `r`: its
 * regular files and links, recursively, but for lock files. */
static void check_git_refs_loose(struct check_git_refs *r, int dirfd, const char *prefix, int depth)
{
	char name[PATH_MAX], value[512];
	struct dirent *e;
	DIR *d;
	int fd;

	if (depth > 64 || (fd = dup(dirfd)) < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    (len > 5 && strcmp(e->d_name + len - 5, ".lock") == 0))
			continue;
		if ((size_t)snprintf(name, sizeof name, "%s/%s", prefix, e->d_name) >= sizeof name)
			continue;
		if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
			int sub = openat(
			    dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0) {
				check_git_refs_loose(r, sub, name, depth + 1);
				close(sub);
				continue;
			}
		}
		if (check_git_refs_read(dirfd, e->d_name, value, sizeof value))
			check_git_refs_add(r, name, value);
	}
	closedir(d);
}

/* Add the refs of the packed-refs file in `dir` (a path) to `r`. */
static void check_git_refs_packed(struct check_git_refs *r, const char *dir)
{
	char path[PATH_MAX + 16], line[PATH_MAX + 96];
	int fd;
	FILE *f;

	snprintf(path, sizeof path, "%s/packed-refs", dir);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return;
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char *sp = strchr(line, ' ');

		if (line[0] == '#' || line[0] == '^' || sp == NULL)
			continue;
		*sp = '\0';
		sp[1 + strcspn(sp + 1, "\r\n")] = '\0';
		check_git_refs_add(r, sp + 1, line);
	}
	fclose(f);
}

/* Order refs by name, then in the order they were added. */
static int check_git_refs_cmp(const void *a, const void *b)
{
	const struct check_git_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : x->order < y->order ? -1 : x->order > y->order;
}

/* Sort `r` by name, keeping of each name the entry added last (a loose ref over a packed
 * one). */
static void check_git_refs_sort(struct check_git_refs *r)
{
	size_t out = 0;

	qsort(r->ref, r->n, sizeof *r->ref, check_git_refs_cmp);
	for (size_t i = 0; i < r->n; i++) {
		if (i + 1 < r->n && strcmp(r->ref[i].name, r->ref[i + 1].name) == 0) {
			free(r->ref[i].name);
			continue;
		}
		r->ref[out++] = r->ref[i];
	}
	r->n = out;
}

/* Add the refs and HEAD of a reftable repository to `r`, as git lists them. */
static void check_git_refs_reftable(struct check_git_refs *r)
{
	static const char *const list[] = { "for-each-ref", "--format=%(objectname) %(refname)",
		NULL };
	static const char *const sym[] = { "symbolic-ref", "-q", "HEAD", NULL };
	static const char *const head[] = { "rev-parse", "-q", "--verify", "HEAD", NULL };
	size_t cap = 4 << 20;
	char *out = xmalloc(cap), *line, *save, *nl, value[PATH_MAX];

	if (check_git_run(r->gitdir, NULL, list, out, cap, NULL, NULL) == 0) {
		/* A last line cut short is not taken. */
		if ((nl = strrchr(out, '\n')) != NULL)
			nl[1] = '\0';
		for (line = strtok_r(out, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			char *sp = strchr(line, ' ');

			if (sp != NULL) {
				*sp = '\0';
				check_git_refs_add(r, sp + 1, line);
			}
		}
	}
	if (check_git_run(r->gitdir, NULL, sym, out, 512, NULL, NULL) == 0) {
		snprintf(value, sizeof value, "ref: %.4000s", out);
		check_git_refs_add(r, "HEAD", value);
	} else if (check_git_run(r->gitdir, NULL, head, out, 512, NULL, NULL) == 0)
		check_git_refs_add(r, "HEAD", out);
	free(out);
}

void check_git_refs_free(struct check_git_refs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->ref[i].name);
	free(r->ref);
	memset(r, 0, sizeof *r);
}

void check_git_refs_take(const char *gitdir, struct check_git_refs *r)
{
	char path[PATH_MAX + 16], line[PATH_MAX], common[PATH_MAX * 2 + 2], value[512];
	struct stat sb;
	int dfd, fd;

	check_git_refs_free(r);
	if (realpath(gitdir, r->gitdir) == NULL)
		return;
	snprintf(r->commondir, sizeof r->commondir, "%s", r->gitdir);
	if ((fd = open(r->gitdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	if (check_git_refs_read(fd, "commondir", line, sizeof line))
		line[strcspn(line, "\r\n")] = '\0';
	else
		line[0] = '\0';
	if (line[0] != '\0') {
		snprintf(common, sizeof common, "%s%s%s", line[0] == '/' ? "" : r->gitdir,
		    line[0] == '/' ? "" : "/", line);
		if (realpath(common, r->commondir) == NULL)
			snprintf(r->commondir, sizeof r->commondir, "%s", r->gitdir);
	}
	snprintf(path, sizeof path, "%s/reftable", r->commondir);
	if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		check_git_refs_reftable(r);
	} else {
		check_git_refs_packed(r, r->commondir);
		snprintf(path, sizeof path, "%s/refs", r->commondir);
		if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
			check_git_refs_loose(r, dfd, "refs", 0);
			close(dfd);
		}
		/* A linked worktree's own refs (refs/bisect/, refs/worktree/). */
		snprintf(path, sizeof path, "%s/refs", r->gitdir);
		if (strcmp(r->gitdir, r->commondir) != 0 &&
		    (dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
			check_git_refs_loose(r, dfd, "refs", 0);
			close(dfd);
		}
		if (check_git_refs_read(fd, "HEAD", value, sizeof value))
			check_git_refs_add(r, "HEAD", value);
	}
	close(fd);
	check_git_refs_sort(r);
	r->taken = true;
}

/* Whether `v` is an object's name (hex). */
static bool check_git_refs_hex(const char *v)
{
	size_t n = strspn(v, "0123456789abcdef");

	return (n == 40 || n == 64) && v[n] == '\0';
}

/* Whether git says the commit `old` is an ancestor of `now` in the repository of `r`:
 * 1 yes, 0 no, -1 when it cannot tell. */
static int check_git_refs_descends(const struct check_git_refs *r, const char *old, const char *now,
    void (*heartbeat)(void *ctx), void *ctx)
{
	const char *args[] = { "merge-base", "--is-ancestor", old, now, NULL };
	int rc = check_git_run(r->gitdir, NULL, args, NULL, 0, heartbeat, ctx);

	return rc == 0 ? 1 : rc == 1 ? 0 : -1;
}

/* Remove the loose ref file `name` ("refs/…") of the directory `dir`, reached through
 * real directories only. Returns whether it did. */
static bool check_git_refs_unlink(const char *dir, const char *name)
{
	char copy[PATH_MAX], *slash, *tok, *save;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), next;
	bool done;
	struct stat sb;

	if (fd < 0 || (size_t)snprintf(copy, sizeof copy, "%s", name) >= sizeof copy ||
	    (slash = strrchr(copy, '/')) == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	*slash = '\0';
	for (tok = strtok_r(copy, "/", &save); tok != NULL && fd >= 0;
	     tok = strtok_r(NULL, "/", &save)) {
		next = openat(fd, tok, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	if (fd < 0)
		return false;
	done = fstatat(fd, slash + 1, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(sb.st_mode) &&
	    unlinkat(fd, slash + 1, 0) == 0;
	close(fd);
	return done;
}

/* Put the ref `name` back to `value` ("" to remove it). Returns whether git did. */
static bool check_git_refs_put_back(const struct check_git_refs *r, const char *name,
    const char *value, void (*heartbeat)(void *ctx), void *ctx)
{
	const char *del[] = { "update-ref", "--no-deref", "-d", name, NULL };
	const char *sym[] = { "symbolic-ref", "-m", "autopack: put back after a check", name,
		value + 5, NULL };
	const char *set[] = { "update-ref", "--no-deref", "-m", "autopack: put back after a check",
		name, value, NULL };
	const char *const *args = value[0] == '\0' ? del :
	    strncmp(value, "ref: ", 5) == 0        ? sym :
	                                             set;

	if (value[0] != '\0' && !check_git_refs_hex(value) && args != sym)
		return false;
	if (check_git_run(r->gitdir, NULL, args, NULL, 0, heartbeat, ctx) == 0)
		return true;
	/* Git refuses to change a ref whose file holds no object's name: that file removed,
	 * the packed ref (if any) stands, and git is asked again. */
	return strncmp(name, "refs/", 5) == 0 && check_git_refs_unlink(r->commondir, name) &&
	    check_git_run(r->gitdir, NULL, args, NULL, 0, heartbeat, ctx) == 0;
}

/* Append to `err` (at *k of `errlen`) what the check did to the ref `name` (`what`) and
 * whether it was put back to `value`. */
static void check_git_refs_say(char *err, size_t errlen, size_t *k, const char *what,
    const char *name, const char *value, bool back)
{
	if (*k >= errlen)
		return;
	if (back)
		*k += (size_t)snprintf(err + *k, errlen - *k, "%sthe check command %s, put back",
		    *k > 0 ? "; " : "", what);
	else if (value[0] == '\0')
		*k += (size_t)snprintf(err + *k, errlen - *k,
		    "%sthe check command %s, which could not be removed: `git update-ref -d %s` "
		    "removes it",
		    *k > 0 ? "; " : "", what, name);
	else
		*k += (size_t)snprintf(err + *k, errlen - *k,
		    "%sthe check command %s, which could not be put back: `git %s %s %s` puts it "
		    "back",
		    *k > 0 ? "; " : "", what,
		    strncmp(value, "ref: ", 5) == 0 ? "symbolic-ref" : "update-ref --no-deref",
		    name, strncmp(value, "ref: ", 5) == 0 ? value + 5 : value);
	if (*k >= errlen)
		*k = errlen - 1;
}

int check_git_refs_after(const struct check_git_refs *before, char *err, size_t errlen, size_t *k,
    void (*heartbeat)(void *ctx), void *ctx)
{
	struct check_git_refs now = { 0 };
	char what[PATH_MAX * 2 + 400];
	size_t i = 0, j = 0;
	int found = 0;

	if (!before->taken)
		return 0;
	check_git_refs_take(before->gitdir, &now);
	if (!now.taken)
		return 0;
	while (i < before->n || j < now.n) {
		int c = i == before->n ? 1 :
		    j == now.n         ? -1 :
		                         strcmp(before->ref[i].name, now.ref[j].name);
		const struct check_git_ref *b = c <= 0 ? &before->ref[i] : NULL;
		const struct check_git_ref *a = c >= 0 ? &now.ref[j] : NULL;
		int d;

		i += c <= 0;
		j += c >= 0;
		if (b == NULL) {
			if (strncmp(a->name, "refs/replace/", 13) != 0)
				continue;
			snprintf(what, sizeof what,
			    "made %s (git shows that object in place of the one it names)",
			    a->name);
			check_git_refs_say(err, errlen, k, what, a->name, "",
			    check_git_refs_put_back(before, a->name, "", heartbeat, ctx));
			found++;
			continue;
		}
		if (a != NULL && strcmp(a->value, b->value) == 0)
			continue;
		if (a == NULL && (before->capped || now.capped))
			continue;
		if (a == NULL) {
			snprintf(what, sizeof what, "removed %s (%s)", b->name, b->value);
		} else if (check_git_refs_hex(b->value) && check_git_refs_hex(a->value)) {
			d = check_git_refs_descends(before, b->value, a->value, heartbeat, ctx);
			if (d == 1)
				continue;
			snprintf(what, sizeof what, "%s %s from %s to %s, which %s",
			    strcmp(b->name, "HEAD") == 0 ? "moved" : "rewrote", b->name, b->value,
			    a->value,
			    d == 0 ? "does not descend from it" :
			             "git could not tell descends from it");
		} else {
			snprintf(what, sizeof what, "%s %s from %s to %s",
			    strcmp(b->name, "HEAD") == 0 ? "moved" : "changed", b->name, b->value,
			    a->value);
		}
		check_git_refs_say(err, errlen, k, what, b->name, b->value,
		    check_git_refs_put_back(before, b->name, b->value, heartbeat, ctx));
		found++;
	}
	check_git_refs_free(&now);
	return found;
}
