/* An LD_PRELOAD shim for the tests of files created only as new files: the first file the
 * program creates with O_CREAT | O_EXCL whose name ends with AUTOPACK_PLANT_SUFFIX is
 * replaced, right after the create returns, by a symbolic link to AUTOPACK_PLANT_TARGET
 * (what another user of the directory could do between the create and a later open by
 * name). The descriptor returned is the created file's, as the program expects.
 *   AUTOPACK_PLANT_LOG  append "planted <name>" once the link is in place
 * Everything else passes through. Built by the Makefile for the tests only
 * (plant-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int plant_done;

/* Whether `path` created with `flags` is the file to replace. */
static int plant_wanted(const char *path, int flags)
{
	const char *suffix = getenv("AUTOPACK_PLANT_SUFFIX");
	size_t n, s;

	if (plant_done || suffix == NULL || getenv("AUTOPACK_PLANT_TARGET") == NULL ||
	    (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL))
		return 0;
	n = strlen(path);
	s = strlen(suffix);
	return n >= s && strcmp(path + n - s, suffix) == 0;
}

/* Put the link at `path` in place of the file just created there, and log it. */
static void plant(const char *path)
{
	const char *log = getenv("AUTOPACK_PLANT_LOG");
	int saved = errno;

	plant_done = 1;
	if (unlink(path) != 0 || symlink(getenv("AUTOPACK_PLANT_TARGET"), path) != 0)
		abort();
	if (log != NULL) {
		FILE *f = fopen(log, "a");

		if (f == NULL)
			abort();
		fprintf(f, "planted %s\n", path);
		fclose(f);
	}
	errno = saved;
}

/* open with the link planted after a wanted create; open64 is the same call (64-bit). */
int open(const char *path, int flags, ...)
{
	int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(
	    RTLD_NEXT, "open");
	mode_t mode = 0;
	va_list ap;
	int fd;

	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	fd = real(path, flags, mode);
	if (fd >= 0 && plant_wanted(path, flags))
		plant(path);
	return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));
