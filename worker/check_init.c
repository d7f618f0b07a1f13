/* PID 1 of a check command's PID namespace (worker/check_init.h). */
#include "worker/check_init.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Send `len` bytes of `msg` to the worker in one message; exit 126 when it cannot. */
static void check_init_send(int fd, const char *msg, size_t len)
{
	ssize_t n;

	while ((n = send(fd, msg, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)len)
		_exit(126);
}

void check_init_main(int argc, char **argv)
{
	char msg[256], go;
	int fd, ep[2], status = 0;
	pid_t sh, w;
	ssize_t n;

	if (argc != 4 || (fd = atoi(argv[2])) < 3 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
		_exit(2);
	prctl(PR_SET_NAME, "check-init");
	/* The worker maps this namespace's ids, then says go; EOF: it gave up. */
	while ((n = read(fd, &go, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(126);
	/* Its memory and /proc files are closed to the command, whatever its capabilities in
	 * the namespace. */
	prctl(PR_SET_DUMPABLE, 0);
	if (pipe2(ep, O_CLOEXEC) != 0 || (sh = fork()) < 0) {
		n = snprintf(
		    msg, sizeof msg, "Ecannot start the check command: %s", strerror(errno));
		check_init_send(fd, msg, (size_t)n);
		_exit(0);
	}
	if (sh == 0) {
		execve("/bin/sh", (char *const[]){ (char *)"sh", (char *)"-c", argv[3], NULL },
		    environ);
		dprintf(ep[1], "cannot run /bin/sh: %s", strerror(errno));
		_exit(127);
	}
	close(ep[1]);
	/* Everything orphaned in the namespace is this process's child: reap it, until the
	 * command itself ends. */
	for (;;) {
		int st;

		w = wait(&st);
		if (w == sh) {
			status = st;
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
	}
	msg[0] = 'E';
	while ((n = read(ep[0], msg + 1, sizeof msg - 2)) < 0 && errno == EINTR)
		;
	if (n > 0)
		check_init_send(fd, msg, (size_t)n + 1);
	else
		check_init_send(fd, msg, (size_t)snprintf(msg, sizeof msg, "X%d", status));
	_exit(0);
}
