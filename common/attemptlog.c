/* The path of an attempt's check log. */
#include "common/attemptlog.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>

/* Copy `s` into a file-name-safe form: [A-Za-z0-9._-], others as '_'. */
static char *attemptlog_safe_name(const char *s)
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

/* Build <workspace>/.autopack/logs/<run>__<phase>__a<attempt>.<stream>.txt. */
char *attemptlog_path(const char *workspace, const char *run_id, const char *phase_id,
    int64_t attempt, const char *stream)
{
	char *run = attemptlog_safe_name(run_id), *phase = attemptlog_safe_name(phase_id);
	char *path = xasprintf("%s/.autopack/logs/%s__%s__a%lld.%s.txt", workspace, run, phase,
	    (long long)attempt, stream);

	free(run);
	free(phase);
	return path;
}
