/* The system directories a run's workspace may neither be nor hold. */
#include "common/sysdirs.h"
#include "common/util.h"

#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>

#define SYSDIRS_MAX 12

#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC 0x19800202
#endif
/* Not in every <linux/magic.h>: the kernel's fs/configfs/mount.c and fs/fuse/control.c. */
#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC 0x62656570
#endif
#ifndef FUSECTL_SUPER_MAGIC
#define FUSECTL_SUPER_MAGIC 0x65735543
#endif

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

/* The kernel's file systems: of processes, of devices, of terminals (where only the kernel
 * makes a file, one per terminal) and of POSIX message queues (only queues), known by their
 * name too; then those only the kernel fills, wherever they are mounted (most under /sys):
 * control groups (a directory made there is a group, and no file can be made), debugging
 * and tracing, security modules, configfs, pinned BPF objects, pstore, EFI variables, huge
 * pages (a file there takes no write(), only mmap) and FUSE's connections. */
static const struct {
	const char *dir, *kind; /* dir: NULL for one known only by its type */
	unsigned long type;
} sysdirs_fs[] = { { "/proc", "proc", PROC_SUPER_MAGIC }, { "/sys", "sysfs", SYSFS_MAGIC },
	{ "/dev/pts", "devpts", DEVPTS_SUPER_MAGIC }, { "/dev/mqueue", "mqueue", MQUEUE_MAGIC },
	{ NULL, "cgroup", CGROUP_SUPER_MAGIC }, { NULL, "cgroup2", CGROUP2_SUPER_MAGIC },
	{ NULL, "debugfs", DEBUGFS_MAGIC }, { NULL, "tracefs", TRACEFS_MAGIC },
	{ NULL, "securityfs", SECURITYFS_MAGIC }, { NULL, "configfs", CONFIGFS_MAGIC },
	{ NULL, "bpf", BPF_FS_MAGIC }, { NULL, "pstore", PSTOREFS_MAGIC },
	{ NULL, "efivarfs", EFIVARFS_MAGIC }, { NULL, "hugetlbfs", HUGETLBFS_MAGIC },
	{ NULL, "fusectl", FUSECTL_SUPER_MAGIC } };

bool sysdirs_kernel_fs(const char *dir, char *what, size_t n)
{
	struct statfs st;

	if (statfs(dir, &st) != 0)
		return false;
	for (size_t j = 0; j < ARRAY_SIZE(sysdirs_fs); j++)
		if ((unsigned long)st.f_type == sysdirs_fs[j].type) {
			snprintf(what, n, "a %s file system (%s)", sysdirs_fs[j].kind, dir);
			return true;
		}
	return false;
}

bool sysdirs_kernel(const char *dir, char *what, size_t n)
{
	char real[PATH_MAX], up[PATH_MAX];
	const char *paths[] = { dir, realpath(dir, real) != NULL ? real : NULL };
	struct statfs st;
	char *slash;

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		for (size_t j = 0; paths[i] != NULL && j < ARRAY_SIZE(sysdirs_fs); j++)
			if (sysdirs_fs[j].dir != NULL && path_holds(sysdirs_fs[j].dir, paths[i])) {
				snprintf(what, n, "%s", sysdirs_fs[j].dir);
				return true;
			}
	/* One of them mounted elsewhere: by the file system of the deepest directory on its
	 * way that is there. */
	snprintf(up, sizeof up, "%s", paths[1] != NULL ? paths[1] : dir);
	while (statfs(up, &st) != 0 && (slash = strrchr(up, '/')) != NULL && slash != up)
		*slash = '\0';
	return sysdirs_kernel_fs(up, what, n);
}
