/* The stack limit check made at each program's start (see stacklimit.h). */
#include "common/stacklimit.h"
#include "common/log.h"

#include <sys/resource.h>

void stack_limit_require(int status)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= (rlim_t)STACK_LIMIT_MIN_KIB << 10)
		return;
	log_fatal(status,
	    "the stack limit is %llu KiB (ulimit -s); autopack needs at least %d KiB: raise it "
	    "(ulimit -s %d, LimitSTACK=%dK) and start again",
	    (unsigned long long)rl.rlim_cur >> 10, STACK_LIMIT_MIN_KIB, STACK_LIMIT_MIN_KIB,
	    STACK_LIMIT_MIN_KIB);
}
