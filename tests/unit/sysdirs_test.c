#include "common/sysdirs.h"
#include "tests/unit/test.h"

#include <mntent.h>
#include <stdio.h>
#include <string.h>

/* The kernel's file systems a workspace may not be on, by the type /proc/self/mounts
 * gives them. */
static const char *const kernel_fs[] = { "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2",
	"debugfs", "tracefs", "securityfs", "configfs", "bpf", "pstore", "efivarfs", "hugetlbfs",
	"fusectl" };

TEST(sysdirs_kernel_fs_knows_each_mounted_kernel_file_system_by_its_type)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;
	char what[4096 + 64], want[4096 + 64];
	int seen = 0;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	/* Only looked at (one statfs each): nothing is made on them. */
	while ((m = getmntent(f)) != NULL) {
		for (size_t i = 0; i < sizeof kernel_fs / sizeof *kernel_fs; i++) {
			if (strcmp(m->mnt_type, kernel_fs[i]) != 0)
				continue;
			what[0] = '\0';
			CHECK(sysdirs_kernel_fs(m->mnt_dir, what, sizeof what));
			snprintf(
			    want, sizeof want, "a %s file system (%s)", m->mnt_type, m->mnt_dir);
			CHECK_EQ_STR(what, want);
			seen++;
		}
	}
	endmntent(f);
	CHECK(seen > 0);                                   /* /proc at least */
	CHECK(!sysdirs_kernel_fs(".", what, sizeof what)); /* the test's own directory */
}
