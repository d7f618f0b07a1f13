/*
 * Repositories nested in a check's workspace: git run in a subdirectory takes the
 * repository it finds there (a `.git`, or a bare repository's directory: HEAD, objects
 * and refs), and a `git status` at the top recurses into a submodule, a gitlink (mode
 * 160000) in the index whose directory holds one; either way git reads that repository's
 * settings and runs what they name (a hook, core.fsmonitor). What the worker records
 * before a check (check_git_nested_take) is compared after it: a nested repository or a
 * gitlink that was not there is the check's (worker/check_git.h moves it away).
 * docs/worker.md, "What a check cannot do".
 */
#ifndef AUTOPACK_CHECK_GIT_NESTED_H
#define AUTOPACK_CHECK_GIT_NESTED_H

#include "worker/check_git.h"

#include <stdbool.h>
#include <stddef.h>

/* How deep below the workspace nested repositories are looked for. */
#define CHECK_GIT_NESTED_DEPTH 64

struct check_git_nested_one {
	char *path;             /* relative to the workspace, or a gitlink's path; heap */
	struct check_git_id id; /* which file it was (not for a gitlink) */
};

struct check_git_nested_list {
	size_t n, cap;
	struct check_git_nested_one *e;
};

/* How often a walk of the workspace calls its heartbeat, in milliseconds. */
#define CHECK_GIT_NESTED_BEAT_MS 500

/* Fill `l` (freeing what it held) with the nested repositories of the workspace open as
 * `wsfd`: every `.git` below its top and every directory that is a bare repository's,
 * not looking into either, nor into the top's `.git` and `.autopack`; links are not
 * followed; sorted by path. The walk has no bound but the depth (a tree a check left of a million
 * directories takes it many seconds): `heartbeat(ctx)`, nullable, is called every
 * CHECK_GIT_NESTED_BEAT_MS while it goes on, so the worker is not taken for hung. */
void check_git_nested_take(
    int wsfd, struct check_git_nested_list *l, void (*heartbeat)(void *ctx), void *ctx);

/* Fill `l` (freeing what it held) with the paths of the gitlinks in the index of the
 * repository directory `gitdir`, sorted; empty when it has none or cannot be read. */
void check_git_gitlinks_take(const char *gitdir, struct check_git_nested_list *l);

/* Whether `l` holds `one` (the same path, and for a repository the same file): a binary
 * search, the lists being sorted by path when taken. */
bool check_git_nested_has(
    const struct check_git_nested_list *l, const struct check_git_nested_one *one, bool gitlink);

void check_git_nested_free(struct check_git_nested_list *l);

#endif
