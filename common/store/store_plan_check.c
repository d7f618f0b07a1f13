/* Validation of a plan document, without the database: shapes, types, identifiers,
 * scope paths and duplicates. The first error names its JSON path. */
#include "common/store/store_internal.h"
#include "common/jsonload.h"
#include "common/store/store_plan.h"
#include "common/store/store_plan_overlap.h"
#include "common/store/store_scope.h"
#include "common/joblimits.h"
#include "common/relpath.h"
#include "common/strbuf.h"
#include "common/strtab.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_ID_MAX 128
#define PLAN_PATH_MAX 200

enum plan_kind {
	PLAN_ID,     /* [A-Za-z0-9._-], 1..128, not starting with '.' or '-' */
	PLAN_TEXT,   /* non-empty string */
	PLAN_STRING, /* any string */
	PLAN_POSINT, /* integer >= 1 */
	PLAN_BOOL,
	PLAN_CHOICE,       /* one of `choices` */
	PLAN_ARRAY,        /* non-empty array, checked by the caller */
	PLAN_OBJECT,       /* object, checked by the caller */
	PLAN_PATHS,        /* array of relative paths */
	PLAN_SCOPE,        /* a scope: object, or a string (a JSON object, or one path) */
	PLAN_CONTEXT,      /* array of relative paths or {"path", "reason"} objects */
	PLAN_DELIVERABLES, /* array of relative paths, or an object of such arrays */
};

/* The most fields an object of a plan has (the phase's). */
#define PLAN_FIELDS_MAX 40

struct plan_field {
	const char *name;
	enum plan_kind kind;
	bool required;
	const char *const *choices;
};

static const char *const plan_safety[] = { "normal", "safety_critical", NULL };
static const char *const plan_scope_kinds[] = { "multi_tier", "single_tier", NULL };
static const char *const plan_complexity[] = { "low", "medium", "high", "maintenance", NULL };

static const struct plan_field plan_top_fields[] = {
	{ "runs", PLAN_ARRAY, true, NULL },
};

static const struct plan_field plan_run_fields[] = {
	{ "run_id", PLAN_ID, true, NULL },
	{ "append", PLAN_BOOL, false, NULL },
	{ "workspace", PLAN_TEXT, false, NULL },
	{ "goal", PLAN_STRING, false, NULL },
	{ "safety_profile", PLAN_CHOICE, false, plan_safety },
	{ "run_scope", PLAN_CHOICE, false, plan_scope_kinds },
	{ "token_cap", PLAN_POSINT, false, NULL },
	{ "max_phases", PLAN_POSINT, false, NULL },
	{ "max_duration_minutes", PLAN_POSINT, false, NULL },
	{ "tiers", PLAN_ARRAY, true, NULL },
};

/* Fields of a run that an append entry may not set: the run keeps its own. */
static const char *const plan_run_only[] = {
	"workspace",
	"goal",
	"safety_profile",
	"run_scope",
	"token_cap",
	"max_phases",
	"max_duration_minutes",
	NULL,
};

static const struct plan_field plan_tier_fields[] = {
	{ "tier_id", PLAN_ID, true, NULL },
	{ "name", PLAN_TEXT, true, NULL },
	{ "description", PLAN_STRING, false, NULL },
	{ "token_cap", PLAN_POSINT, false, NULL },
	{ "ci_run_cap", PLAN_POSINT, false, NULL },
	{ "phases", PLAN_ARRAY, true, NULL },
};

