/*
 * The workspace's git repository kept from a check command: what git runs or reads its
 * settings from there would run, the next time the operator runs git in the workspace,
 * outside every confinement of the check (a hook; core.fsmonitor, core.hooksPath,
 * core.pager in a config; a commondir or a config.worktree bringing in another one; a .git
 * of the check's own in place of the operator's). Before a confined check, the worker
 * chooses what its mount namespace pins (check_git_before): the repository's directory
 * bound onto itself, so it can be neither removed nor renamed, and its config,
 * config.worktree, commondir, hooks, info, modules and worktrees bound read-only, those of
 * the common directory a commondir names too, and then those of the repositories nested
 * below the workspace's top that were there; its objects, refs, index, HEAD and logs stay
 * writable, so a check can commit. What cannot be pinned because it is not there (a .git
 * where the workspace has none, a commondir, a config.worktree, hooks or info the
 * repository lacks, the todo list of a rebase, a cherry-pick or a revert in progress), a
 * hook rewritten in place where nothing is pinned, a repository made below the top, a
 * gitlink added to the index and a history rewritten are looked for once every process of
 * the check is gone (check_git_after): what the check made is moved to
 * <workspace>/.autopack/quarantine, a gitlink taken out, a ref put back, and the attempt
 * fails. docs/worker.md, "What a check cannot do".
 */
#ifndef AUTOPACK_CHECK_GIT_H
#define AUTOPACK_CHECK_GIT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#define CHECK_GIT_PIN_MAX 64

/* Which file a name stands for: an inode number is used again at once for the next file
 * made (`rm .git && ln -s x .git`), its birth time is not, nor a link's target. */
struct check_git_id {
	dev_t dev;
	ino_t ino;
	mode_t type;
	bool has_btime;
	struct statx_timestamp btime;
	char link[PATH_MAX]; /* a symbolic link's target, else "" */
	/* What changes when it is written (a file's bytes, a directory's entries): */
	struct statx_timestamp mtime, ctime;
	unsigned long long size;
};

/* The names in a .git directory whose change check_git_after looks for. */
#define CHECK_GIT_WATCHED 9

/* Of those, the directories whose every entry is compared too (hooks, info): the most
 * entries of each recorded. */
#define CHECK_GIT_ENTRIES 2
#define CHECK_GIT_ENTRY_MAX 256

struct check_git_entry {
	char name[NAME_MAX + 1];
	struct check_git_id id;
};

struct check_git_refs;
struct check_git_nested_list;

struct check_git {
	bool had_git;           /* <workspace>/.git was there (of any type) */
	struct check_git_id id; /* and which file it was */
	/* In a .git directory: whether each watched name was there, and which file it was. */
	bool had[CHECK_GIT_WATCHED];
	struct check_git_id watched[CHECK_GIT_WATCHED];
	size_t npin; /* what a confined check's mount namespace pins, outermost first */
	size_t ntop; /* of those, the first ntop are the workspace's repository's; the others
	                of the repositories nested below its top (worker/check_git_nested.h) */
	char pin[CHECK_GIT_PIN_MAX][PATH_MAX];
	bool pin_readonly[CHECK_GIT_PIN_MAX]; /* else bound onto itself, writable */
	/* The entries of .git/hooks and .git/info, which a check without a mount namespace
	 * could rewrite in place (heap; nentry of each). */
	size_t nentry[CHECK_GIT_ENTRIES];
	struct check_git_entry *entry[CHECK_GIT_ENTRIES];
	struct check_git_refs *refs;            /* the repository's refs (heap) */
	struct check_git_nested_list *nested;   /* repositories below the top (heap) */
	struct check_git_nested_list *gitlinks; /* the index's gitlinks (heap) */
	char gitdir[PATH_MAX];                  /* the repository's directory, else "" */
};

/* Fill `id` for `name` under `dirfd`, not following a link. Returns false when it is not
 * there, or cannot be looked at. */
bool check_git_id_of(int dirfd, const char *name, struct check_git_id *id);

/* Whether `a` and `b` are the same file. */
bool check_git_id_same(const struct check_git_id *a, const struct check_git_id *b);

/* Record in `g` (freeing what it held) what the workspace `workspace` holds of a
 * repository now: its .git, what git reads in it, its hooks' and info's entries, its refs
 * (worker/check_git_refs.h), the gitlinks of its index and the repositories nested below
 * the top (worker/check_git_nested.h); and what a confined check's mount namespace pins
 * of it (nothing when it has none). `heartbeat(ctx)`, nullable, is called while it walks
 * the workspace. */
void check_git_before(
    const char *workspace, struct check_git *g, void (*heartbeat)(void *ctx), void *ctx);

/* Once every process of the check is gone: whether it made or changed, in the
 * workspace's repository, what git would read (its .git where there was none, or in it a
 * commondir, config.worktree, config, hooks or an entry of them, info or an entry of it,
 * shallow, rebase-merge, rebase-apply or sequencer: what check_git_before found missing
 * or could not pin, a link, or what a check that is not confined wrote), put another .git
 * in place of the one that was there, made a repository below the top (a .git, a bare
 * one), added a gitlink to the index, or rewrote the repository's history. What it made
 * is moved to <workspace>/.autopack/quarantine/<tag>.<name> (.1, .2, … after a name
 * taken; removed when it cannot be moved and is no directory); a gitlink is taken out of
 * the index, and a ref put back (with git, `heartbeat(ctx)`, nullable, called while it
 * runs). Returns 0 when it did nothing of the kind, else -1 with `err` naming each thing
 * and what became of it. */
int check_git_after(const char *workspace, const char *tag, const struct check_git *g, char *err,
    size_t errlen, void (*heartbeat)(void *ctx), void *ctx);

#endif
