/* Workspace-relative paths: the rules every deliverable path obeys, checked the same way
 * when a plan is imported or a database adopted (common/store/) and when the worker writes
 * the files (worker/deliverables_apply.c). */
#ifndef AUTOPACK_RELPATH_H
#define AUTOPACK_RELPATH_H

#include <stdbool.h>
#include <stddef.h>

/* Normalise a workspace-relative path into out (size n): drop empty and "." components.
 * Returns NULL, or the rule the path breaks: empty, naming the workspace itself ("."),
 * absolute, a backslash or a control character, a ".." component, the .git directory
 * anywhere, the .autopack directory at the top, or longer than n - 1 bytes. */
const char *relpath_norm(const char *in, char *out, size_t n);
/* True when normalised `rel` equals normalised `entry` or lies under it. */
bool relpath_under(const char *rel, const char *entry);

#endif
