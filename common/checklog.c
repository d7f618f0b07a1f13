#include "common/checklog.h"
#include "common/util.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Copy `s` into a file-name-safe form: [A-Za-z0-9._-], others as '_'. */
static char *checklog_safe_name(const char *s)
{
	char *p = xstrdup(s != NULL && s[0] != '\0' ? s : "none");
	size_t i;

	for (i = 0; p[i] != '\0'; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '-' && p[i] != '_')
			p[i] = '_';
	if (p[0] == '.')
		p[0] = '_';
	return p;
}

/* Build the path of an attempt's check log; never fails. */
char *checklog_path(const char *workspace, const char *run_id, const char *phase_id,
    int64_t attempt, const char *stream)
{
	char *run = checklog_safe_name(run_id), *phase = checklog_safe_name(phase_id);
	char *path = xasprintf("%s/.autopack/logs/%s__%s__a%lld.%s.txt", workspace, run, phase,
	    (long long)attempt, stream);

	free(run);
	free(phase);
	return path;
}

/* Read the end of a log file; 0 with out empty when it cannot be read. */
size_t checklog_tail(const char *path, char *out, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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
