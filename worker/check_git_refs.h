/*
 * A repository's history kept from a check command: its refs and HEAD, read before the
 * check (check_git_refs_take) and compared once every process of it is gone
 * (check_git_refs_after). A check may add objects and move a ref forward, as a commit
 * does; what it may not do is rewrite history: a ref moved to a commit that does not
 * descend from the one it named (`git commit --amend`, `git reset --hard HEAD~1`, `git
 * update-ref`, a file written into .git/refs), a ref removed, HEAD pointed at another
 * branch, or a replace ref made (refs/replace/, which git shows in place of the object it
 * names). Each is put back with git (worker/check_git_run.h) and fails the attempt.
 * Refs are read from the files of the `files` backend (loose refs, packed-refs, HEAD),
 * and through git for a repository whose refs are in a reftable. docs/worker.md, "What a
 * check cannot do".
 */
#ifndef AUTOPACK_CHECK_GIT_REFS_H
#define AUTOPACK_CHECK_GIT_REFS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* The most refs read: past that, the rest are not compared, and a ref missing after the
 * check is not taken as removed. */
#define CHECK_GIT_REFS_MAX 100000

struct check_git_ref {
	char *name;   /* "HEAD", "refs/heads/main", …; heap, with the value after its NUL */
	char *value;  /* the object's hex name, or "ref: <target>"; in name's allocation */
	size_t order; /* when it was added: a loose ref over a packed one */
};

struct check_git_refs {
	bool taken;               /* refs were read */
	bool capped;              /* there were more than CHECK_GIT_REFS_MAX */
	char gitdir[PATH_MAX];    /* the repository's directory (its HEAD) */
	char commondir[PATH_MAX]; /* where its refs are (the gitdir's commondir, else itself) */
	size_t n, cap;
	struct check_git_ref *ref; /* sorted by name, HEAD among them */
};

/* Read the refs and HEAD of the repository directory `gitdir` into `r` (freeing what it
 * held); `r` stays not taken when there is none to read. */
void check_git_refs_take(const char *gitdir, struct check_git_refs *r);

/* Free what `r` holds; it is then not taken. */
void check_git_refs_free(struct check_git_refs *r);

/* Compare the repository's refs now with `before`: each ref rewritten, removed or made
 * under refs/replace/, and HEAD moved, is put back (git run with `heartbeat(ctx)`,
 * nullable) and appended to `err` (at *k of `errlen`, "; " between). Returns how many it
 * found. */
int check_git_refs_after(const struct check_git_refs *before, char *err, size_t errlen, size_t *k,
    void (*heartbeat)(void *ctx), void *ctx);

#endif
