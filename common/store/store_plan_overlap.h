/* The deliverables of one run's phases checked against each other as a plan is imported
 * (store_plan_overlap.c): no phase may deliver a path under a file another phase of the run
 * delivers ("out/a.py" and "out/a.py/x.py"), since the workspace cannot hold both and the
 * later phase would fail WRITE_FAILED. Two phases delivering the same file do not overlap:
 * the later one writes it again, as a run's phases run one after the other. Paths are
 * normalised (relpath_norm) by the caller. */
#ifndef AUTOPACK_STORE_PLAN_OVERLAP_H
#define AUTOPACK_STORE_PLAN_OVERLAP_H

#include <stddef.h>
#include <stdint.h>

/* A path recorded: delivered as a file, or needed as a directory by a file under it. In 32
 * bits, as a plan (at most STORE_PLAN_MAX bytes) holds fewer paths and phases, so that a
 * run of 100,000 phases costs a few MiB. */
struct plan_overlap_path {
	uint32_t off, len;   /* the path: the first len bytes at off in the table's text */
	uint32_t hash;       /* of the path */
	uint32_t slot;       /* where it is in the hash table */
	uint32_t file_phase; /* the first phase delivering it as a file, else PLAN_OVERLAP_NONE */
	uint32_t dir_phase; /* the first phase delivering a file under it, else PLAN_OVERLAP_NONE */
	uint32_t dir_via;   /* that file (an index into paths) */
};

#define PLAN_OVERLAP_NONE UINT32_MAX

/* The paths of one run's phases. Zeroed, it is empty; reset between runs, it keeps its
 * memory, so that an import of many small runs allocates once. A directory's path is the
 * start of the text of the file that first needed it: each file's text is kept once. */
struct plan_overlap {
	struct plan_overlap_path *paths;
	size_t n, cap;
	uint32_t *slots; /* indexes + 1 into paths, 0 for a free slot; mask + 1 of them */
	size_t mask;
	char *text; /* the files' paths, one after the other */
	size_t text_len, text_cap;
	uint32_t *dirs; /* the path being added: where each of its directories ends, its hash */
	size_t dirs_cap;
};

/* Two phases that overlap: `file_phase` delivers the file `file` (of file_len bytes),
 * `under_phase` the path `under` below it. A phase not recorded (plan_overlap_probe) is
 * PLAN_OVERLAP_NONE. The paths live until the table is next changed. */
struct plan_overlap_clash {
	uint32_t file_phase, under_phase;
	const char *file, *under;
	size_t file_len, under_len;
};

/* Empty the table, keeping its memory. */
void plan_overlap_reset(struct plan_overlap *ov);
/* Free the table's memory. */
void plan_overlap_free(struct plan_overlap *ov);
/* Record that phase `phase` (a number the caller gives each phase, in order) delivers the
 * file `path`, checked against the paths of the phases recorded before it. Returns 0, or 1
 * with *clash naming the two phases and paths (the table is then to be reset). A phase
 * must not deliver a path under one of its own files (relpath_files_check refuses that
 * first). */
int plan_overlap_add(
    struct plan_overlap *ov, const char *path, uint32_t phase, struct plan_overlap_clash *clash);
/* Check the file `path` of a phase not recorded (one the run already has in the database)
 * against the recorded phases, without recording it. Returns 0, or 1 with *clash. */
int plan_overlap_probe(
    const struct plan_overlap *ov, const char *path, struct plan_overlap_clash *clash);
/* Say what *clash means into buf (n bytes), naming the phase delivering the file as
 * `file_who` and the other as `under_who` ("phase \"p1\" (runs[0].tiers[0].phases[0])"). */
void plan_overlap_say(char *buf, size_t n, const struct plan_overlap_clash *clash,
    const char *file_who, const char *under_who);

#endif
