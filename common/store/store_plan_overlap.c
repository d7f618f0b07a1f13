/* The deliverables of one run's phases checked against each other: a hash table of every
 * path delivered and every directory on their way, each with the first phase that delivers
 * it as a file and the first that needs it as a directory. A path costs a pass over its
 * bytes, and a look-up for itself and for each of its directories not met before. */
#include "common/store/store_plan_overlap.h"
#include "common/joblimits.h"
#include "common/utf8.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_BASIS 2166136261u
#define FNV_PRIME 16777619u

/* The index of the path of n bytes at s (hash h), or PLAN_OVERLAP_NONE; *slot gets the
 * slot it is in, or the free one it would go in. */
static uint32_t overlap_find(
    const struct plan_overlap *ov, const char *s, size_t n, uint32_t h, size_t *slot)
{
	size_t i;

	*slot = 0;
	if (ov->slots == NULL)
		return PLAN_OVERLAP_NONE;
	for (i = (size_t)h & ov->mask; ov->slots[i] != 0; i = (i + 1) & ov->mask) {
		const struct plan_overlap_path *p = &ov->paths[ov->slots[i] - 1];

		if (p->hash == h && p->len == n && memcmp(ov->text + p->off, s, n) == 0) {
			*slot = i;
			return ov->slots[i] - 1;
		}
	}
	*slot = i;
	return PLAN_OVERLAP_NONE;
}

/* Make the hash table twice as large (16 slots at first), every path in its new slot. */
static void overlap_grow(struct plan_overlap *ov)
{
	size_t cap = ov->slots != NULL ? 2 * (ov->mask + 1) : 16;

	free(ov->slots);
	ov->slots = xcalloc(cap, sizeof *ov->slots);
	ov->mask = cap - 1;
	for (size_t k = 0; k < ov->n; k++) {
		size_t i = (size_t)ov->paths[k].hash & ov->mask;

		while (ov->slots[i] != 0)
			i = (i + 1) & ov->mask;
		ov->slots[i] = (uint32_t)k + 1;
		ov->paths[k].slot = (uint32_t)i;
	}
}

/* The index of the path of n bytes at s (hash h), added in no phase when it is new: its
 * text the n bytes at `off` in the table's text, or, with off PLAN_OVERLAP_NONE, a copy of
 * s put there. */
static uint32_t overlap_get(
    struct plan_overlap *ov, const char *s, size_t n, uint32_t h, uint32_t off)
{
	size_t slot;
	uint32_t k = overlap_find(ov, s, n, h, &slot);

	if (k != PLAN_OVERLAP_NONE)
		return k;
	if (ov->slots == NULL || 2 * (ov->n + 1) > ov->mask + 1) {
		overlap_grow(ov);
		overlap_find(ov, s, n, h, &slot);
	}
	if (ov->n == ov->cap) {
		ov->cap = ov->cap != 0 ? 2 * ov->cap : 64;
		ov->paths = xrealloc(ov->paths, ov->cap * sizeof *ov->paths);
	}
	if (off == PLAN_OVERLAP_NONE) {
		if (ov->text_len + n > ov->text_cap) {
			while (ov->text_len + n > ov->text_cap)
				ov->text_cap = ov->text_cap != 0 ? 2 * ov->text_cap : 4096;
			ov->text = xrealloc(ov->text, ov->text_cap);
		}
		memcpy(ov->text + ov->text_len, s, n);
		off = (uint32_t)ov->text_len;
		ov->text_len += n;
	}
	ov->paths[ov->n] = (struct plan_overlap_path){ .off = off,
		.len = (uint32_t)n,
		.hash = h,
		.slot = (uint32_t)slot,
		.file_phase = PLAN_OVERLAP_NONE,
		.dir_phase = PLAN_OVERLAP_NONE };
	ov->slots[slot] = (uint32_t)++ov->n;
	return (uint32_t)ov->n - 1;
}

void plan_overlap_reset(struct plan_overlap *ov)
{
	for (size_t k = 0; k < ov->n; k++)
		ov->slots[ov->paths[k].slot] = 0;
	ov->n = 0;
	ov->text_len = 0;
}

void plan_overlap_free(struct plan_overlap *ov)
{
	free(ov->paths);
	free(ov->slots);
	free(ov->text);
	free(ov->dirs);
	memset(ov, 0, sizeof *ov);
}

/* Hash the path of n bytes at s in one pass: its hash, and in ov->dirs the length and hash
 * of each of its directories, shallowest first (pairs). Returns how many directories. */
