/* The seccomp filter that keeps a check command from making a set-user-ID or
 * set-group-ID file (check_suid.h). */
#include "worker/check_suid.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

/* The calls that set a mode, and the argument that holds it; `flags`: the argument
 * holding open's flags (the mode matters with O_CREAT or O_TMPFILE only), or -1. */
static const struct {
	const char *name;
	int mode;
	int flags;
} check_suid_calls[] = {
	{ "chmod", 1, -1 },
	{ "fchmod", 1, -1 },
	{ "fchmodat", 2, -1 },
	{ "fchmodat2", 2, -1 },
	{ "creat", 1, -1 },
	{ "mknod", 1, -1 },
	{ "mknodat", 2, -1 },
	{ "open", 2, 1 },
	{ "openat", 3, 2 },
};

/* Refuse call `nr` when its argument `mode` has `bit`, and (flags >= 0) argument `flags`
 * has `with`. Returns libseccomp's result. */
static int check_suid_rule(scmp_filter_ctx f, int nr, int mode, mode_t bit, int flags, int with)
{
	if (flags < 0)
		return seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), nr, 1,
		    SCMP_CMP((unsigned)mode, SCMP_CMP_MASKED_EQ, bit, bit));
	return seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), nr, 2,
	    SCMP_CMP((unsigned)mode, SCMP_CMP_MASKED_EQ, bit, bit),
	    SCMP_CMP((unsigned)flags, SCMP_CMP_MASKED_EQ, with, with));
}

int check_suid_forbid(int status_fd)
{
	scmp_filter_ctx f;
	const char *step = "seccomp_init";
	int rc = -ENOMEM;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		dprintf(status_fd,
		    "cannot keep the check command from making set-user-ID files: "
		    "prctl(PR_SET_NO_NEW_PRIVS): %s",
		    strerror(errno));
		return -1;
	}
	if ((f = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		goto fail;
	step = "seccomp_rule_add";
	for (size_t i = 0; i < sizeof check_suid_calls / sizeof check_suid_calls[0]; i++) {
		int nr = seccomp_syscall_resolve_name(check_suid_calls[i].name);
		int mode = check_suid_calls[i].mode, flags = check_suid_calls[i].flags;

		if (nr == __NR_SCMP_ERROR)
			continue; /* a call this libseccomp does not know */
		for (int b = 0; b < 2; b++) {
			mode_t bit = b == 0 ? S_ISUID : S_ISGID;

			if (flags < 0)
				rc = check_suid_rule(f, nr, mode, bit, -1, 0);
			else if ((rc = check_suid_rule(f, nr, mode, bit, flags, O_CREAT)) == 0)
				rc = check_suid_rule(f, nr, mode, bit, flags, __O_TMPFILE);
			if (rc != 0)
				goto fail;
		}
	}
	rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0);
	if (rc != 0 && rc != -EDOM)
		goto fail;
	step = "seccomp_load";
	if ((rc = seccomp_load(f)) != 0)
		goto fail;
	seccomp_release(f);
	return 0;
fail:
	dprintf(status_fd, "cannot keep the check command from making set-user-ID files: %s: %s",
	    step, strerror(rc < 0 ? -rc : ENOMEM));
	if (f != NULL)
		seccomp_release(f);
	return -1;
}
