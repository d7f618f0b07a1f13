/* Workspace-relative paths: the rules every deliverable path obeys, checked the same way
 * when a plan is imported or a database adopted (common/store/) and when the worker writes
 * the files (worker/deliverables_apply.c). */
#ifndef AUTOPACK_RELPATH_H
#define AUTOPACK_RELPATH_H

#include <stdbool.h>
#include <stddef.h>

/* The longest name of one path component (NAME_MAX). */
#define RELPATH_NAME_MAX 255

/* Normalise a workspace-relative path into out (size n): drop empty and "." components.
 * Returns NULL, or the rule the path breaks: empty, naming the workspace itself ("."),
 * absolute, a backslash or a control character (C0, DEL or C1), a bidirectional-text
 * control (U+202A-U+202E, U+2066-U+2069), a ".." component, a component longer than
 * RELPATH_NAME_MAX bytes or with leading or trailing whitespace, the .git directory
 * anywhere, the .autopack directory at the top (either in any case: .GIT, .Autopack), or
 * longer than n - 1 bytes. */
const char *relpath_norm(const char *in, char *out, size_t n);
/* The same for a path that must name a file: also refused when it ends with "/". */
const char *relpath_file(const char *in, char *out, size_t n);
/* Check a list of file paths (`what` names the list, e.g. "scope.deliverables"): each
 * under relpath_file, no two naming the same file once normalised ("a.py", "./a.py"),
 * none a file that another needs as a directory ("a", "a/b.py"). Returns 0, or -1 with
 * `why` naming the entries and the rule. */
int relpath_files_check(
    const char *what, const char *const *paths, size_t count, char *why, size_t n);
/* True when normalised `rel` equals normalised `entry` or lies under it. */
bool relpath_under(const char *rel, const char *entry);

#endif
