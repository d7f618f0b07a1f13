/* Repositories nested in a workspace, and the gitlinks of its index: found before and
 * after a check. */
#include "worker/check_git_nested.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void check_git_nested_free(struct check_git_nested_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].path);
	free(l->e);
	memset(l, 0, sizeof *l);
}

/* Add `path` (`id` for a repository, NULL for a gitlink) to `l`. */
static void check_git_nested_add(
    struct check_git_nested_list *l, const char *path, const struct check_git_id *id)
{
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 8 : l->cap * 2;
		l->e = xrealloc(l->e, l->cap * sizeof *l->e);
	}
	memset(&l->e[l->n], 0, sizeof l->e[l->n]);
	l->e[l->n].path = xstrdup(path);
	if (id != NULL)
		l->e[l->n].id = *id;
	l->n++;
}

static int check_git_nested_cmp(const void *a, const void *b)
{
	return strcmp(((const struct check_git_nested_one *)a)->path,
	    ((const struct check_git_nested_one *)b)->path);
}

/* Sort `l` by path, for check_git_nested_has. */
static void check_git_nested_sort(struct check_git_nested_list *l)
{
	if (l->n > 1)
		qsort(l->e, l->n, sizeof *l->e, check_git_nested_cmp);
}

bool check_git_nested_has(
    const struct check_git_nested_list *l, const struct check_git_nested_one *one, bool gitlink)
{
	size_t lo = 0, hi = l->n;

	/* The first entry of `one`'s path (an index in conflict names a path more than once). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(l->e[mid].path, one->path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < l->n && strcmp(l->e[lo].path, one->path) == 0; lo++)
		if (gitlink || check_git_id_same(&l->e[lo].id, &one->id))
			return true;
	return false;
}

/* One walk of the workspace: the list it fills, and the heartbeat it keeps. */
struct check_git_walk {
	struct check_git_nested_list *l;
	void (*heartbeat)(void *ctx);
	void *ctx;
	unsigned dirs;      /* directories entered */
	uint64_t last_beat; /* when the heartbeat was last called */
};

/* Call the walk's heartbeat (when it has one) every CHECK_GIT_NESTED_BEAT_MS, looking at the
 * clock once every 64 directories. */
static void check_git_walk_beat(struct check_git_walk *w)
{
	uint64_t now;

	if (w->heartbeat == NULL || ++w->dirs % 64 != 0)
		return;
	now = clock_mono_ms();
	if (now - w->last_beat >= CHECK_GIT_NESTED_BEAT_MS) {
		w->heartbeat(w->ctx);
		w->last_beat = now;
	}
}

/* Look for nested repositories in the directory `dirfd`, named `rel` ("" for the
 * workspace's top), `depth` below the top. */
static void check_git_nested_walk(struct check_git_walk *w, int dirfd, const char *rel, int depth)
{
	struct check_git_nested_list *l = w->l;
	char path[PATH_MAX];
	struct check_git_id id;
	struct dirent *e;
	struct stat sb;
	DIR *d;
	int fd = dup(dirfd);

	if (fd < 0)
		return;
	check_git_walk_beat(w);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;

		if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
			continue;
		/* Most entries are files: no path made, no call, for them. */
		if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN && strcmp(name, ".git") != 0)
			continue;
		if ((size_t)snprintf(path, sizeof path, "%s%s%s", rel, rel[0] != '\0' ? "/" : "",
		        name) >= sizeof path)
			continue;
		if (strcmp(name, ".git") == 0) {
			if (depth > 0 && check_git_id_of(dirfd, name, &id))
				check_git_nested_add(l, path, &id);
			continue;
		}
		if ((depth == 0 && strcmp(name, ".autopack") == 0) ||
		    depth + 1 >= CHECK_GIT_NESTED_DEPTH)
			continue;
		int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (sub < 0)
			continue;
		/* Not into a bare repository: its directory is what is recorded. */
		if (fstatat(sub, "HEAD", &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
		    fstatat(sub, "objects", &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode) &&
		    fstatat(sub, "refs", &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)) {
			if (check_git_id_of(dirfd, name, &id))
				check_git_nested_add(l, path, &id);
		} else {
			check_git_nested_walk(w, sub, path, depth + 1);
		}
		close(sub);
	}
	closedir(d);
}

