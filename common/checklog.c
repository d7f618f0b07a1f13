#include "common/checklog.h"
#include "common/util.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The FNV-1a hash of `id` (NULL as ""). */
static uint32_t checklog_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (const char *c = id != NULL ? id : ""; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	return h;
}

/* Copy `s` into a file-name-safe form: [A-Za-z0-9._-], others as '_', a leading '.' as '_'.
 * When that lost something, or the id could blur the names' "__" separators (empty, a
 * '_' first or last, or "__" in it), "-" and the FNV-1a hash of the id (8 hex digits)
 * follow, so that two ids do not share a name; both stay in the characters a failure's
 * fingerprint takes as a path. */
static char *checklog_safe_name(const char *s)
{
	const char *id = s != NULL ? s : "";
	size_t len = strlen(id), i;
	bool marked = len == 0 || id[0] == '_' || id[len - 1] == '_' || strstr(id, "__") != NULL;
	uint32_t h = checklog_hash(id);
	char *p = xmalloc(len + 16);

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		p[i] = (char)c;
		if ((!isalnum(c) && c != '.' && c != '-' && c != '_') || (i == 0 && c == '.')) {
			p[i] = '_';
			marked = true;
		}
	}
	if (len == 0)
		memcpy(p, "none", (len = 4));
	if (marked)
		len += (size_t)snprintf(p + len, 10, "-%08x", h);
	p[len] = '\0';
	return p;
}

/* A log's name is one file name, of at most NAME_MAX (255) bytes: besides the two ids it
 * holds "__", "__a", the attempt (at most 19 digits) and ".stdout.txt" or ".stderr.txt".
 * The ids have the rest; when their safe names need more, each longer than half of it
 * keeps its start, "-" and the hash of the id (whatever the attempt, so that a failure
 * naming its log keeps one fingerprint). */
#define CHECKLOG_IDS_MAX (255 - 2 - 3 - 19 - 11)

/* Cut the safe name `name` of `id` to half of CHECKLOG_IDS_MAX when it is longer. */
static void checklog_cut(char *name, const char *id)
{
	if (strlen(name) > CHECKLOG_IDS_MAX / 2)
		snprintf(name + CHECKLOG_IDS_MAX / 2 - 9, 10, "-%08x", checklog_hash(id));
}

/* Build the path of an attempt's check log; never fails. */
char *checklog_path(const char *workspace, const char *run_id, const char *phase_id,
    int64_t attempt, const char *stream)
{
	char *run = checklog_safe_name(run_id), *phase = checklog_safe_name(phase_id);

	if (strlen(run) + strlen(phase) > CHECKLOG_IDS_MAX) {
		checklog_cut(run, run_id);
		checklog_cut(phase, phase_id);
	}
	char *path = xasprintf("%s/.autopack/logs/%s__%s__a%lld.%s.txt", workspace, run, phase,
	    (long long)attempt, stream);

	free(run);
	free(phase);
	return path;
}

/* Read the end of a log file; 0 with out empty when it cannot be read. A symbolic link
 * there is not followed: the check may have put one in place of its log, to have
 * `autopack-ctl failed` show a file it may not read itself. */
size_t checklog_tail(const char *path, char *out, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	off_t size, start;
	ssize_t r;
	size_t i;

	out[0] = '\0';
	if (fd < 0)
		return 0;
	size = lseek(fd, 0, SEEK_END);
	start = size > (off_t)(n - 1) ? size - (off_t)(n - 1) : 0;
	r = size > 0 ? pread(fd, out, n - 1, start) : 0;
	close(fd);
	if (r <= 0)
		return 0;
	out[r] = '\0';
	for (i = 0; i < (size_t)r; i++)
		if ((unsigned char)out[i] < 0x20 && out[i] != '\n')
			out[i] = ' ';
	return (size_t)r;
}
