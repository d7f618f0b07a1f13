/*
 * Deliverables: the files a builder call produced, parsed from the model's text and
 * written into the run's workspace, confined to the phase's scope.
 *
 * The model answers with one JSON document {"files":[{"path","mode","new_content"}]},
 * bare or inside a ``` fence. Writing is all-or-nothing at the validation step: every path
 * is checked before any file is written, and each refusal names the path and the rule.
 */
#ifndef AUTOPACK_DELIVERABLES_H
#define AUTOPACK_DELIVERABLES_H

#include <stdbool.h>
#include <stddef.h>

#define DLV_FILES_MAX 256

enum dlv_mode {
	DLV_CREATE,
	DLV_MODIFY,
	DLV_DELETE
};

struct dlv_file {
	char *path;
	enum dlv_mode mode;
	char *content; /* NULL for delete */
	size_t content_len;
};

struct dlv_set {
	struct dlv_file *files;
	size_t n;
};

/* Where a phase may write: under any of `paths` (files or directories) or exactly one of
 * `deliverables`; never, even in scope, a file in the directory of `protect` named as it,
 * alone or followed by '-' or '.' (the database: protect is its absolute path, and so its
 * -wal, -shm, lock and backups are spared too; NULL protects nothing), nor the file
 * `keep` names (the log file, --log-file), known by its device and inode wherever the
 * path reaches it (NULL keeps nothing). `heartbeat`
 * (nullable) is called with `ctx` between the files dlv_apply writes or deletes (after
 * each but the last, which the caller's next word follows): each is synced with its
 * directory, which a slow disk makes long for hundreds of files. */
struct dlv_scope {
	char *const *paths;
	size_t npaths;
	char *const *deliverables;
	size_t ndeliverables;
	const char *protect;
	void (*heartbeat)(void *ctx);
	void *ctx;
	const char *keep;
};

enum dlv_status {
	DLV_OK = 0,
	DLV_EPARSE = -1,   /* the text holds no valid files document */
	DLV_ESCOPE = -2,   /* a path broke a confinement rule */
	DLV_EIO = -3,      /* the file system refused */
	DLV_EMISSING = -4, /* deliverables absent after writing */
	/* the workspace holds something that is no directory where a path needs one, or a
	 * directory, a FIFO, a socket or a device where a path names a file: paths of the
	 * run's phases overlap, or a check made a special file there */
	DLV_ECONFLICT = -5,
};

/* Count the deliverables (paths relative to the workspace) that `set` creates or
 * modifies; "./a.py" and "a//b.py" name "a.py" and "a/b.py". A set that writes none of a
 * phase's deliverables does not complete it (NO_DELIVERABLES_WRITTEN). */
size_t dlv_count_written(const struct dlv_set *set, char *const *deliverables, size_t n);

/* Parse the model's text into `out`. Returns DLV_OK, or DLV_EPARSE with `err` saying what
 * was wrong (out is then empty). */
int dlv_parse(const char *text, struct dlv_set *out, char *err, size_t errlen);
void dlv_set_free(struct dlv_set *s);

/* Check every file of `set` against the workspace and scope, then write (temporary file,
 * fsync, rename) or delete each. Returns DLV_OK, DLV_ESCOPE or DLV_ECONFLICT (nothing
 * written, unless the workspace changed between the check and the writes) or DLV_EIO,
 * with `err` naming the path and the rule, the path in the way or the system error. */
int dlv_apply(const char *workspace, const struct dlv_scope *scope, const struct dlv_set *set,
    char *err, size_t errlen);

/* Check one relative path against the workspace and scope without writing. `wsfd` is the
 * workspace directory already open (looked under and left open), or -1: `workspace` is
 * opened here. Returns DLV_OK, DLV_ECONFLICT (the workspace holds a file where the path
 * needs a directory, or a directory, a FIFO, a socket or a device at the path), DLV_EIO
 * (the worker may not open the workspace, or open or look into a directory on the path:
 * its mode and owner named) or DLV_ESCOPE, with `err` set. */
int dlv_check_path(const char *workspace, int wsfd, const struct dlv_scope *scope, const char *path,
    char *err, size_t errlen);

/* Resolve a relative path for reading: it must name an existing regular file whose real
 * location is inside the workspace. Returns a heap absolute path, or NULL with `err`. */
char *dlv_resolve_read(const char *workspace, const char *path, char *err, size_t errlen);

/* Count the deliverables (paths relative to the workspace) that do not exist as files, and
 * list them comma-separated in `names`. `written` (nullable) is a set dlv_apply has just
 * written in full: a file deliverable it wrote (not deleted) is present without a look. */
size_t dlv_missing(const char *workspace, char *const *deliverables, size_t n,
    const struct dlv_set *written, char *names, size_t namelen);

#endif