void check_git_nested_take(
    int wsfd, struct check_git_nested_list *l, void (*heartbeat)(void *ctx), void *ctx)
{
	struct check_git_walk w = { l, heartbeat, ctx, 0, clock_mono_ms() };

	check_git_nested_free(l);
	check_git_nested_walk(&w, wsfd, "", 0);
	check_git_nested_sort(l);
}

/* A big-endian number of `n` bytes at `p`. */
static uint32_t check_git_be(const unsigned char *p, int n)
{
	uint32_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Whether the repository whose config is in `gitdir` names its objects with SHA-256
 * (extensions.objectFormat), so an index entry's object name is 32 bytes, not 20. */
static bool check_git_sha256(const char *gitdir)
{
	char path[PATH_MAX + 16], text[65536], *at;
	ssize_t got = -1;
	int fd;

	snprintf(path, sizeof path, "%s/config", gitdir);
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) >= 0) {
		got = read(fd, text, sizeof text - 1);
		close(fd);
	}
	if (got <= 0)
		return false;
	text[got] = '\0';
	if ((at = strcasestr(text, "objectformat")) == NULL)
		return false;
	at[strcspn(at, "\n")] = '\0';
	return strcasestr(at, "sha256") != NULL;
}

void check_git_gitlinks_take(const char *gitdir, struct check_git_nested_list *l)
{
	char path[PATH_MAX + 16], name[PATH_MAX] = "", common[PATH_MAX + 16];
	unsigned char *buf = NULL;
	size_t size = 0, off = 12, hash;
	uint32_t version, count;
	struct stat sb;
	int fd;

	check_git_nested_free(l);
	snprintf(path, sizeof path, "%s/index", gitdir);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= 12 &&
	    sb.st_size < (off_t)1 << 31) {
		buf = xmalloc((size_t)sb.st_size);
		while (size < (size_t)sb.st_size) {
			ssize_t got = read(fd, buf + size, (size_t)sb.st_size - size);

			if (got <= 0)
				break;
			size += (size_t)got;
		}
	}
	close(fd);
	if (buf == NULL || size < 12 || memcmp(buf, "DIRC", 4) != 0) {
		free(buf);
		return;
	}
	/* A linked worktree's config is its common directory's. */
	snprintf(common, sizeof common, "%s", gitdir);
	{
		char line[PATH_MAX], cpath[PATH_MAX + 16];
		ssize_t got = -1;

		snprintf(cpath, sizeof cpath, "%s/commondir", gitdir);
		if ((fd = open(cpath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) >= 0) {
			got = read(fd, line, sizeof line - 1);
			close(fd);
		}
		if (got > 0) {
			line[got] = '\0';
			line[strcspn(line, "\r\n")] = '\0';
			snprintf(common, sizeof common, "%s%s%s", line[0] == '/' ? "" : gitdir,
			    line[0] == '/' ? "" : "/", line);
		}
	}
	hash = check_git_sha256(common) ? 32 : 20;
	version = check_git_be(buf + 4, 4);
	count = check_git_be(buf + 8, 4);
	for (uint32_t i = 0; i < count && (version >= 2 && version <= 4); i++) {
		size_t at = off + 40 + hash, len;
		uint32_t mode;
		unsigned flags;

		if (at + 2 > size)
			break;
		mode = check_git_be(buf + off + 24, 4);
		flags = check_git_be(buf + at, 2);
		at += 2 + (version >= 3 && (flags & 0x4000) ? 2 : 0);
		if (version == 4) {
			/* The bytes of the previous name dropped (an offset varint), then what
			 * follows them. */
			size_t strip, keep;
			unsigned char c;

			if (at >= size)
				break;
			c = buf[at++];
			strip = c & 127;
			while ((c & 128) && at < size) {
				c = buf[at++];
				strip = ((strip + 1) << 7) | (c & 127);
			}
			len = strnlen((const char *)buf + at, size - at);
			keep = strlen(name);
			if (at + len >= size || strip > keep || keep - strip + len >= sizeof name)
				break;
			memcpy(name + keep - strip, buf + at, len);
			name[keep - strip + len] = '\0';
			off = at + len + 1;
		} else {
			if (at >= size)
				break;
			len = strnlen((const char *)buf + at, size - at);
			if (at + len >= size || len >= sizeof name)
				break;
			memcpy(name, buf + at, len);
			name[len] = '\0';
			off += (at - off + len + 8) & ~(size_t)7;
		}
		if ((mode & 0170000) == 0160000)
			check_git_nested_add(l, name, NULL);
	}
	free(buf);
	check_git_nested_sort(l);
}
