/*
 * Git run by the worker itself on a workspace's repository, once a check is gone: to tell
 * whether a ref the check moved descends from what was there, to put a ref back, to take
 * a submodule out of the index, to read refs kept in a reftable. The repository's own
 * settings may name programs in its working tree, which the model and the check write
 * (`core.hooksPath=.husky`, `core.fsmonitor`, a filter's clean or smudge command, a diff
 * driver, `core.sshCommand`): each run has them turned off on its command line (`-c`,
 * which wins over every config file), reads no system or global config
 * (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null), no replace refs, no system
 * attributes, allows no transport protocol and asks for no password, in an environment of
 * its own; each filter the settings define is turned off by its name, as none can be
 * for every name at once (writing the index hashes again, through its filter, a file
 * whose time is not before the index's). docs/worker.md, "What a check cannot do".
 */
#ifndef AUTOPACK_CHECK_GIT_RUN_H
#define AUTOPACK_CHECK_GIT_RUN_H

#include <stddef.h>

/* How long one git run may take before it is killed. */
#define CHECK_GIT_RUN_MS 30000

/* The `-c` settings every run of git by the worker carries (NULL-terminated); for tests
 * and docs. */
extern const char *const check_git_run_settings[];

/* Run git with `args` (NULL-terminated, after the settings) on the repository directory
 * `gitdir` (GIT_DIR), with the work tree `worktree` (NULL for none), its stdout kept in
 * `out` (`outlen` bytes, NUL-terminated, cut when longer; NULL to drop it) and its stderr
 * dropped; `heartbeat(ctx)` (nullable) called at least every second while it runs. Git is
 * looked for in the worker's PATH, absolute directories only, none in `worktree`; the
 * filters the repository defines are listed by a first run. Returns git's exit status,
 * or -1 when it could not be run, was killed, took longer than CHECK_GIT_RUN_MS, or the
 * filters could not all be listed or named (more than 16). */
int check_git_run(const char *gitdir, const char *worktree, const char *const *args, char *out,
    size_t outlen, void (*heartbeat)(void *ctx), void *ctx);

#endif
