/* Validation of a plan document, without the database: shapes, types, identifiers,
 * scope paths and duplicates. The first error names its JSON path. */
#include "common/store/store_internal.h"
#include "common/store/store_plan.h"
#include "common/store/store_scope.h"
#include "common/joblimits.h"
#include "common/relpath.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
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

static const struct plan_field plan_scope_fields[] = {
	{ "paths", PLAN_PATHS, false, NULL },
	{ "read_only_context", PLAN_CONTEXT, false, NULL },
	{ "deliverables", PLAN_DELIVERABLES, true, NULL },
};

static const struct plan_field plan_context_fields[] = {
	{ "path", PLAN_TEXT, true, NULL },
	{ "reason", PLAN_STRING, false, NULL },
};

/* A phase_id seen in the run being checked, and where. */
struct plan_seen {
	const char *id;
	char path[PLAN_PATH_MAX];
};

/* Report "<source>: <path>: <message>" and return STORE_EINVAL. */
__attribute__((format(printf, 4, 5))) static int plan_fail(
    struct store_err *err, const char *source, const char *path, const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return store_fail(err, STORE_EINVAL, "%s: %s: %s", source, path, msg);
}

/* Format a JSON path into dst (PLAN_PATH_MAX bytes); a path that long is cut. */
__attribute__((format(printf, 2, 3))) static void plan_path(char *dst, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, PLAN_PATH_MAX, fmt, ap);
	va_end(ap);
}

/* Name a JSON value's type for messages. */
static const char *plan_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "value";
}

/* Check a string value: no NUL bytes, and non-empty unless `allow_empty`. */
static int plan_check_string(
    const json_t *v, bool allow_empty, const char *source, const char *path, struct store_err *err)
{
	if (!json_is_string(v))
		return plan_fail(err, source, path, "expected string, got %s", plan_type_name(v));
	if (strlen(json_string_value(v)) != json_string_length(v))
		return plan_fail(err, source, path, "string contains a NUL byte");
	if (!allow_empty && json_string_length(v) == 0)
		return plan_fail(err, source, path, "expected a non-empty string");
	return 0;
}

/* Check an identifier (run_id, tier_id, phase_id). */
static int plan_check_id(
    const json_t *v, const char *source, const char *path, struct store_err *err)
{
	const char *s;
	int rc = plan_check_string(v, false, source, path, err);

	if (rc != 0)
		return rc;
	s = json_string_value(v);
	if (strlen(s) > PLAN_ID_MAX || s[0] == '.' || s[0] == '-' ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
	        strlen(s))
		return plan_fail(err, source, path,
		    "\"%.60s\" is not a valid id (1-%d of A-Z a-z 0-9 . _ -, not starting with "
		    ". or -)",
		    s, PLAN_ID_MAX);
	return 0;
}

/* Check a path inside the workspace: relative, without "..". */
static int plan_check_relpath(
    const json_t *v, const char *source, const char *path, struct store_err *err)
{
	const char *s, *p;
	int rc = plan_check_string(v, false, source, path, err);

	if (rc != 0)
		return rc;
	s = json_string_value(v);
	if (s[0] == '/')
		return plan_fail(err, source, path,
		    "\"%.100s\" is absolute; paths are relative to the run's workspace", s);
	for (p = s; p != NULL; p = strchr(p, '/') != NULL ? strchr(p, '/') + 1 : NULL)
		if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
			return plan_fail(err, source, path,
			    "\"%.100s\" leaves the workspace (\"..\" is not allowed)", s);
	return 0;
}

static int plan_check_object(const json_t *obj, const struct plan_field *fields, size_t n,
    const char *source, const char *path, struct store_err *err);
static int plan_check_scope(
    const json_t *scope, const char *source, const char *path, struct store_err *err);

/* Check an array of workspace paths; with `objects` an entry may also be a {"path",
 * "reason"} object (read_only_context). */
