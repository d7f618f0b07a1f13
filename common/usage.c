/* The programs' usage errors (see usage.h). */
#include "common/usage.h"
#include "common/strbuf.h"
#include "common/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void usage_say(const char *prog, const char *fmt, ...)
{
	struct strbuf b = { 0 };
	char *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	strbuf_printf(&b, "%s: ", prog);
	if (n >= 0)
		utf8_escape(&b, msg, (size_t)n);
	else
		strbuf_puts(&b, "(the message could not be formatted: out of memory)");
	strbuf_put(&b, "\n", 1);
	fputs(b.s, stderr);
	free(msg);
	free(b.s);
}