/* In the order of enum store_plan_phase_field. */
static const struct plan_field plan_phase_fields[] = {
	{ "phase_id", PLAN_ID, true, NULL },
	{ "name", PLAN_TEXT, true, NULL },
	{ "description", PLAN_STRING, false, NULL },
	{ "task_category", PLAN_TEXT, false, NULL },
	{ "complexity", PLAN_CHOICE, false, plan_complexity },
	{ "builder_mode", PLAN_TEXT, false, NULL },
	{ "phase_type", PLAN_TEXT, false, NULL },
	{ "scope", PLAN_SCOPE, true, NULL },
	{ "check_command", PLAN_TEXT, false, NULL },
	{ "max_builder_attempts", PLAN_POSINT, false, NULL },
	{ "max_auditor_attempts", PLAN_POSINT, false, NULL },
	{ "incident_token_cap", PLAN_POSINT, false, NULL },
};
_Static_assert(sizeof plan_phase_fields / sizeof *plan_phase_fields == PLAN_F_PHASE_N,
    "a phase's fields are those of enum store_plan_phase_field");

static const struct plan_field plan_scope_fields[] = {
	{ "paths", PLAN_PATHS, false, NULL },
	{ "read_only_context", PLAN_CONTEXT, false, NULL },
	{ "deliverables", PLAN_DELIVERABLES, true, NULL },
};

static const struct plan_field plan_context_fields[] = {
	{ "path", PLAN_TEXT, true, NULL },
	{ "reason", PLAN_STRING, false, NULL },
};

/* Where a value is in the plan: a member (`key`) or element (`index`) of the value at
 * `up`, or, without `up`, the value checked, at JSON path `root` ("" for the top level).
 * The path is formatted only when a message names it. */
struct plan_at {
	const struct plan_at *up;
	const char *key;  /* a member's name, or NULL for an element */
	bool cut;         /* the name is the plan's own: at most 60 bytes of it are shown */
	size_t index;     /* an element's index */
	const char *root; /* without `up` */
};

/* The member `key` of the value at `up`. */
#define PLAN_KEY(up_, key_) ((struct plan_at){ .up = (up_), .key = (key_) })
/* The member `key`, a name from the plan, of the value at `up`. */
#define PLAN_KEY_CUT(up_, key_) ((struct plan_at){ .up = (up_), .key = (key_), .cut = true })
/* Element `i` of the array at `up`. */
#define PLAN_INDEX(up_, i_) ((struct plan_at){ .up = (up_), .index = (i_) })

/* A phase_id seen in the run being checked, and where (tiers[tier].phases[phase]). */
struct plan_seen {
	const char *id;
	size_t tier, phase;
};

/* Format the JSON path of `at` into dst (cap bytes; a path that long is cut); returns
 * the length it has uncut. */
static size_t plan_at_format(const struct plan_at *at, char *dst, size_t cap)
{
	size_t n;

	if (at->up == NULL)
		return (size_t)snprintf(dst, cap, "%s", at->root);
	n = plan_at_format(at->up, dst, cap);
	if (n >= cap)
		return n;
	if (at->key != NULL)
		n += (size_t)snprintf(dst + n, cap - n, "%s%.*s", n > 0 ? "." : "",
		    at->cut ? 60 : (int)strlen(at->key), at->key);
	else
		n += (size_t)snprintf(dst + n, cap - n, "[%zu]", at->index);
	return n;
}

