/* Deliverable paths, their classes, and the file multiplier of existing files. */
#include "common/estimate/estimator.h"
#include "common/log.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* True for the characters of a path in a deliverable text: [A-Za-z0-9_./-]. */
static bool est_path_char(int ch)
{
	return isalnum(ch) || ch == '_' || ch == '-' || ch == '.' || ch == '/';
}

/* Copy at most n-1 bytes of s[0..len) into out. */
static void est_copy_span(const char *s, size_t len, char *out, size_t n)
{
	if (n == 0)
		return;
	if (len >= n)
		len = n - 1;
	memcpy(out, s, len);
	out[len] = '\0';
}

/*
 * The first match of [A-Za-z0-9_./-]+\.[A-Za-z0-9]+ in the text; failing that, the
 * lowercased text without a leading verb and a trailing parenthesis.
 */
void est_deliverable_path(const char *text, char *out, size_t n)
{
	static const char *const prefixes[] = { "create ", "modify ", "update ", "add ",
		"new file: ", "new: " };
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, len = strlen(text), k, start, end;
	char *low;

	while (i < len) {
		size_t run_end, dot = 0;
		bool found = false;

		if (!est_path_char(s[i])) {
			i++;
			continue;
		}
		run_end = i;
		while (run_end < len && est_path_char(s[run_end]))
			run_end++;
		/* The greedy prefix backtracks to the last '.' followed by an alnum. */
		for (k = run_end - 1; k > i; k--) {
			if (s[k] == '.' && k + 1 < run_end && isalnum(s[k + 1])) {
				dot = k;
				found = true;
				break;
			}
		}
		if (found) {
			end = dot + 1;
			while (end < run_end && isalnum(s[end]))
				end++;
			est_copy_span(text + i, end - i, out, n);
			return;
		}
		i = run_end;
	}

	low = xstrdup(text);
	for (k = 0; low[k] != '\0'; k++)
		low[k] = (char)tolower((unsigned char)low[k]);
	start = 0;
	for (k = 0; k < ARRAY_SIZE(prefixes); k++)
		if (strncmp(low + start, prefixes[k], strlen(prefixes[k])) == 0)
			start += strlen(prefixes[k]);
	end = strlen(low);
	while (end > start && isspace((unsigned char)low[end - 1]))
		end--;
	if (end > start && low[end - 1] == ')') {
		char *open = memrchr(low + start, '(', end - start);
		if (open != NULL)
			end = (size_t)(open - low);
	}
	while (start < end && isspace((unsigned char)low[start]))
		start++;
	while (end > start && isspace((unsigned char)low[end - 1]))
		end--;
	est_copy_span(low + start, end - start, out, n);
	free(low);
}

/* True when `s` ends with `suffix`. */
static bool est_ends(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Lowercase `text` with backslashes as slashes into a fresh string. */
static char *est_lower_path(const char *text)
{
	char *p = xstrdup(text);
	size_t k;

	for (k = 0; p[k] != '\0'; k++)
		p[k] = p[k] == '\\' ? '/' : (char)tolower((unsigned char)p[k]);
	return p;
}

bool est_is_doc(const char *text)
{
	char *p = est_lower_path(text);
	const char *s = p;
	bool doc;

	while (isspace((unsigned char)*s))
		s++;
	doc = strncmp(s, "docs/", 5) == 0 || est_ends(s, ".md");
	free(p);
	return doc;
}

enum est_class est_classify(const char *path, const char *category)
{
	static const char *const test_ends[] = { "_test.py", ".spec.ts", ".spec.tsx", ".test.ts",
		".test.tsx" };
	static const char *const config_ends[] = { ".yml", ".yaml", ".json", ".toml", ".txt",
		".ini" };
	static const char *const frontend_ends[] = { ".tsx", ".jsx", ".vue", ".svelte" };
	char *p = est_lower_path(path);
	const char *base = strrchr(p, '/');
	enum est_class cls = EST_CLASS_OTHER;
	size_t i;

	base = base != NULL ? base + 1 : p;
	if (strncmp(p, "tests/", 6) == 0 || strstr(p, "/tests/") != NULL ||
	    strncmp(base, "test_", 5) == 0) {
		cls = EST_CLASS_TEST;
		goto out;
	}
	for (i = 0; i < ARRAY_SIZE(test_ends); i++)
		if (est_ends(base, test_ends[i])) {
			cls = EST_CLASS_TEST;
			goto out;
		}
	if (strncmp(p, "docs/", 5) == 0 || est_ends(p, ".md")) {
		cls = EST_CLASS_DOC;
		goto out;
	}
	if (strstr(p, "alembic/versions") != NULL || strstr(p, "migration") != NULL) {
		cls = EST_CLASS_CONFIG;
		goto out;
	}
	for (i = 0; i < ARRAY_SIZE(config_ends); i++)
		if (est_ends(p, config_ends[i])) {
			cls = EST_CLASS_CONFIG;
			goto out;
		}
	for (i = 0; i < ARRAY_SIZE(frontend_ends); i++)
		if (est_ends(p, frontend_ends[i])) {
			cls = EST_CLASS_FRONTEND;
			goto out;
		}
	if (category != NULL && strcasecmp(category, "frontend") == 0)
		cls = EST_CLASS_FRONTEND;
	else if (est_ends(p, ".py") || est_ends(p, ".pyi"))
		cls = EST_CLASS_PYTHON;
	else if (est_ends(p, ".sql"))
		cls = EST_CLASS_SQL;
out:
	free(p);
	return cls;
}

/* The factor of the first step whose bound exceeds `v`. */
static double est_step_factor(const struct est_step *steps, size_t n, long v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v < steps[i].below)
			return steps[i].factor;
	return steps[n - 1].factor;
}

