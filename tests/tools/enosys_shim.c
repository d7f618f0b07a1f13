/* An LD_PRELOAD shim for a kernel, or a seccomp filter, without some system calls: a call
 * through syscall() of one named in AUTOPACK_ENOSYS (names separated by commas; only
 * "openat2" is known) fails with ENOSYS, as it would there.
 *   AUTOPACK_ENOSYS_LOG  append "enosys <name>" for each call refused
 * Everything else passes through. Built by the Makefile for the tests only
 * (enosys-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct {
	const char *name;
	long nr;
} enosys_known[] = { { "openat2", SYS_openat2 } };

/* The name of the call `nr` when AUTOPACK_ENOSYS names it, else NULL. */
static const char *enosys_refused(long nr)
{
	const char *list = getenv("AUTOPACK_ENOSYS");
	size_t i, k;
	const char *p;

	if (list == NULL)
		return NULL;
	for (i = 0; i < sizeof enosys_known / sizeof enosys_known[0]; i++) {
		if (enosys_known[i].nr != nr)
			continue;
		k = strlen(enosys_known[i].name);
		for (p = list; (p = strstr(p, enosys_known[i].name)) != NULL; p += k)
			if ((p == list || p[-1] == ',') && (p[k] == '\0' || p[k] == ','))
				return enosys_known[i].name;
	}
	return NULL;
}

long syscall(long nr, ...)
{
	static long (*real)(long, ...);
	const char *name = enosys_refused(nr), *log;
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (name != NULL) {
		int fd;

		if ((log = getenv("AUTOPACK_ENOSYS_LOG")) != NULL &&
		    (fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) >= 0) {
			dprintf(fd, "enosys %s\n", name);
			close(fd);
		}
		errno = ENOSYS;
		return -1;
	}
	if (real == NULL)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
