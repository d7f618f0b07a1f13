/* The system directories a run's workspace may neither be nor hold. */
#include "common/sysdirs.h"
#include "common/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYSDIRS_MAX 12

bool path_holds(const char *dir, const char *path)
{
	size_t k = strlen(dir);

	return strncmp(dir, path, k) == 0 &&
	    (path[k] == '\0' || path[k] == '/' || (k > 0 && dir[k - 1] == '/'));
}

bool sysdirs_held(const char *dir, bool own_binary, char *what, size_t n)
{
	/* This program's binary first, so that it can be left out. */
	static const char *const dirs[] = { "/proc/self/exe", "/usr", "/etc", "/bin", "/sbin",
		"/lib", "/lib64", "/boot", "/dev", "/proc", "/sys" };
	/* The real paths, resolved at the first call; whether the first is the binary's. */
	static char real_dirs[SYSDIRS_MAX][PATH_MAX];
	static size_t nreal;
	static bool resolved, have_binary;
	char real[PATH_MAX];
	size_t i;

	if (!resolved) {
		for (i = 0; i < ARRAY_SIZE(dirs) && nreal < SYSDIRS_MAX; i++)
			if (realpath(dirs[i], real_dirs[nreal]) != NULL) {
				have_binary = have_binary || i == 0;
				nreal++;
			}
		resolved = true;
	}
	if (realpath(dir, real) == NULL)
		return false;
	for (i = own_binary || !have_binary ? 0 : 1; i < nreal; i++) {
		if (path_holds(real, real_dirs[i])) {
			snprintf(what, n, "%s", real_dirs[i]);
			return true;
		}
	}
	return false;
}

bool sysdirs_kernel(const char *dir, char *what, size_t n)
{
	static const char *const dirs[] = { "/proc", "/sys" };
	char real[PATH_MAX];
	const char *paths[] = { dir, realpath(dir, real) != NULL ? real : NULL };

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		for (size_t j = 0; paths[i] != NULL && j < ARRAY_SIZE(dirs); j++)
			if (path_holds(dirs[j], paths[i])) {
				snprintf(what, n, "%s", dirs[j]);
				return true;
			}
	return false;
}
