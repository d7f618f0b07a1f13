/* The limits of what a check command may take of the machine (worker/check_limits.h). */
#include "worker/check_limits.h"
#include "common/numarg.h"
#include "common/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

/* The configured limits; -1 until set (then the default). */
static int64_t limit_processes = -1, limit_memory_mib = -1, limit_tmp_mib = -1;

/* What check_limits_apply sets, chosen before the fork (check_limits_prepare): processes
 * (RLIMIT_NPROC, counting the user's others outside a user namespace) and the pid_max a PID
 * namespace gets, 0 for none; bytes of data a process, 0 for no limit; descriptors a
 * process (RLIMIT_NOFILE), 0 to leave it. */
static int64_t apply_nproc, apply_pid_max, apply_data, apply_files;

static const struct {
	const char *flag;
	int64_t *value;
	int64_t max;
} flags[] = {
	{ "--check-max-processes", &limit_processes, CHECK_PROCESSES_MAX },
	{ "--check-max-memory-mib", &limit_memory_mib, CHECK_MIB_MAX },
	{ "--check-tmp-size-mib", &limit_tmp_mib, CHECK_MIB_MAX },
};

int check_limits_flag(const char *flag, const char *value, char *err, size_t errlen)
{
	long long n;

	for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
		if (strcmp(flag, flags[i].flag) != 0)
			continue;
		if (numarg_ll(value, &n) != 0 || n < 0 || n > flags[i].max) {
			snprintf(err, errlen,
			    "%s: \"%s\" is not a whole number from 0 (no limit) to %lld", flag,
			    value, (long long)flags[i].max);
			return -1;
		}
		*flags[i].value = n;
		return 1;
	}
	return 0;
}

/* The machine's memory in MiB divided by `part` (at least 1). */
static int64_t machine_mib_part(int64_t part)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	int64_t mib = pages > 0 && size > 0 ? (int64_t)pages * size / part >> 20 : 0;

	return mib > 0 ? mib : 1;
}

int64_t check_limit_processes(void)
{
	return limit_processes >= 0 ? limit_processes : CHECK_PROCESSES_DEFAULT;
}

int64_t check_limit_memory_mib(void)
{
	return limit_memory_mib >= 0 ? limit_memory_mib : machine_mib_part(4);
}

int64_t check_limit_tmp_mib(void)
{
	return limit_tmp_mib >= 0 ? limit_tmp_mib : machine_mib_part(16);
}

const char *check_limits_tmpfs_options(void)
{
	static char opts[96];
	int64_t mib = check_limit_tmp_mib();

	/* An inode of a tmpfs is memory too: one for every 16 KiB of its size. */
	if (mib == 0)
		snprintf(opts, sizeof opts, "mode=1777");
	else
		snprintf(opts, sizeof opts, "mode=1777,size=%lldm,nr_inodes=%lld", (long long)mib,
		    (long long)(mib * 64 < 1024 ? 1024 : mib * 64));
	return opts;
}

/* How many processes and threads of the real user `uid` /proc shows. */
static int64_t count_user_tasks(uid_t uid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[300], line[128];
	int64_t n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		FILE *f;
		unsigned ruid;
		long threads = 0;
		bool mine = false;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		while (fgets(line, sizeof line, f) != NULL) {
			if (sscanf(line, "Uid: %u", &ruid) == 1)
				mine = ruid == (unsigned)uid;
			else if (sscanf(line, "Threads: %ld", &threads) == 1)
				break;
		}
		fclose(f);
		if (mine)
			n += threads > 0 ? threads : 1;
	}
	closedir(d);
	return n;
}

/* Whether this kernel keeps pid_max by PID namespace (Linux 6.14 on): before, writing it
 * in a PID namespace as root would set the machine's. */
static bool pid_max_by_namespace(void)
{
	static int known = -1;
	struct utsname u;
	int major = 0, minor = 0;

	if (known < 0)
		known = uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
		    (major > 6 || (major == 6 && minor >= 14));
	return known;
}

void check_limits_prepare(bool in_user_ns)
{
	int64_t procs = check_limit_processes();
	struct rlimit files;

	apply_data = check_limit_memory_mib() << 20;
	/* Pids below 300 are handed out once only (after that the kernel starts again at
	 * 300), so a namespace's pid_max leaves the check `procs` at least. */
	apply_pid_max = procs > 0 && pid_max_by_namespace() ? procs + 300 : 0;
	/* Root's processes are not counted against RLIMIT_NPROC at all. */
	apply_nproc = procs > 0 && !in_user_ns && getuid() != 0 ?
	    procs + count_user_tasks(getuid()) :
	    procs;
	/* Half the worker's: the kernel refuses a process of the user a descriptor sent over a
	 * Unix socket while the user's descriptors in flight (unix_inflight, counted across
	 * every namespace) pass the sender's limit, and a check that left its own in flight
	 * past it had every new worker refused the handoff of its socket to the supervisor. */
	apply_files = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY ?
	    (int64_t)(files.rlim_cur / 2) :
	    0;
}

