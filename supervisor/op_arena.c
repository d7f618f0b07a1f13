/* The memory of the queued events (op_arena in sup.h): each op is carved from a block of
 * the queue's arena, the arena moves with the queue into its commit group, and the group's
 * release gives the blocks back at once (kept for the next groups) instead of a free per
 * event. */
#include "supervisor/sup.h"
#include "common/util.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

/* The usual block: a group of a few hundred events fits in a few. */
#define OP_BLOCK (64 * 1024)
/* Blocks kept for reuse at most (4 MiB); more are freed. */
#define OP_SPARE_MAX 64

struct op_block {
	struct op_block *next;
	size_t size; /* bytes in data */
	alignas(max_align_t) char data[];
};

void *op_arena_alloc(struct sup *s, struct op_arena *a, size_t n)
{
	struct op_block *b = a->head;
	void *p;

	n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
	if (b == NULL || b->size - a->used < n) {
		if (n <= OP_BLOCK && s->op_spare != NULL) {
			b = s->op_spare;
			s->op_spare = b->next;
			s->op_nspare--;
		} else {
			size_t size = n > OP_BLOCK ? n : OP_BLOCK;

			b = xmalloc(sizeof *b + size);
			b->size = size;
		}
		b->next = a->head;
		a->head = b;
		a->used = 0;
	}
	p = b->data + a->used;
	a->used += n;
	return memset(p, 0, n);
}

void op_arena_release(struct sup *s, struct op_arena *a)
{
	struct op_block *b, *next;

	for (b = a->head; b != NULL; b = next) {
		next = b->next;
		if (b->size == OP_BLOCK && s->op_nspare < OP_SPARE_MAX) {
			b->next = s->op_spare;
			s->op_spare = b;
			s->op_nspare++;
		} else {
			free(b);
		}
	}
	*a = (struct op_arena){ 0 };
}

void op_arena_free_spare(struct sup *s)
{
	struct op_block *b;

	while ((b = s->op_spare) != NULL) {
		s->op_spare = b->next;
		free(b);
	}
	s->op_nspare = 0;
}
