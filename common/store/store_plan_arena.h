/* An arena for the parsed form of one run of a plan being imported
 * (store_plan_arena.c): jansson allocates from it while the run is parsed, and the run is
 * released at once by rewinding the arena instead of with a free per value. */
#ifndef AUTOPACK_STORE_PLAN_ARENA_H
#define AUTOPACK_STORE_PLAN_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct plan_arena {
	char **blocks; /* blocks[0 .. nblocks), each PLAN_ARENA_BLOCK bytes or one value */
	size_t *sizes;
	size_t nblocks, cur, used;
};

/* Make this thread's jansson values come from `a` (NULL: from malloc again) until the next
 * call; values freed meanwhile that lie in `a` are left to plan_arena_rewind. */
void plan_arena_use(struct plan_arena *a);
/* Release everything allocated from `a`, keeping its memory for the next run. */
void plan_arena_rewind(struct plan_arena *a);
/* Free the arena's memory. */
void plan_arena_free(struct plan_arena *a);

#endif