/* Set both values of the resource limit `res` to `v`, or to the hard limit when that is
 * lower (raising it needs a capability). Returns 0, or -1 with errno. */
static int limit_set(int res, rlim_t v)
{
	struct rlimit r;

	if (getrlimit(res, &r) != 0)
		return -1;
	if (r.rlim_max != RLIM_INFINITY && r.rlim_max < v)
		v = r.rlim_max;
	r.rlim_cur = r.rlim_max = v;
	return setrlimit(res, &r);
}

int64_t check_limits_data(void)
{
	return apply_data;
}

int check_limits_data_set(int64_t bytes)
{
	return bytes > 0 ? limit_set(RLIMIT_DATA, (rlim_t)bytes) : 0;
}

int check_limits_apply(int status_fd, bool in_pid_ns)
{
	char num[24];
	int fd, k;

	/* Best effort: without /proc (a chroot) the OOM killer chooses as before. */
	if ((fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)) >= 0) {
		(void)!write(fd, "1000", 4);
		close(fd);
	}
	if (!in_pid_ns && check_limits_data_set(apply_data) != 0) {
		dprintf(status_fd, "cannot limit the check's memory (setrlimit(RLIMIT_DATA)): %s",
		    strerror(errno));
		return -1;
	}
	if (apply_files > 0 && limit_set(RLIMIT_NOFILE, (rlim_t)apply_files) != 0) {
		dprintf(status_fd,
		    "cannot limit the check's open files (setrlimit(RLIMIT_NOFILE)): %s",
		    strerror(errno));
		return -1;
	}
	if (apply_nproc > 0 && limit_set(RLIMIT_NPROC, (rlim_t)apply_nproc) != 0) {
		dprintf(status_fd,
		    "cannot limit the check's processes (setrlimit(RLIMIT_NPROC)): %s",
		    strerror(errno));
		return -1;
	}
	if (in_pid_ns && apply_pid_max > 0 &&
	    (fd = open("/proc/sys/kernel/pid_max", O_WRONLY | O_CLOEXEC)) >= 0) {
		k = snprintf(num, sizeof num, "%lld", (long long)apply_pid_max);
		if (write(fd, num, (size_t)k) != k) {
			dprintf(status_fd,
			    "cannot limit the check's processes (/proc/sys/kernel/pid_max): %s",
			    strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* Whether `text` holds one of `needles` (a NULL-ended list). */
static bool holds_any(const char *text, const char *const *needles)
{
	for (; *needles != NULL; needles++)
		if (strstr(text, *needles) != NULL)
			return true;
	return false;
}

bool check_limits_hit(
    const char *excerpt, const char *full, int nfull, bool own, char *why, size_t n)
{
	/* What shells and runtimes say when fork or clone fails with EAGAIN, and when an
	 * allocation fails with ENOMEM. */
	static const char *const no_fork[] = { "Resource temporarily unavailable", "Cannot fork",
		"can't fork", "cannot fork", "fork failed", NULL };
	static const char *const no_memory[] = { "Cannot allocate memory", "MemoryError",
		"out of memory", "Out of memory", "bad_alloc", "memory exhausted", NULL };

	if (nfull > 0 && check_limit_tmp_mib() > 0)
		snprintf(why, n,
		    "%s %s full (a check's /tmp, /var/tmp and /dev/shm%s hold at most %lld MiB "
		    "each: --check-tmp-size-mib)",
		    full, nfull > 1 ? "were" : "was",
		    own ? ", and its own $TMPDIR (or the $HOME that holds it)," : "",
		    (long long)check_limit_tmp_mib());
	else if (check_limit_processes() > 0 && holds_any(excerpt, no_fork))
		snprintf(why, n,
		    "its stderr reads like a limit met: a check runs at most %lld processes and "
		    "threads at once (--check-max-processes)",
		    (long long)check_limit_processes());
	else if (check_limit_memory_mib() > 0 && holds_any(excerpt, no_memory))
		snprintf(why, n,
		    "its stderr reads like a limit met: each process of a check allocates at most "
		    "%lld MiB (--check-max-memory-mib)",
		    (long long)check_limit_memory_mib());
	else
		return false;
	return true;
}
