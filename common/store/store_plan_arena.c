/* An arena for the parsed form of one run of a plan being imported: while a run's text is
 * parsed (and until it is released), this thread's jansson allocations come from it, a
 * bump of a pointer each, frees of them do nothing, and the next run starts by rewinding
 * it. Allocations of other threads, and of this one outside a parse, go to malloc. */
#include "common/store/store_plan_arena.h"
#include "common/util.h"

#include <jansson.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_ARENA_BLOCK (256u << 10)

/* The arena this thread's jansson allocations come from, if any. */
static _Thread_local struct plan_arena *plan_arena_cur;
/* The arena whose values this thread's frees leave alone (the one in use, or the one last
 * used until it is rewound). */
static _Thread_local struct plan_arena *plan_arena_owner;

/* Whether `p` lies in one of the arena's blocks. */
static bool plan_arena_has(const struct plan_arena *a, const void *p)
{
	uintptr_t u = (uintptr_t)p;

	for (size_t i = 0; i < a->nblocks; i++)
		if (u >= (uintptr_t)a->blocks[i] && u < (uintptr_t)a->blocks[i] + a->sizes[i])
			return true;
	return false;
}

/* Add a block of at least `size` bytes after the current one (or reuse the next). */
static void plan_arena_grow(struct plan_arena *a, size_t size)
{
	size_t next = a->nblocks == 0 ? 0 : a->cur + 1;

	if (next < a->nblocks && a->sizes[next] >= size) {
		a->cur = next;
		a->used = 0;
		return;
	}
	a->blocks = xrealloc(a->blocks, (a->nblocks + 1) * sizeof *a->blocks);
	a->sizes = xrealloc(a->sizes, (a->nblocks + 1) * sizeof *a->sizes);
	/* The new block goes at `next`, the blocks after it move up one. */
	memmove(a->blocks + next + 1, a->blocks + next, (a->nblocks - next) * sizeof *a->blocks);
	memmove(a->sizes + next + 1, a->sizes + next, (a->nblocks - next) * sizeof *a->sizes);
	a->sizes[next] = size > PLAN_ARENA_BLOCK ? size : PLAN_ARENA_BLOCK;
	a->blocks[next] = xmalloc(a->sizes[next]);
	a->nblocks++;
	a->cur = next;
	a->used = 0;
}

/* jansson's allocator: from the thread's arena when one is in use. */
static void *plan_arena_malloc(size_t size)
{
	struct plan_arena *a = plan_arena_cur;
	size_t n = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
	void *p;

	if (a == NULL)
		return malloc(size);
	if (a->nblocks == 0 || a->used + n > a->sizes[a->cur])
		plan_arena_grow(a, n);
	p = a->blocks[a->cur] + a->used;
	a->used += n;
	return p;
}

/* jansson's free: nothing for a value of the thread's arena. */
static void plan_arena_release(void *p)
{
	if (p != NULL && plan_arena_owner != NULL && plan_arena_has(plan_arena_owner, p))
		return;
	free(p);
}

void plan_arena_use(struct plan_arena *a)
{
	json_set_alloc_funcs(plan_arena_malloc, plan_arena_release);
	plan_arena_cur = a;
	if (a != NULL)
		plan_arena_owner = a;
}

void plan_arena_rewind(struct plan_arena *a)
{
	a->cur = 0;
	a->used = 0;
}

void plan_arena_free(struct plan_arena *a)
{
	if (plan_arena_cur == a)
		plan_arena_cur = NULL;
	if (plan_arena_owner == a)
		plan_arena_owner = NULL;
	for (size_t i = 0; i < a->nblocks; i++)
		free(a->blocks[i]);
	free(a->blocks);
	free(a->sizes);
	memset(a, 0, sizeof *a);
}
