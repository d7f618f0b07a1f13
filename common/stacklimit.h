/* The smallest stack limit (`ulimit -s`, RLIMIT_STACK) autopack's programs run under, and
 * the check each makes at its start: below it a process would die of SIGSEGV at some later
 * step (a statement, a check command, a frame), so it refuses to start instead, naming the
 * limit (README.md, "What can go wrong"). Threads get stacks of the same size. */
#ifndef AUTOPACK_STACKLIMIT_H
#define AUTOPACK_STACKLIMIT_H

/* KiB of stack every program works in: the tests run each under exactly this limit. */
#define STACK_LIMIT_MIN_KIB 64

/* Exit with `status`, saying on stderr as `program` that the soft stack limit is under
 * STACK_LIMIT_MIN_KIB and what to do, when it is; nothing when it is not, or cannot be
 * read. Call first in main: it needs little stack itself (the logger's line needs more
 * than a limit of 16 KiB leaves). */
void stack_limit_require(const char *program, int status);

#endif
