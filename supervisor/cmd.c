/* What every control command shares: failing with a code and a message. */
#include "supervisor/cmd.h"

#include <stdarg.h>
#include <stdio.h>

/* Fill the reply's error code and message; returns -1. */
int cmd_error(struct cmd_reply *rep, const char *code, const char *fmt, ...)
{
	va_list ap;

	rep->code = code;
	va_start(ap, fmt);
	if (vasprintf(&rep->message, fmt, ap) < 0)
		rep->message = NULL;
	va_end(ap);
	return -1;
}
