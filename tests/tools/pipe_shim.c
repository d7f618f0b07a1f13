/* An LD_PRELOAD shim that gives the process the pipes of a user over
 * /proc/sys/fs/pipe-user-pages-soft, as the kernel then does: every pipe made (pipe, pipe2)
 * holds AUTOPACK_PIPE_SHIM_BYTES (default 8192, two pages), and fcntl(F_SETPIPE_SZ) asking
 * for more fails with EPERM. Everything else passes through.
 * Built by the Makefile for the tests only (pipe-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

static int (*real_pipe2)(int[2], int);
static int (*real_fcntl)(int, int, ...);

/* The size every pipe is given. */
static int shim_bytes(void)
{
	const char *v = getenv("AUTOPACK_PIPE_SHIM_BYTES");

	return v != NULL ? atoi(v) : 8192;
}

/* Resolve the real functions once. */
static void shim_init(void)
{
	if (real_pipe2 == NULL)
		real_pipe2 = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2");
	if (real_fcntl == NULL)
		real_fcntl = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl");
}

int pipe2(int p[2], int flags)
{
	int rc;

	shim_init();
	rc = real_pipe2(p, flags);
	if (rc == 0 && real_fcntl(p[1], F_SETPIPE_SZ, shim_bytes()) < 0)
		abort();
	return rc;
}

int pipe(int p[2])
{
	return pipe2(p, 0);
}

/* fcntl with F_SETPIPE_SZ past the shim's size refused (EPERM), as for a user over the
 * soft limit; every other call passed through with its argument. */
static int shim_fcntl(int fd, int cmd, void *arg)
{
	shim_init();
	if (cmd == F_SETPIPE_SZ && (int)(long)arg > shim_bytes()) {
		errno = EPERM;
		return -1;
	}
	return real_fcntl(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return shim_fcntl(fd, cmd, arg);
}

/* The same, under the name programs built with 64-bit offsets call. */
int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));
