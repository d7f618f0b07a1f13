/* Reading the running supervisor's record from meta (written by the supervisor). */
#ifndef AUTOPACK_STORE_META_H
#define AUTOPACK_STORE_META_H

#include "common/store/store.h"

/* Read the pid and control socket the last supervisor recorded; *pid is 0 and *socket
 * NULL when none is recorded. *socket is a heap string. */
int store_meta_supervisor(struct store *st, int64_t *pid, char **socket, struct store_err *err);

#endif