/* Open the relative `path` under the directory `ws` with `flags` one component at a time,
 * following no symbolic link (ELOOP, one within the workspace included) and refusing an
 * absolute path or ".." (EXDEV): what openat2's RESOLVE_BENEATH refuses, and more, for a
 * kernel or a seccomp filter without openat2. Returns the descriptor, or -1 with errno. */
static int est_open_walk(int ws, const char *path, int flags)
{
	char comp[NAME_MAX + 1];
	const char *p = path, *end;
	int dir = ws, fd = -1, e;
	struct stat st;

	if (path[0] == '/') {
		errno = EXDEV;
		return -1;
	}
	for (;; p = end + 1) {
		size_t len;
		bool last;

		end = strchr(p, '/');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		last = end == NULL || end[strspn(end, "/")] == '\0';
		if (len >= sizeof comp) {
			errno = ENAMETOOLONG;
			break;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		if (strcmp(comp, "..") == 0) {
			errno = EXDEV;
			break;
		}
		if (!last && (len == 0 || strcmp(comp, ".") == 0))
			continue;
		if (len == 0)
			snprintf(comp, sizeof comp, ".");
		fd = openat(dir, comp, (last ? flags : O_PATH) | O_NOFOLLOW | O_CLOEXEC);
		/* O_PATH | O_NOFOLLOW opens a symbolic link itself: refused as openat refuses
		 * one without O_PATH. */
		e = fd < 0                        ? errno :
		    fstat(fd, &st) != 0           ? errno :
		    S_ISLNK(st.st_mode)           ? ELOOP :
		    !last && !S_ISDIR(st.st_mode) ? ENOTDIR :
		                                    0;
		if (fd >= 0 && e != 0) {
			close(fd);
			fd = -1;
		}
		if (dir != ws)
			close(dir);
		if (fd < 0) {
			errno = e;
			return -1;
		}
		if (last)
			return fd;
		dir = fd;
	}
	e = errno;
	if (dir != ws)
		close(dir);
	errno = e;
	return -1;
}

/* The workspace directory est_workspace_lend lent, and the path it stands for. */
static struct {
	const char *path;
	int fd; /* -1: none */
} est_lent = { NULL, -1 };

void est_workspace_lend(const char *workspace, int fd)
{
	est_lent.path = fd >= 0 ? workspace : NULL;
	est_lent.fd = fd >= 0 && workspace != NULL ? fd : -1;
}

int est_open_under(const char *workspace, const char *path, int flags)
{
	static bool walk_noted;
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	bool lent = est_lent.fd >= 0 && strcmp(workspace, est_lent.path) == 0;
	int ws = lent ? est_lent.fd : open(workspace, O_PATH | O_DIRECTORY | O_CLOEXEC), fd, e;

	if (ws < 0)
		return -1;
	fd = (int)syscall(SYS_openat2, ws, path, &how, sizeof how);
	if (fd < 0 && errno == ENOSYS) {
		if (!walk_noted)
			log_warn(
			    "openat2 is not available (ENOSYS: a kernel before 5.6, or a "
			    "seccomp filter that refuses it): the estimate looks at deliverables "
			    "one path component at a time instead, and follows no symbolic "
			    "link, so a deliverable reached through one (even within the "
			    "workspace) is estimated as a new file");
		walk_noted = true;
		fd = est_open_walk(ws, path, flags);
	}
	e = errno;
	if (!lent)
		close(ws);
	errno = e;
	return fd;
}

double est_file_multiplier(const struct est_coefs *c, const char *workspace, const char *path)
{
	struct stat st;
	FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	off_t left;
	long code = 0, imports = 0, indent = 0;
	double m;
	/* Without waiting, and judged by what was opened: a check may have put a link there to
	 * a file that is regular only in name (/proc/kmsg, which as root blocks for ever), or
	 * to a file out of the workspace, whose lines would tell in max_tokens. */
	int fd = est_open_under(workspace, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);

	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > c->multiplier_max_bytes || (f = fdopen(fd, "r")) == NULL) {
		if (fd >= 0)
			close(fd);
		return 1.0;
	}
	/* A file's lines as far as its size says: none of the files of /proc, all size 0. */
	left = st.st_size;
	while (left > 0 && (len = getline(&line, &cap, f)) > 0) {
		long lead = 0;
		const char *s;

		left -= len;

		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		for (s = line; *s == ' ' || *s == '\t' || *s == '\f' || *s == '\v'; s++)
			lead++;
		if (*s == '\0' || *s == '#')
			continue;
		code++;
		if (strstr(line, "import ") != NULL)
			imports++;
		if (lead > indent)
			indent = lead;
	}
	free(line);
	fclose(f);
	m = est_step_factor(c->loc_steps, ARRAY_SIZE(c->loc_steps), code) *
	    est_step_factor(c->import_steps, ARRAY_SIZE(c->import_steps), imports) *
	    est_step_factor(c->indent_steps, ARRAY_SIZE(c->indent_steps), indent);
	if (m < c->multiplier_min)
		m = c->multiplier_min;
	if (m > c->multiplier_max)
		m = c->multiplier_max;
	return m;
}
