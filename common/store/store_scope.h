/*
 * A phase's scope in every shape the Python original stores in phases.scope
 * (docs/adoption.md, "Scopes"): an object with paths, read_only_context and
 * deliverables; deliverables as an object of buckets ({"code": [...], "tests": [...]});
 * no deliverables key; the whole object double-encoded as a JSON string; a single path.
 * Read here once, for adoption, plan import and dispatch alike.
 */
#ifndef AUTOPACK_STORE_SCOPE_H
#define AUTOPACK_STORE_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* How the scope was stored. */
enum store_scope_form {
	STORE_SCOPE_NONE,    /* SQL NULL or JSON null: no scope */
	STORE_SCOPE_OBJECT,  /* a JSON object */
	STORE_SCOPE_ENCODED, /* a JSON string holding the object (double-encoded) */
	STORE_SCOPE_PATH,    /* a single path, as a JSON string or bare text */
};

struct strtab;

/* A list of paths, each with where it was found ("deliverables.code[1]"); both arrays
 * are NULL-terminated. `index` is a table of the paths (common/strtab.h; NULL while the
 * list is short), so that each path is added once at a constant cost. */
struct store_scope_list {
	char **items;
	char **where;
	size_t n;
	struct strtab *index;
};

/* A scope read into lists: deliverables are the union of the buckets' lists, in order,
 * each path once; read_only_context entries given as {"path": ..., "reason": ...} are
 * their paths. A single path "a/b.py" is both the scope path and the one deliverable;
 * "a/" is a scope path without deliverables. */
struct store_scope {
	enum store_scope_form form;
	bool buckets; /* deliverables were an object of buckets */
	struct store_scope_list paths;
	struct store_scope_list context;
	struct store_scope_list deliverables;
};

/* Read the stored text of phases.scope (NULL for SQL NULL) into `sc`. Returns 0, or -1
 * with `why` saying what cannot be interpreted (sc is then empty). */
int store_scope_parse_text(const char *text, struct store_scope *sc, char *why, size_t whylen);
/* Read a scope given as a JSON value (a plan's scope) into `sc`, as store_scope_parse_text.
 * Messages name the part as a path below the scope ("deliverables.code[1]: ..."). */
int store_scope_parse_json(const json_t *v, struct store_scope *sc, char *why, size_t whylen);
/* Free what a parse put in `sc` and clear it. */
void store_scope_free(struct store_scope *sc);
/* Name a form for reports: "none", "object", "encoded", "path". */
const char *store_scope_form_name(enum store_scope_form form);

#endif
