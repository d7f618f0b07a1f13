/* The umask autopack's programs run under, and the check each makes at its start: a umask
 * that takes a permission away from the owner (0777, 0277, 0177) makes files and
 * directories the program itself must open again unusable (its log file, which each worker
 * opens; a new database; the runtime directory of the control sockets), so it refuses to
 * start instead, naming the umask (README.md, "What can go wrong"). */
#ifndef AUTOPACK_UMASKCHECK_H
#define AUTOPACK_UMASKCHECK_H

/* Exit with `status`, saying on stderr as `program` that the umask takes permissions away
 * from the owner and what to do, when it does; nothing when it does not. */
void umask_require(const char *program, int status);

#endif
