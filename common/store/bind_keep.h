/* Parameters left bound between runs of one statement: a reset keeps a statement's
 * bindings, so a value equal to what a parameter already holds is not bound again. The
 * writer's event inserts bind 23 values an event, and consecutive events of one attempt
 * share most of them (its ids, provider, model, role, kind, status). */
#ifndef AUTOPACK_STORE_BIND_KEEP_H
#define AUTOPACK_STORE_BIND_KEEP_H

#include <stdbool.h>
#include <stdint.h>

struct db_stmt;

#define BIND_KEEP_MAX 24

/* What each parameter of one statement holds, for the parameters bound through it. */
struct bind_keep {
	uint32_t known;                  /* bit i: parameter i holds what is noted below */
	bool is_text[BIND_KEEP_MAX];     /* a text (or NULL), else an integer */
	int64_t num[BIND_KEEP_MAX];      /* the integer */
	const char *text[BIND_KEEP_MAX]; /* the text bound without a copy; NULL: NULL */
};

/* Forget what the parameters hold: call it whenever the statement is bound by other
 * means, cleared, or a kept text it holds may be released. */
void bind_keep_forget(struct bind_keep *k);
/* Bind parameter i (1-based, < BIND_KEEP_MAX) to v unless it holds v already. */
void bind_keep_int64(struct db_stmt *s, struct bind_keep *k, int i, int64_t v);
/* Bind parameter i to the text v without a copy (NULL binds NULL) unless it holds an
 * equal text already: v, like the text it holds, must stay valid until the statement's
 * next step and until bind_keep_forget. */
void bind_keep_text(struct db_stmt *s, struct bind_keep *k, int i, const char *v);

#endif
