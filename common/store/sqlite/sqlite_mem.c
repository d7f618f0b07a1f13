/* SQLite's memory: blocks up to 2 KiB come from free lists by size class, one set of lists
 * per thread, and go back to them; larger ones are malloc's. SQLite allocates a dozen small
 * blocks for each statement it runs (cursors, records, values) and frees them at its end;
 * Debian's library is built without lookaside (SQLITE_OMIT_LOOKASIDE), its own cache for
 * them, so each went through malloc and free. A block freed by another thread than the one
 * that took it joins that thread's lists. Blocks on the lists are kept for the process's
 * life: at most what SQLite held at once, by class. */
#include "common/store/sqlite/db_sqlite.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The header before each block: its class (-1: a malloc'ed block) and, for a malloc'ed
 * block, its size; 16 bytes keep blocks 16-byte aligned. */
struct mem_head {
	int64_t cls;
	int64_t size;
};

/* A free block: the first bytes of its space link it to the next. */
struct mem_free {
	struct mem_free *next;
};

enum {
	MEM_CLASSES = 7,
	MEM_TRIM_KEEP = 8 << 20 /* bytes free at the heap's top glibc keeps (sqlite_mem_use) */
};
static const int mem_class_size[MEM_CLASSES] = { 32, 64, 128, 256, 512, 1024, 2048 };
static _Thread_local struct mem_free *mem_lists[MEM_CLASSES];

/* The smallest class of blocks of `n` bytes, or -1 when none is large enough. */
static int mem_class(int n)
{
	for (int c = 0; c < MEM_CLASSES; c++)
		if (n <= mem_class_size[c])
			return c;
	return -1;
}

/* The header of block `p`. */
static struct mem_head *mem_head(void *p)
{
	return (struct mem_head *)p - 1;
}

/* A block of at least `n` bytes, or NULL. */
static void *mem_malloc(int n)
{
	int c = mem_class(n);
	struct mem_head *h;

	if (c >= 0 && mem_lists[c] != NULL) {
		struct mem_free *f = mem_lists[c];

		mem_lists[c] = f->next;
		return f;
	}
	h = malloc(sizeof *h + (size_t)(c >= 0 ? mem_class_size[c] : n));
	if (h == NULL)
		return NULL;
	h->cls = c;
	h->size = c >= 0 ? mem_class_size[c] : n;
	return h + 1;
}

/* Give block `p` back. */
static void mem_release(void *p)
{
	struct mem_head *h;
	struct mem_free *f = p;

	if (p == NULL)
		return;
	h = mem_head(p);
	if (h->cls < 0) {
		free(h);
		return;
	}
	f->next = mem_lists[h->cls];
	mem_lists[h->cls] = f;
}

/* The usable size of block `p`. */
static int mem_size(void *p)
{
	return p != NULL ? (int)mem_head(p)->size : 0;
}

/* Block `p` resized to `n` bytes (its contents kept), or NULL with `p` untouched. */
static void *mem_realloc(void *p, int n)
{
	void *q;

	if (p == NULL)
		return mem_malloc(n);
	if (n <= mem_size(p) && mem_head(p)->cls >= 0)
		return p;
	if ((q = mem_malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, (size_t)(mem_size(p) < n ? mem_size(p) : n));
	mem_release(p);
	return q;
}

/* The size a request of `n` bytes gets. */
static int mem_roundup(int n)
{
	int c = mem_class(n);

	return c >= 0 ? mem_class_size[c] : (n + 7) & ~7;
}

/* Nothing to set up or tear down. */
static int mem_init(void *arg)
{
	(void)arg;
	return SQLITE_OK;
}

/* Nothing to tear down. */
static void mem_shutdown(void *arg)
{
	(void)arg;
}

/* Give SQLite these allocation functions; to be called before SQLite is initialised (it
 * refuses them, harmlessly, after). Under AddressSanitizer SQLite keeps malloc, so that
 * its blocks are checked one by one.
 *
 * Each split of a B-tree page takes a 64 KiB scratch block from malloc and frees it at
 * once; at the top of the heap, glibc gave it back to the kernel (a heap trimmed above
 * 128 KiB) and took it again at the next split, faulting its pages in again: two brk
 * calls and a page fault a split, near half of an import's system time. The heap keeps
 * up to MEM_TRIM_KEEP free at its top. */
void sqlite_mem_use(void)
{
	static const sqlite3_mem_methods methods = { mem_malloc, mem_release, mem_realloc, mem_size,
		mem_roundup, mem_init, mem_shutdown, NULL };

	mallopt(M_TRIM_THRESHOLD, MEM_TRIM_KEEP);
#if defined(__SANITIZE_ADDRESS__)
	(void)methods;
#else
	sqlite3_config(SQLITE_CONFIG_MALLOC, &methods);
#endif
}