static size_t overlap_hash_dirs(struct plan_overlap *ov, const char *s, size_t n, uint32_t *h)
{
	size_t nd = 0;
	uint32_t v = FNV_BASIS;

	/* Two words a directory, one a byte at most. */
	if (ov->dirs_cap < 2 * n + 2) {
		free(ov->dirs);
		ov->dirs_cap = 2 * n + 2;
		ov->dirs = xcalloc(ov->dirs_cap, sizeof *ov->dirs);
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '/') {
			ov->dirs[2 * nd] = (uint32_t)i;
			ov->dirs[2 * nd + 1] = v;
			nd++;
		}
		v = (v ^ (unsigned char)s[i]) * FNV_PRIME;
	}
	*h = v;
	return nd;
}

/* Fill *clash with phase fp's file, recorded path f, and phase up's path u below it. */
static void overlap_clash(const struct plan_overlap *ov, struct plan_overlap_clash *clash,
    uint32_t fp, uint32_t f, uint32_t up, uint32_t u)
{
	*clash = (struct plan_overlap_clash){ fp, up, ov->text + ov->paths[f].off,
		ov->text + ov->paths[u].off, ov->paths[f].len, ov->paths[u].len };
}

int plan_overlap_add(
    struct plan_overlap *ov, const char *path, uint32_t phase, struct plan_overlap_clash *clash)
{
	size_t n = strlen(path), nd;
	uint32_t h, k, d;

	nd = overlap_hash_dirs(ov, path, n, &h);
	k = overlap_get(ov, path, n, h, PLAN_OVERLAP_NONE);
	/* A phase before this one delivers a file under this path. */
	if (ov->paths[k].dir_phase != PLAN_OVERLAP_NONE) {
		overlap_clash(ov, clash, phase, k, ov->paths[k].dir_phase, ov->paths[k].dir_via);
		return 1;
	}
	if (ov->paths[k].file_phase == PLAN_OVERLAP_NONE)
		ov->paths[k].file_phase = phase;
	/* Its directories, the deepest first: one already needed as a directory has its own
	 * directories recorded so, and none of them is a file (that would have clashed). */
	while (nd-- > 0) {
		d = overlap_get(ov, path, ov->dirs[2 * nd], ov->dirs[2 * nd + 1], ov->paths[k].off);
		if (ov->paths[d].file_phase != PLAN_OVERLAP_NONE) {
			overlap_clash(ov, clash, ov->paths[d].file_phase, d, phase, k);
			return 1;
		}
		if (ov->paths[d].dir_phase != PLAN_OVERLAP_NONE)
			break;
		ov->paths[d].dir_phase = phase;
		ov->paths[d].dir_via = k;
	}
	return 0;
}

int plan_overlap_probe(
    const struct plan_overlap *ov, const char *path, struct plan_overlap_clash *clash)
{
	size_t n = strlen(path), slot;
	uint32_t v = FNV_BASIS, k;
	const struct plan_overlap_path *p;

	/* Its directories, the shallowest first: a file that one of them is comes first. */
	for (size_t i = 0; i <= n; i++) {
		if (i == n || path[i] == '/') {
			k = overlap_find(ov, path, i, v, &slot);
			p = k != PLAN_OVERLAP_NONE ? &ov->paths[k] : NULL;
			if (p != NULL && i < n && p->file_phase != PLAN_OVERLAP_NONE) {
				*clash = (struct plan_overlap_clash){ p->file_phase,
					PLAN_OVERLAP_NONE, ov->text + p->off, path, p->len, n };
				return 1;
			}
			if (p != NULL && i == n && p->dir_phase != PLAN_OVERLAP_NONE) {
				*clash = (struct plan_overlap_clash){ PLAN_OVERLAP_NONE,
					p->dir_phase, path, ov->text + ov->paths[p->dir_via].off, n,
					ov->paths[p->dir_via].len };
				return 1;
			}
		}
		if (i < n)
			v = (v ^ (unsigned char)path[i]) * FNV_PRIME;
	}
	return 0;
}

/* Quote the n bytes at s into dst (cap bytes) as a message shows a path. */
static char *overlap_quote(char *dst, size_t cap, const char *s, size_t n)
{
	char path[JOB_PATH_MAX + 1];

	snprintf(path, sizeof path, "%.*s", (int)(n < JOB_PATH_MAX ? n : JOB_PATH_MAX), s);
	return utf8_one_line(dst, path, cap);
}

void plan_overlap_say(char *buf, size_t n, const struct plan_overlap_clash *clash,
    const char *file_who, const char *under_who)
{
	char file[101], under[101];

	snprintf(buf, n,
	    "the run's deliverables overlap: %s delivers the file \"%s\", and %s delivers \"%s\" "
	    "under it: a path cannot be both a file and a directory, so the later of the two "
	    "phases would fail WRITE_FAILED; no phase may deliver a path under a file another "
	    "phase of its run delivers",
	    file_who, overlap_quote(file, sizeof file, clash->file, clash->file_len), under_who,
	    overlap_quote(under, sizeof under, clash->under, clash->under_len));
}
