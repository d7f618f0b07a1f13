/* The stack limit check made at each program's start (see stacklimit.h). */
#include "common/stacklimit.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

void stack_limit_require(const char *program, int status)
{
	struct rlimit rl;
	char msg[256];
	int n;

	if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= (rlim_t)STACK_LIMIT_MIN_KIB << 10)
		return;
	n = snprintf(msg, sizeof msg,
	    "%s: the stack limit is %llu KiB (ulimit -s); autopack needs at least %d KiB: raise "
	    "it (ulimit -s %d, LimitSTACK=%dK) and start again\n",
	    program, (unsigned long long)rl.rlim_cur >> 10, STACK_LIMIT_MIN_KIB,
	    STACK_LIMIT_MIN_KIB, STACK_LIMIT_MIN_KIB);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		n = 0; /* nowhere to say it: the exit status alone */
	_exit(status);
}
