/*
 * What a check command may take of the machine: how many processes (and threads) at once,
 * how much memory each of its processes may allocate, and how large its private /tmp,
 * /var/tmp and /dev/shm may grow (docs/worker.md, "Limits of a check"). Set by the
 * worker's --check-max-processes, --check-max-memory-mib and --check-tmp-size-mib (the
 * supervisor passes its own flags of those names on); 0 lifts a limit. A check that meets
 * one fails as any other failing command, and the attempt's message names the limit.
 */
#ifndef AUTOPACK_CHECK_LIMITS_H
#define AUTOPACK_CHECK_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHECK_PROCESSES_DEFAULT 1024
#define CHECK_PROCESSES_MAX 4000000 /* the kernel's pid_max is at most 4194304 */
#define CHECK_MIB_MAX (1LL << 30)   /* 1 PiB */

/* Take the value of the flag `flag` (--check-max-processes, --check-max-memory-mib or
 * --check-tmp-size-mib). Returns 1 when taken, 0 when `flag` is none of those, -1 with
 * `err` (naming the flag, the value and the range) when the value is not a whole number
 * in range. */
int check_limits_flag(const char *flag, const char *value, char *err, size_t errlen);

/* The limits in force: processes at once, MiB of data (RLIMIT_DATA) a process, MiB of each
 * private temporary directory; 0 for none. Unset ones get their defaults: 1024 processes,
 * a quarter of the machine's memory a process, a sixteenth of it each directory. */
int64_t check_limit_processes(void);
int64_t check_limit_memory_mib(void);
int64_t check_limit_tmp_mib(void);

/* The mount options of a private writable temporary directory (a tmpfs): its mode, and its
 * size and inode count when limited. Valid until the limits change. */
const char *check_limits_tmpfs_options(void);

/* Before a check is started outside any namespace: count the processes of this worker's
 * real user, so that the check's RLIMIT_NPROC (which the kernel counts over the user's
 * processes there) leaves it the configured number more. */
void check_limits_prepare(bool in_user_ns);

/* In the check's child, before its exec: the OOM killer's first choice (oom_score_adj
 * 1000, which its code cannot lower), half the worker's limit of open files (both values of
 * RLIMIT_NOFILE), RLIMIT_NPROC and, in a PID namespace of its own on a
 * kernel that keeps pid_max by namespace (6.14 on), that namespace's pid_max, which also
 * holds for root, whom RLIMIT_NPROC does not bind; outside a PID namespace RLIMIT_DATA too
 * (in one, the init sets it: the worker's binary it runs may be built with a sanitizer,
 * whose shadow memory counts as data). Returns 0, or -1 having written what failed to
 * `status_fd`. Runs between clone and exec: no allocation. */
int check_limits_apply(int status_fd, bool in_pid_ns);

/* The bytes of data a process of the check may map, as check_limits_prepare chose them
 * (0: no limit), for the init. */
int64_t check_limits_data(void);

/* Set RLIMIT_DATA (both values) to `bytes`, or to the hard limit when lower; nothing for
 * 0. Returns 0, or -1 with errno. */
int check_limits_data_set(int64_t bytes);

/* Whether the exit of a failed check whose stderr ends with `excerpt`, and whose private
 * temporary directories the init found full (`full`, the names of `nfull` of them separated
 * by ", "; `own`: they include its own $TMPDIR, or the $HOME that holds it), looks like
 * one of these limits: fills `why` with which, its size or number, and the flag that sets
 * it (e.g. "/dev/shm was full (a check's /tmp, /var/tmp and /dev/shm hold at most 16 MiB
 * each: --check-tmp-size-mib)", "$TMPDIR (/srv/tmp) was full (a check's /tmp, /var/tmp
 * and /dev/shm, and its own $TMPDIR (or the $HOME that holds it), hold at most 16 MiB
 * each: --check-tmp-size-mib)"). */
bool check_limits_hit(
    const char *excerpt, const char *full, int nfull, bool own, char *why, size_t n);

#endif