/* Report "<source>: <path of at>: <message>" and return STORE_EINVAL. */
__attribute__((format(printf, 4, 5))) static int plan_fail(
    struct store_err *err, const char *source, const struct plan_at *at, const char *fmt, ...)
{
	char msg[640], path[PLAN_PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	plan_at_format(at, path, sizeof path);
	return store_fail(
	    err, STORE_EINVAL, "%s: %s: %s", source, path[0] != '\0' ? path : "(top level)", msg);
}

/* Check a string value: no NUL bytes, and non-empty unless `allow_empty`. */
static int plan_check_string(const json_t *v, bool allow_empty, const char *source,
    const struct plan_at *at, struct store_err *err)
{
	if (!json_is_string(v))
		return plan_fail(err, source, at, "expected string, got %s", json_kind_name(v));
	if (strlen(json_string_value(v)) != json_string_length(v))
		return plan_fail(err, source, at, "string contains a NUL byte");
	if (!allow_empty && json_string_length(v) == 0)
		return plan_fail(err, source, at, "expected a non-empty string");
	return 0;
}

/* Whether `s` is made only of the characters of an identifier (A-Z a-z 0-9 . _ -). */
static bool plan_id_chars(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		        c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Check an identifier (run_id, tier_id, phase_id). */
static int plan_check_id(
    const json_t *v, const char *source, const struct plan_at *at, struct store_err *err)
{
	const char *s;
	char shown[61];
	int rc = plan_check_string(v, false, source, at, err);

	if (rc != 0)
		return rc;
	s = json_string_value(v);
	if (json_string_length(v) > PLAN_ID_MAX || s[0] == '.' || s[0] == '-' || !plan_id_chars(s))
		return plan_fail(err, source, at,
		    "\"%s\" is not a valid id (1-%d of A-Z a-z 0-9 . _ -, not starting with "
		    ". or -)",
		    utf8_one_line(shown, s, sizeof shown), PLAN_ID_MAX);
	return 0;
}

/* Check a path inside the workspace: relative, without "..". */
static int plan_check_relpath(
    const json_t *v, const char *source, const struct plan_at *at, struct store_err *err)
{
	const char *s, *p;
	char shown[101];
	int rc = plan_check_string(v, false, source, at, err);

	if (rc != 0)
		return rc;
	s = json_string_value(v);
	if (s[0] == '/')
		return plan_fail(err, source, at,
		    "\"%s\" is absolute; paths are relative to the run's workspace",
		    utf8_one_line(shown, s, sizeof shown));
	for (p = s; p != NULL; p = strchr(p, '/') != NULL ? strchr(p, '/') + 1 : NULL)
		if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
			return plan_fail(err, source, at,
			    "\"%s\" leaves the workspace (\"..\" is not allowed)",
			    utf8_one_line(shown, s, sizeof shown));
	return 0;
}

/* What the check of a phase keeps: its scope parsed, the scope's text as it is stored,
 * and each field's value (NULL: absent) in `vals`. */
struct plan_scope_kept {
	struct store_scope sc;
	char *text;
	const json_t **vals;
};

static int plan_check_object(const json_t *obj, const struct plan_field *fields, size_t n,
    const char *source, const struct plan_at *at, struct plan_scope_kept *keep,
    struct store_err *err);
static int plan_check_scope(const json_t *scope, const char *source, const struct plan_at *at,
    struct store_scope *out, char **text, struct store_err *err);

/* Check an array of workspace paths; with `objects` an entry may also be a {"path",
 * "reason"} object (read_only_context). */
static int plan_check_path_array(const json_t *v, bool objects, const char *source,
    const struct plan_at *at, struct store_err *err)
{
	size_t i;
	json_t *e;
	int rc;

	if (!json_is_array(v))
		return plan_fail(err, source, at, "expected array of %s, got %s",
		    objects ? "paths" : "strings", json_kind_name(v));
	json_array_foreach(v, i, e)
	{
		struct plan_at sub = PLAN_INDEX(at, i);

		if (objects && json_is_object(e)) {
			struct plan_at sub_path = PLAN_KEY(&sub, "path");

			rc = plan_check_object(e, plan_context_fields,
			    ARRAY_SIZE(plan_context_fields), source, &sub, NULL, err);
			if (rc == 0)
				rc = plan_check_relpath(
				    json_object_get(e, "path"), source, &sub_path, err);
		} else {
			rc = plan_check_relpath(e, source, &sub, err);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Check deliverables: an array of relative paths, or an object of buckets, each such an
 * array ({"code": [...], "tests": [...]}). */
static int plan_check_deliverables(
    const json_t *v, const char *source, const struct plan_at *at, struct store_err *err)
{
	const char *key;
	json_t *e;
	int rc;

	if (!json_is_object(v))
		return plan_check_path_array(v, false, source, at, err);
	json_object_foreach((json_t *)v, key, e)
	{
		struct plan_at sub = PLAN_KEY_CUT(at, key);

		rc = plan_check_path_array(e, false, source, &sub, err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Check one field's value against its kind (a scope is kept in `keep` when it is given). */
static int plan_check_field(const struct plan_field *f, const json_t *v, const char *source,
    const struct plan_at *at, struct plan_scope_kept *keep, struct store_err *err)
{
	switch (f->kind) {
	case PLAN_ID: return plan_check_id(v, source, at, err);
	case PLAN_TEXT:
	case PLAN_STRING: return plan_check_string(v, f->kind == PLAN_STRING, source, at, err);
	case PLAN_POSINT:
		if (!json_is_integer(v) || json_integer_value(v) < 1)
			return plan_fail(err, source, at, "expected a positive integer, got %s",
			    json_is_integer(v) ? "a number below 1" : json_kind_name(v));
		return 0;
	case PLAN_BOOL:
		if (!json_is_boolean(v))
			return plan_fail(
			    err, source, at, "expected true or false, got %s", json_kind_name(v));
		return 0;
	case PLAN_CHOICE: {
		char list[120] = "", shown[61];
		int rc = plan_check_string(v, false, source, at, err);

		if (rc != 0)
			return rc;
		for (const char *const *c = f->choices; *c != NULL; c++) {
			if (strcmp(*c, json_string_value(v)) == 0)
				return 0;
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			    c == f->choices ? "" : ", ", *c);
		}
		return plan_fail(err, source, at, "\"%s\" is not one of %s",
		    utf8_one_line(shown, json_string_value(v), sizeof shown), list);
	}
	case PLAN_ARRAY:
		if (!json_is_array(v))
			return plan_fail(
			    err, source, at, "expected array, got %s", json_kind_name(v));
		if (json_array_size(v) == 0)
			return plan_fail(err, source, at, "expected a non-empty array");
		return 0;
	case PLAN_OBJECT:
		if (!json_is_object(v))
			return plan_fail(
			    err, source, at, "expected object, got %s", json_kind_name(v));
		return 0;
	case PLAN_PATHS: return plan_check_path_array(v, false, source, at, err);
	case PLAN_SCOPE:
		return plan_check_scope(v, source, at, keep != NULL ? &keep->sc : NULL,
		    keep != NULL ? &keep->text : NULL, err);
	case PLAN_CONTEXT: return plan_check_path_array(v, true, source, at, err);
	case PLAN_DELIVERABLES: return plan_check_deliverables(v, source, at, err);
	}
	return 0;
}

/* Check an object against its field table: no unknown fields, required ones present,
 * each present (non-null) value of the right kind. `at` is where the object is. */
static int plan_check_object(const json_t *obj, const struct plan_field *fields, size_t n,
    const char *source, const struct plan_at *at, struct plan_scope_kept *keep,
    struct store_err *err)
{
	json_t *val[PLAN_FIELDS_MAX] = { NULL }; /* each field's value, found in one pass */
	const char *key;
	json_t *v;
	int rc;

	assert(n <= PLAN_FIELDS_MAX);
	if (!json_is_object(obj))
		return plan_fail(err, source, at, "expected object, got %s", json_kind_name(obj));
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t i;

		for (i = 0;
		     i < n && (fields[i].name[0] != key[0] || strcmp(fields[i].name, key) != 0);
		     i++)
			;
		if (i == n) {
			struct plan_at sub = PLAN_KEY_CUT(at, key);

			return plan_fail(err, source, &sub, "unknown field");
		}
		val[i] = v;
	}
	for (size_t i = 0; i < n; i++) {
		struct plan_at sub = PLAN_KEY(at, fields[i].name);

		v = val[i];
		if (v == NULL || json_is_null(v)) {
			if (fields[i].required)
				return plan_fail(err, source, &sub, "missing (required)");
			continue;
		}
		rc = plan_check_field(&fields[i], v, source, &sub, keep, err);
		if (rc != 0)
			return rc;
	}
	if (keep != NULL && keep->vals != NULL)
		memcpy(keep->vals, val, n * sizeof *val);
	return 0;
}

/* Return 1 if deliverable `d` lies under one of the scope paths (or there are none), as
 * the worker judges it: normalised paths, "." granting the whole workspace. */
static int plan_in_scope(const struct store_scope_list *paths, const char *d)
{
	char nd[JOB_PATH_MAX + 1], np[JOB_PATH_MAX + 1];

	if (paths->n == 0)
		return 1;
	if (relpath_norm(d, nd, sizeof nd) != NULL)
		return 1; /* refused by the path rules, with a better message */
	for (size_t i = 0; i < paths->n; i++) {
		const char *p = paths->items[i];

		if (strcmp(p, ".") == 0 || strcmp(p, "./") == 0)
			return 1;
		if (relpath_norm(p, np, sizeof np) == NULL && relpath_under(nd, np))
			return 1;
	}
	return 0;
}

/* Check a scope object's fields. */
static int plan_check_scope_object(
    const json_t *scope, const char *source, const struct plan_at *at, struct store_err *err)
{
	struct plan_at sub = PLAN_KEY(at, "deliverables");
	const json_t *dels = json_object_get(scope, "deliverables");

	if (json_is_object(scope) && (dels == NULL || json_is_null(dels))) {
		return plan_fail(err, source, &sub,
		    "missing (required: a phase must name at least one deliverable)");
	}
	return plan_check_object(
	    scope, plan_scope_fields, ARRAY_SIZE(plan_scope_fields), source, at, NULL, err);
}

/* Append `s` to `b` as a JSON string, as jansson writes it. */
static void plan_json_string(struct strbuf *b, const char *s)
{
	const char *p = s;
	json_t *j;
	char *text;

	while (*p != '\0' && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
		p++;
	if (*p == '\0') {
		strbuf_put(b, "\"", 1);
		strbuf_put(b, s, (size_t)(p - s));
		strbuf_put(b, "\"", 1);
		return;
	}
	j = json_string(s);
	text = j != NULL ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	if (text == NULL) {
		fprintf(stderr, "autopack: out of memory serialising a scope\n");
		abort();
	}
	strbuf_puts(b, text);
	free(text);
}

/* Append a list of paths to `b` as a JSON array. */
static void plan_json_list(struct strbuf *b, const struct store_scope_list *l)
{
	strbuf_put(b, "[", 1);
	for (size_t i = 0; i < l->n; i++) {
		if (i > 0)
			strbuf_put(b, ",", 1);
		plan_json_string(b, l->items[i]);
	}
	strbuf_put(b, "]", 1);
}

/* Serialise a checked scope (`obj`: the scope's object, or its one path) as it is stored:
 * {"paths": [...], "read_only_context": as given, "deliverables": one list}. */
static char *plan_scope_text(const json_t *obj, const struct store_scope *sc)
{
	const json_t *ctx = json_object_get(obj, "read_only_context");
	struct strbuf b = { 0 };

	strbuf_puts(&b, "{\"paths\":");
	plan_json_list(&b, &sc->paths);
	strbuf_puts(&b, ",\"read_only_context\":");
	if (json_is_array(ctx) && json_array_size(ctx) > 0) {
		char *text = json_dumps(ctx, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (text == NULL) {
			fprintf(stderr, "autopack: out of memory serialising a scope\n");
			abort();
		}
		strbuf_puts(&b, text);
		free(text);
	} else if (json_is_array(ctx)) {
		strbuf_puts(&b, "[]");
	} else {
		plan_json_list(&b, &sc->context);
	}
	strbuf_puts(&b, ",\"deliverables\":");
	plan_json_list(&b, &sc->deliverables);
	strbuf_put(&b, "}", 1);
	return b.s;
}

/* Check a phase's scope in any of the shapes of docs/adoption.md: its fields, at least
 * one deliverable, and every deliverable inside scope.paths. With `out`, the parsed scope
 * goes there (the caller frees it) and its stored text to *text. */
static int plan_check_scope(const json_t *scope, const char *source, const struct plan_at *at,
    struct store_scope *out, char **text, struct store_err *err)
{
	char why[256], shown[101];
	struct store_scope sc;
	json_t *inner = NULL;
	const json_t *obj = scope;
	int rc;

	if (json_is_string(scope)) {
		inner = json_loads_bounded(json_string_value(scope), 0, NULL);
		if (inner != NULL)
			obj = inner;
	}
	if (json_is_object(obj))
		rc = plan_check_scope_object(obj, source, at, err);
	else if (json_is_string(obj))
		rc = plan_check_relpath(obj, source, at, err);
	else
		rc = plan_fail(err, source, at,
		    "expected an object (or a string holding one, or one path), got %s",
		    json_kind_name(obj));
	if (rc == 0 && store_scope_parse_json(scope, &sc, why, sizeof why) != 0)
		rc = plan_fail(err, source, at, "%s", why);
	if (rc != 0) {
		json_decref(inner);
		return rc;
	}
	if (sc.deliverables.n == 0) {
		struct plan_at sub = PLAN_KEY(at, "deliverables");

		rc = plan_fail(err, source, json_is_string(obj) ? at : &sub,
		    json_is_string(obj) ? "\"%s\" names a directory: a phase must name at "
		                          "least one deliverable" :
		                          "expected a non-empty array%.0s",
		    utf8_one_line(
		        shown, json_is_string(obj) ? json_string_value(obj) : "", sizeof shown));
	}
	for (size_t i = 0; rc == 0 && i < sc.deliverables.n; i++) {
		if (!plan_in_scope(&sc.paths, sc.deliverables.items[i])) {
			struct plan_at sub = PLAN_KEY(at, sc.deliverables.where[i]);

			rc = plan_fail(err, source, &sub, "\"%s\" is outside scope.paths",
			    utf8_one_line(shown, sc.deliverables.items[i], sizeof shown));
		}
	}
	if (rc == 0 && out != NULL) {
		*text = plan_scope_text(obj, &sc);
		*out = sc;
	} else {
		store_scope_free(&sc);
	}
	json_decref(inner);
	return rc;
}

/* Check that a phase (its fields' values `v`) can travel in a job and be run by a worker:
 * every wire limit and deliverable rule (common/joblimits.h), named with the phase. */
static int plan_check_limits(const json_t *const *v, const struct store_scope *sc,
    const char *run_id, const char *source, const struct plan_at *at, struct store_err *err)
{
	struct job_phase_text t = {
		.run_id = run_id,
		.phase_id = json_string_value(v[PLAN_F_PHASE_ID]),
		.name = json_string_value(v[PLAN_F_NAME]),
		.description = json_string_value(v[PLAN_F_DESCRIPTION]),
		.category = json_string_value(v[PLAN_F_TASK_CATEGORY]),
		.complexity = json_string_value(v[PLAN_F_COMPLEXITY]),
		.check = json_string_value(v[PLAN_F_CHECK_COMMAND]),
		.paths = (const char *const *)sc->paths.items,
		.npaths = sc->paths.n,
		.context = (const char *const *)sc->context.items,
		.ncontext = sc->context.n,
		.deliverables = (const char *const *)sc->deliverables.items,
		.ndeliverables = sc->deliverables.n,
	};
	char why[300];

	if (job_limits_check(&t, why, sizeof why) != 0)
		return plan_fail(err, source, at, "phase \"%s\" cannot be sent to a worker: %s",
		    t.phase_id, why);
	return 0;
}

/* The phase ids of the run being checked: id k of the table is seen[k]. */
struct plan_ids {
	struct plan_seen *seen;
	size_t n;
	struct strtab ids;
};

/* Record the deliverables of the phase checked (the run's phase number ids->n, id `id`,
 * scope `sc` at `at`) in `ov`, checked against the run's phases before it: STORE_EINVAL
 * naming both phases and both paths when one lies under the other's file. */
static int plan_check_overlap(struct plan_overlap *ov, const struct store_scope *sc, const char *id,
    const struct plan_ids *ids, const char *source, const char *run_path, const struct plan_at *at,
    struct store_err *err)
{
	char norm[JOB_PATH_MAX + 1], other[PLAN_PATH_MAX + 64], self[80], msg[600];
	struct plan_overlap_clash c;

	for (size_t i = 0; i < sc->deliverables.n; i++) {
		const struct plan_seen *o;
		struct plan_at sub = PLAN_KEY(at, "scope"),
		               del = PLAN_KEY(&sub, sc->deliverables.where[i]);

		if (relpath_norm(sc->deliverables.items[i], norm, sizeof norm) != NULL ||
		    plan_overlap_add(ov, norm, (uint32_t)ids->n, &c) == 0)
			continue;
		o = &ids->seen[c.file_phase == ids->n ? c.under_phase : c.file_phase];
		snprintf(self, sizeof self, "phase \"%s\"", id);
		snprintf(other, sizeof other, "phase \"%s\" (%s.tiers[%zu].phases[%zu])", o->id,
		    run_path, o->tier, o->phase);
		plan_overlap_say(msg, sizeof msg, &c, c.file_phase == ids->n ? self : other,
		    c.file_phase == ids->n ? other : self);
		return plan_fail(err, source, &del, "%s", msg);
	}
	return 0;
}

/* Check one phase (tiers[tier].phases[index] of the run at `run_path`, at `at`); `ids`
 * collects the run's phase ids to catch duplicates, `ov` its deliverables to catch
 * overlaps, and its fields' values and scope's stored text go to *out. */
static int plan_check_phase(const json_t *ph, const char *source, const char *run_path,
    const struct plan_at *at, size_t tier, size_t index, struct plan_ids *ids,
    struct plan_overlap *ov, const char *run_id, struct store_plan_phase *out,
    struct store_err *err)
{
	struct plan_scope_kept keep = { .vals = out->v };
	struct plan_at sub = PLAN_KEY(at, "phase_id");
	const char *id;
	size_t k;
	bool added;
	int rc;

	rc = plan_check_object(
	    ph, plan_phase_fields, ARRAY_SIZE(plan_phase_fields), source, at, &keep, err);
	if (rc == 0)
		rc = plan_check_limits(out->v, &keep.sc, run_id, source, at, err);
	if (rc == 0)
		rc = plan_check_overlap(ov, &keep.sc, json_string_value(out->v[PLAN_F_PHASE_ID]),
		    ids, source, run_path, at, err);
	store_scope_free(&keep.sc);
	if (rc != 0) {
		free(keep.text);
		return rc;
	}
	out->scope = keep.text;
	id = json_string_value(out->v[PLAN_F_PHASE_ID]);
	k = strtab_add(&ids->ids, id, &added);
	if (!added)
		return plan_fail(err, source, &sub,
		    "duplicate phase_id \"%s\" in run \"%s\" (also at "
		    "%s.tiers[%zu].phases[%zu].phase_id)",
		    id, run_id, run_path, ids->seen[k].tier, ids->seen[k].phase);
	ids->seen[ids->n++] = (struct plan_seen){ id, tier, index };
	return 0;
}

/* Count the phases of a run entry (its tiers must be arrays of arrays, or 0). */
static size_t plan_count_phases(const json_t *tiers)
{
	size_t i, n = 0;
	json_t *t;

	json_array_foreach(tiers, i, t) n += json_array_size(json_object_get(t, "phases"));
	return n;
}

/* Check a run entry's own fields. */
static int plan_check_run_fields(
    const json_t *run, const char *source, const struct plan_at *at, struct store_err *err)
{
	int rc = plan_check_object(
	    run, plan_run_fields, ARRAY_SIZE(plan_run_fields), source, at, NULL, err);

	if (rc != 0)
		return rc;
	if (json_is_true(json_object_get(run, "append"))) {
		for (const char *const *f = plan_run_only; *f != NULL; f++) {
			if (json_object_get(run, *f) != NULL) {
				struct plan_at sub = PLAN_KEY(at, *f);

				return plan_fail(err, source, &sub,
				    "not allowed with \"append\": true (the run keeps its own)");
			}
		}
	} else if (json_object_get(run, "workspace") == NULL ||
	    json_is_null(json_object_get(run, "workspace"))) {
		struct plan_at sub = PLAN_KEY(at, "workspace");

		return plan_fail(err, source, &sub,
		    "missing (required: the directory deliverables are written into)");
	}
	return 0;
}

/* Check a run entry's tiers, without their phases. */
static int plan_check_tiers(
    const json_t *tiers, const char *source, const struct plan_at *at, struct store_err *err)
{
	struct plan_at at_tiers = PLAN_KEY(at, "tiers");
	json_t *t;
	size_t i, j;
	int rc;

	json_array_foreach(tiers, i, t)
	{
		struct plan_at sub = PLAN_INDEX(&at_tiers, i);

		rc = plan_check_object(
		    t, plan_tier_fields, ARRAY_SIZE(plan_tier_fields), source, &sub, NULL, err);
		if (rc != 0)
			return rc;
		for (j = 0; j < i; j++) {
			if (strcmp(json_string_value(json_object_get(t, "tier_id")),
			        json_string_value(
			            json_object_get(json_array_get(tiers, j), "tier_id"))) == 0) {
				struct plan_at sub_id = PLAN_KEY(&sub, "tier_id");

				return plan_fail(err, source, &sub_id,
				    "duplicate tier_id \"%s\" (also at %s.tiers[%zu])",
				    json_string_value(json_object_get(t, "tier_id")), at->root, j);
			}
		}
	}
	return 0;
}

/* Check one run entry, its tiers and phases. */
int store_plan_check_run(const json_t *run, const char *source, const char *path,
    struct plan_overlap *ov, struct store_plan_phase **phases, struct store_err *err)
{
	struct plan_at at = { .root = path }, at_tiers = PLAN_KEY(&at, "tiers");
	struct plan_ids ids = { 0 };
	const char *run_id;
	json_t *tiers, *t, *ph;
	size_t i, j, n;
	int rc;

	*phases = NULL;
	plan_overlap_reset(ov);
	if ((rc = plan_check_run_fields(run, source, &at, err)) != 0)
		return rc;
	tiers = json_object_get(run, "tiers");
	if ((rc = plan_check_tiers(tiers, source, &at, err)) != 0)
		return rc;
	run_id = json_string_value(json_object_get(run, "run_id"));
	n = plan_count_phases(tiers);
	ids.seen = xcalloc(n, sizeof *ids.seen);
	strtab_init(&ids.ids, n, false);
	*phases = xcalloc(n + 1, sizeof **phases);
	json_array_foreach(tiers, i, t)
	{
		struct plan_at at_tier = PLAN_INDEX(&at_tiers, i),
		               at_phases = PLAN_KEY(&at_tier, "phases");

		json_array_foreach(json_object_get(t, "phases"), j, ph)
		{
			struct plan_at sub = PLAN_INDEX(&at_phases, j);

			rc = plan_check_phase(
			    ph, source, path, &sub, i, j, &ids, ov, run_id, &(*phases)[ids.n], err);
			if (rc != 0)
				goto out;
		}
	}
out:
	free(ids.seen);
	strtab_free(&ids.ids);
	if (rc != 0) {
		store_plan_phases_free(*phases);
		*phases = NULL;
	}
	return rc;
}

/* Free the phases store_plan_check_run returned. */
void store_plan_phases_free(struct store_plan_phase *phases)
{
	for (size_t i = 0; phases != NULL && phases[i].scope != NULL; i++)
		free(phases[i].scope);
	free(phases);
}

/* Check the top level's members; STORE_EINVAL naming the bad one. */
int store_plan_check_top(const json_t *doc, const char *source, struct store_err *err)
{
	struct plan_at at = { .root = "" };

	return plan_check_object(
	    doc, plan_top_fields, ARRAY_SIZE(plan_top_fields), source, &at, NULL, err);
}
