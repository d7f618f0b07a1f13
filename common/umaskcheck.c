/* The umask check made at each program's start (see umaskcheck.h). */
#include "common/umaskcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

void umask_require(const char *program, int status)
{
	mode_t mask = umask(0);
	char msg[512];
	int n;

	umask(mask);
	if ((mask & S_IRWXU) == 0)
		return;
	n = snprintf(msg, sizeof msg,
	    "%s: the umask is %04o: it takes permissions away from the owner of the files and "
	    "directories autopack makes (its log, a new database, the control sockets' "
	    "directory), which it could then not open again; set a umask that leaves the "
	    "owner's (umask 077, UMask=0077) and start again\n",
	    program, (unsigned)mask);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		n = 0; /* nowhere to say it: the exit status alone */
	exit(status);
}
