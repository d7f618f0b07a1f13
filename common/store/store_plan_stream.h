/* A plan's text parsed one run at a time (store_plan_stream.c), for the import to hold the
 * parsed form of one run at a time whatever the plan's size. */
#ifndef AUTOPACK_STORE_PLAN_STREAM_H
#define AUTOPACK_STORE_PLAN_STREAM_H

#include <jansson.h>
#include <stdbool.h>

#include "common/store/store_internal.h"
#include "common/store/store_plan_arena.h"

struct plan_stream {
	const char *text; /* the plan's text */
	size_t text_len, pos;
	const char *source; /* the plan's name in messages */
	json_t *top;        /* the top level's members other than "runs" (its size, once read) */
	struct plan_arena arena; /* the run handed out last */
	size_t nruns;
	bool had_member, saw_runs, in_runs, first_run, done;
};

/* Read the plan from `text`; `source` names it. */
void plan_stream_init(struct plan_stream *ps, const char *text, size_t len, const char *source);
/* Release the stream (not the text). */
void plan_stream_free(struct plan_stream *ps);
/* The next element of the top level's "runs" in *run, or *run NULL at the end of the plan,
 * when ps->top holds the rest of the top level for its checks. The run lives in the
 * stream's arena until the next call or plan_stream_free: it is not to be kept, nor
 * decref'd (that would only walk it).
 * Returns 0, or STORE_EINVAL naming the line and column of invalid JSON. */
int plan_stream_next(struct plan_stream *ps, json_t **run, struct store_err *err);

#endif
