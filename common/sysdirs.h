/* The system directories a run's workspace may neither be nor hold: the model's files and
 * its check command are written there, and could replace a program that runs with the API
 * keys. */
#ifndef AUTOPACK_COMMON_SYSDIRS_H
#define AUTOPACK_COMMON_SYSDIRS_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the directory `dir` is `path` or holds it (both real paths). */
bool path_holds(const char *dir, const char *path);

/* Whether the directory `dir` (false when it cannot be resolved, a missing one among them)
 * is or holds one of /usr, /etc, /bin, /sbin, /lib, /lib64, /boot, /dev, /proc and /sys,
 * by their real paths, or, with `own_binary`, this program's binary. `what` (n bytes)
 * gets the real path it holds. */
bool sysdirs_held(const char *dir, bool own_binary, char *what, size_t n);

#endif
