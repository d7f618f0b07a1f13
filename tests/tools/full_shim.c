/* An LD_PRELOAD shim that gives the process a file system with AUTOPACK_FULL_SHIM_BYTES
 * bytes left (default 0) for the files whose path ends in AUTOPACK_FULL_SHIM_SUFFIX, as a
 * full disk does: a write (write, pwrite) to one of them past what is left writes what
 * fits and returns that short count, and the next fails with ENOSPC. With
 * AUTOPACK_FULL_SHIM_DELAY_US set, each write to one of them takes that much longer (a
 * slow disk) and the bytes left are not counted (AUTOPACK_FULL_SHIM_BYTES unset: no
 * limit). Without the suffix set, and for every other file, everything passes through.
 * Built by the Makefile for the tests only (full-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static atomic_llong used; /* bytes written to the matching files so far */

/* Resolve the real functions once. */
static void shim_init(void)
{
	if (real_write == NULL)
		real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (real_pwrite == NULL)
		real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(
		    RTLD_NEXT, "pwrite");
}

/* How many of n bytes a write to fd may write: n for a file that does not match, else
 * what is left (taken from the count); -1 with ENOSPC when nothing is. */
static ssize_t shim_room(int fd, size_t n)
{
	const char *suffix = getenv("AUTOPACK_FULL_SHIM_SUFFIX");
	const char *bytes = getenv("AUTOPACK_FULL_SHIM_BYTES");
	const char *delay = getenv("AUTOPACK_FULL_SHIM_DELAY_US");
	long long left = bytes != NULL ? atoll(bytes) : 0, was;
	char link[64], path[4096];
	ssize_t len;
	size_t slen;

	if (suffix == NULL || n == 0)
		return (ssize_t)n;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	len = readlink(link, path, sizeof path - 1);
	slen = strlen(suffix);
	if (len < 0 || (size_t)len < slen || memcmp(path + len - slen, suffix, slen) != 0)
		return (ssize_t)n;
	if (delay != NULL) {
		usleep((useconds_t)atol(delay));
		if (bytes == NULL)
			return (ssize_t)n;
	}
	was = atomic_fetch_add(&used, (long long)n);
	if (was >= left) {
		atomic_fetch_sub(&used, (long long)n);
		errno = ENOSPC;
		return -1;
	}
	if (was + (long long)n > left) {
		atomic_fetch_sub(&used, was + (long long)n - left);
		return (ssize_t)(left - was);
	}
	return (ssize_t)n;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	ssize_t room;

	shim_init();
	if ((room = shim_room(fd, n)) < 0)
		return -1;
	return real_write(fd, buf, (size_t)room);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t room;

	shim_init();
	if ((room = shim_room(fd, n)) < 0)
		return -1;
	return real_pwrite(fd, buf, (size_t)room, off);
}

/* The same, under the name programs built with 64-bit offsets call. */
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));
