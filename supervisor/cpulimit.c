/* CPU time limits (ulimit -t, systemd's LimitCPU=) as text, and a worker's (inherited from the
 * supervisor or set by a --worker wrapper). The kernel sends SIGXCPU when the soft limit is
 * used up and SIGKILL at the hard one; a worker ignores SIGXCPU (it would die of it
 * mid-attempt, counted as a crash), and the supervisor replaces it with a fresh worker,
 * whose CPU time starts from nothing, at the first result that finds the limit within a
 * second of CPU (CPU_LIMIT_MARGIN_S). */
#include "supervisor/sup.h"
#include "common/procs.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* The CPU time a worker may use before it is replaced: its soft limit, less a second (less
 * half of it, under two seconds). */
#define CPU_LIMIT_MARGIN_S 1.0

void cpulimit_read(struct worker *w)
{
	struct rlimit lim;

	if (prlimit(w->pid, RLIMIT_CPU, NULL, &lim) != 0)
		lim.rlim_cur = lim.rlim_max = RLIM_INFINITY;
	w->cpu_soft = lim.rlim_cur;
	w->cpu_hard = lim.rlim_max;
}

/* The CPU time (user and system) the worker's process has used, from /proc/<pid>/stat
 * read without stdio (procs_stat_text: this runs at each result of a worker under a CPU
 * limit), its fields counted after the command's name, which may hold spaces and
 * parentheses; -1 when it cannot be read or parsed. */
static double cpulimit_used(const struct worker *w)
{
	char buf[512];
	const char *p = procs_stat_text(w->pid, buf, sizeof buf);
	unsigned long long ut, st;
	long tick = sysconf(_SC_CLK_TCK);

	/* Fields 14 and 15 (utime, stime); p is at field 3 (the state). */
	if (p == NULL || tick <= 0 ||
	    sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)tick;
}

const char *cpulimit_text(rlim_t v, char *buf, size_t n)
{
	if (v == RLIM_INFINITY)
		return "unlimited";
	snprintf(buf, n, "%llu s", (unsigned long long)v);
	return buf;
}

bool cpulimit_spent(const struct worker *w, char *why, size_t n)
{
	char soft[32], hard[32];
	double used;

	double margin = (double)w->cpu_soft / 2;

	/* Only after a job: a worker that used its limit starting is not started again. */
	if (w->cpu_soft == RLIM_INFINITY || w->cpu_soft == 0 || w->jobs_done == 0)
		return false;
	if (margin > CPU_LIMIT_MARGIN_S)
		margin = CPU_LIMIT_MARGIN_S;
	used = cpulimit_used(w);
	if (used < 0 || used + margin < (double)w->cpu_soft)
		return false;
	snprintf(why, n,
	    "%.1f s of CPU used, its CPU time limit (ulimit -t, LimitCPU=) is %s (the hard "
	    "limit, which kills, %s)",
	    used, cpulimit_text(w->cpu_soft, soft, sizeof soft),
	    cpulimit_text(w->cpu_hard, hard, sizeof hard));
	return true;
}

const char *cpulimit_signal_cause(const struct worker *w, int sig, char *buf, size_t n)
{
	char hard[32];

	if (sig == SIGXCPU)
		snprintf(buf, n,
		    " (SIGXCPU: its CPU time limit, ulimit -t or LimitCPU=, %s, was "
		    "used up)",
		    cpulimit_text(w->cpu_soft, hard, sizeof hard));
	else if (sig == SIGXFSZ)
		snprintf(buf, n,
		    " (SIGXFSZ: it wrote past its file size limit, ulimit -f or "
		    "LimitFSIZE=)");
	else if (sig == SIGKILL && !w->killed && w->cpu_hard != RLIM_INFINITY)
		snprintf(buf, n,
		    " (SIGKILL, which the supervisor did not send: the kernel sends it at the CPU "
		    "time limit's hard limit, ulimit -t or LimitCPU=, %s)",
		    cpulimit_text(w->cpu_hard, hard, sizeof hard));
	else
		buf[0] = '\0';
	return buf;
}