static int plan_check_path_array(
    const json_t *v, bool objects, const char *source, const char *path, struct store_err *err)
{
	char sub[PLAN_PATH_MAX];
	size_t i;
	json_t *e;
	int rc;

	if (!json_is_array(v))
		return plan_fail(err, source, path, "expected array of %s, got %s",
		    objects ? "paths" : "strings", plan_type_name(v));
	json_array_foreach(v, i, e)
	{
		plan_path(sub, "%s[%zu]", path, i);
		if (objects && json_is_object(e)) {
			rc = plan_check_object(e, plan_context_fields,
			    ARRAY_SIZE(plan_context_fields), source, sub, err);
			plan_path(sub, "%s[%zu].path", path, i);
			if (rc == 0)
				rc = plan_check_relpath(
				    json_object_get(e, "path"), source, sub, err);
		} else {
			rc = plan_check_relpath(e, source, sub, err);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Check deliverables: an array of relative paths, or an object of buckets, each such an
 * array ({"code": [...], "tests": [...]}). */
static int plan_check_deliverables(
    const json_t *v, const char *source, const char *path, struct store_err *err)
{
	char sub[PLAN_PATH_MAX];
	const char *key;
	json_t *e;
	int rc;

	if (!json_is_object(v))
		return plan_check_path_array(v, false, source, path, err);
	json_object_foreach((json_t *)v, key, e)
	{
		plan_path(sub, "%s.%.60s", path, key);
		rc = plan_check_path_array(e, false, source, sub, err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Check one field's value against its kind. */
static int plan_check_field(const struct plan_field *f, const json_t *v, const char *source,
    const char *path, struct store_err *err)
{
	switch (f->kind) {
	case PLAN_ID: return plan_check_id(v, source, path, err);
	case PLAN_TEXT:
	case PLAN_STRING: return plan_check_string(v, f->kind == PLAN_STRING, source, path, err);
	case PLAN_POSINT:
		if (!json_is_integer(v) || json_integer_value(v) < 1)
			return plan_fail(err, source, path, "expected a positive integer, got %s",
			    json_is_integer(v) ? "a number below 1" : plan_type_name(v));
		return 0;
	case PLAN_BOOL:
		if (!json_is_boolean(v))
			return plan_fail(
			    err, source, path, "expected true or false, got %s", plan_type_name(v));
		return 0;
	case PLAN_CHOICE: {
		char list[120] = "";
		int rc = plan_check_string(v, false, source, path, err);

		if (rc != 0)
			return rc;
		for (const char *const *c = f->choices; *c != NULL; c++) {
			if (strcmp(*c, json_string_value(v)) == 0)
				return 0;
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			    c == f->choices ? "" : ", ", *c);
		}
		return plan_fail(
		    err, source, path, "\"%.60s\" is not one of %s", json_string_value(v), list);
	}
	case PLAN_ARRAY:
		if (!json_is_array(v))
			return plan_fail(
			    err, source, path, "expected array, got %s", plan_type_name(v));
		if (json_array_size(v) == 0)
			return plan_fail(err, source, path, "expected a non-empty array");
		return 0;
	case PLAN_OBJECT:
		if (!json_is_object(v))
			return plan_fail(
			    err, source, path, "expected object, got %s", plan_type_name(v));
		return 0;
	case PLAN_PATHS: return plan_check_path_array(v, false, source, path, err);
	case PLAN_SCOPE: return plan_check_scope(v, source, path, err);
	case PLAN_CONTEXT: return plan_check_path_array(v, true, source, path, err);
	case PLAN_DELIVERABLES: return plan_check_deliverables(v, source, path, err);
	}
	return 0;
}

/* Check an object against its field table: no unknown fields, required ones present,
 * each present (non-null) value of the right kind. `path` is the object's JSON path. */
static int plan_check_object(const json_t *obj, const struct plan_field *fields, size_t n,
    const char *source, const char *path, struct store_err *err)
{
	char sub[PLAN_PATH_MAX];
	const char *key;
	json_t *v;
	int rc;

	if (!json_is_object(obj))
		return plan_fail(err, source, path[0] ? path : "(top level)",
		    "expected object, got %s", plan_type_name(obj));
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t i;

		for (i = 0; i < n && strcmp(fields[i].name, key) != 0; i++)
			;
		if (i == n) {
			plan_path(sub, "%s%s%.60s", path, path[0] ? "." : "", key);
			return plan_fail(err, source, sub, "unknown field");
		}
	}
	for (size_t i = 0; i < n; i++) {
		plan_path(sub, "%s%s%s", path, path[0] ? "." : "", fields[i].name);
		v = json_object_get(obj, fields[i].name);
		if (v == NULL || json_is_null(v)) {
			if (fields[i].required)
				return plan_fail(err, source, sub, "missing (required)");
			continue;
		}
		rc = plan_check_field(&fields[i], v, source, sub, err);
		if (rc != 0)
			return rc;
	}
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
    const json_t *scope, const char *source, const char *path, struct store_err *err)
{
	char sub[PLAN_PATH_MAX];
	const json_t *dels = json_object_get(scope, "deliverables");

	if (json_is_object(scope) && (dels == NULL || json_is_null(dels))) {
		plan_path(sub, "%s.deliverables", path);
		return plan_fail(err, source, sub,
		    "missing (required: a phase must name at least one deliverable)");
	}
	return plan_check_object(
	    scope, plan_scope_fields, ARRAY_SIZE(plan_scope_fields), source, path, err);
}

/* Check a phase's scope in any of the shapes of docs/adoption.md: its fields, at least
 * one deliverable, and every deliverable inside scope.paths. */
static int plan_check_scope(
    const json_t *scope, const char *source, const char *path, struct store_err *err)
{
	char sub[PLAN_PATH_MAX], why[256];
	struct store_scope sc;
	json_t *inner = NULL;
	const json_t *obj = scope;
	int rc;

	if (json_is_string(scope)) {
		inner = json_loads(json_string_value(scope), 0, NULL);
		if (inner != NULL)
			obj = inner;
	}
	if (json_is_object(obj))
		rc = plan_check_scope_object(obj, source, path, err);
	else if (json_is_string(obj))
		rc = plan_check_relpath(obj, source, path, err);
	else
		rc = plan_fail(err, source, path,
		    "expected an object (or a string holding one, or one path), got %s",
		    plan_type_name(obj));
	if (rc == 0 && store_scope_parse_json(scope, &sc, why, sizeof why) != 0)
		rc = plan_fail(err, source, path, "%s", why);
	json_decref(inner);
	if (rc != 0)
		return rc;
	if (sc.deliverables.n == 0) {
		plan_path(sub, "%s%s", path, json_is_string(obj) ? "" : ".deliverables");
		rc = plan_fail(err, source, sub,
		    json_is_string(obj) ? "\"%.100s\" names a directory: a phase must name at "
		                          "least one deliverable" :
		                          "expected a non-empty array%.0s",
		    json_is_string(obj) ? json_string_value(obj) : "");
	}
	for (size_t i = 0; rc == 0 && i < sc.deliverables.n; i++) {
		if (!plan_in_scope(&sc.paths, sc.deliverables.items[i])) {
			plan_path(sub, "%s.%s", path, sc.deliverables.where[i]);
			rc = plan_fail(err, source, sub, "\"%.100s\" is outside scope.paths",
			    sc.deliverables.items[i]);
		}
	}
	store_scope_free(&sc);
	return rc;
}

/* A nullable string field of a JSON object. */
static const char *plan_opt_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* Check that a phase can travel in a job and be run by a worker: every wire limit and
 * deliverable rule (common/joblimits.h), named with the phase. */
static int plan_check_limits(const json_t *ph, const char *run_id, const char *source,
    const char *path, struct store_err *err)
{
	struct job_phase_text t = {
		.run_id = run_id,
		.phase_id = plan_opt_str(ph, "phase_id"),
		.name = plan_opt_str(ph, "name"),
		.description = plan_opt_str(ph, "description"),
		.category = plan_opt_str(ph, "task_category"),
		.complexity = plan_opt_str(ph, "complexity"),
		.check = plan_opt_str(ph, "check_command"),
	};
	struct store_scope sc;
	char why[300];
	int rc = 0;

	if (store_scope_parse_json(json_object_get(ph, "scope"), &sc, why, sizeof why) != 0)
		return plan_fail(err, source, path, "scope: %s", why);
	t.paths = (const char *const *)sc.paths.items;
	t.npaths = sc.paths.n;
	t.context = (const char *const *)sc.context.items;
	t.ncontext = sc.context.n;
	t.deliverables = (const char *const *)sc.deliverables.items;
	t.ndeliverables = sc.deliverables.n;
	if (job_limits_check(&t, why, sizeof why) != 0)
		rc = plan_fail(err, source, path, "phase \"%s\" cannot be sent to a worker: %s",
		    t.phase_id, why);
	store_scope_free(&sc);
	return rc;
}

/* Check one phase; `seen` collects the run's phase ids to catch duplicates. */
static int plan_check_phase(const json_t *ph, const char *source, const char *path,
    struct plan_seen *seen, size_t *nseen, const char *run_id, struct store_err *err)
{
	char sub[PLAN_PATH_MAX];
	const char *id;
	int rc;

	rc = plan_check_object(
	    ph, plan_phase_fields, ARRAY_SIZE(plan_phase_fields), source, path, err);
	if (rc == 0)
		rc = plan_check_limits(ph, run_id, source, path, err);
	if (rc != 0)
		return rc;
	id = json_string_value(json_object_get(ph, "phase_id"));
	plan_path(sub, "%s.phase_id", path);
	for (size_t i = 0; i < *nseen; i++)
		if (strcmp(seen[i].id, id) == 0)
			return plan_fail(err, source, sub,
			    "duplicate phase_id \"%s\" in run \"%s\" (also at %s)", id, run_id,
			    seen[i].path);
	seen[*nseen].id = id;
	strlcpy_ap(seen[*nseen].path, sub, sizeof seen[*nseen].path);
	(*nseen)++;
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

/* Check one run entry, its tiers and phases. */
int store_plan_check_run(
    const json_t *run, const char *source, const char *path, struct store_err *err)
{
	char sub[PLAN_PATH_MAX], sub2[PLAN_PATH_MAX];
	struct plan_seen *seen = NULL;
	const char *run_id;
	json_t *tiers, *t, *ph;
	size_t i, j, nseen = 0;
	int rc;

	rc = plan_check_object(
	    run, plan_run_fields, ARRAY_SIZE(plan_run_fields), source, path, err);
	if (rc != 0)
		return rc;
	run_id = json_string_value(json_object_get(run, "run_id"));
	if (json_is_true(json_object_get(run, "append"))) {
		for (const char *const *f = plan_run_only; *f != NULL; f++) {
			if (json_object_get(run, *f) != NULL) {
				plan_path(sub, "%s.%s", path, *f);
				return plan_fail(err, source, sub,
				    "not allowed with \"append\": true (the run keeps its own)");
			}
		}
	} else if (json_object_get(run, "workspace") == NULL ||
	    json_is_null(json_object_get(run, "workspace"))) {
		plan_path(sub, "%s.workspace", path);
		return plan_fail(err, source, sub,
		    "missing (required: the directory deliverables are written into)");
	}
	tiers = json_object_get(run, "tiers");
	json_array_foreach(tiers, i, t)
	{
		plan_path(sub, "%s.tiers[%zu]", path, i);
		rc = plan_check_object(
		    t, plan_tier_fields, ARRAY_SIZE(plan_tier_fields), source, sub, err);
		for (j = 0; rc == 0 && j < i; j++) {
			if (strcmp(json_string_value(json_object_get(t, "tier_id")),
			        json_string_value(
			            json_object_get(json_array_get(tiers, j), "tier_id"))) == 0) {
				plan_path(sub2, "%s.tier_id", sub);
				rc = plan_fail(err, source, sub2,
				    "duplicate tier_id \"%s\" (also at "
				    "%s.tiers[%zu])",
				    json_string_value(json_object_get(t, "tier_id")), path, j);
			}
		}
		if (rc != 0)
			goto out;
	}
	seen = xcalloc(plan_count_phases(tiers), sizeof *seen);
	json_array_foreach(tiers, i, t)
	{
		json_array_foreach(json_object_get(t, "phases"), j, ph)
		{
			plan_path(sub, "%s.tiers[%zu].phases[%zu]", path, i, j);
			rc = plan_check_phase(ph, source, sub, seen, &nseen, run_id, err);
			if (rc != 0)
				goto out;
		}
	}
out:
	free(seen);
	return rc;
}

/* Check the top level's members; STORE_EINVAL naming the bad one. */
int store_plan_check_top(const json_t *doc, const char *source, struct store_err *err)
{
	return plan_check_object(
	    doc, plan_top_fields, ARRAY_SIZE(plan_top_fields), source, "", err);
}
