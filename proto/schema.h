/* The key table: every message type as a list of fields, each with its wire key, its C
 * location and its limits. Packing, decoding, freeing and comparing all walk these tables,
 * so a key is named in exactly one place. Internal to proto/. */
#ifndef AUTOPACK_PROTO_SCHEMA_H
#define AUTOPACK_PROTO_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

enum proto_fkind {
	PF_STR,     /* char *, required */
	PF_STR_OPT, /* char *, nil or absent = NULL */
	PF_I64,     /* int64_t in [min, max], required */
	PF_I64_OPT, /* int64_t in [min, max] with min >= 0; nil or absent = -1 */
	PF_U64,     /* uint64_t, required; in [min, max] when max is not 0 */
	PF_BOOL,    /* bool, required */
	PF_LIST,    /* struct proto_strlist: array of at most PROTO_LIST_MAX strings */
	PF_MAP,     /* a nested map described by `sub`, its fields relative to base + off */
	PF_COEFS,   /* struct proto_coef * at off, size_t count at off2: [[cat, cplx, n], ...]
	             * with names of at most PROTO_NAME_MAX bytes and any int64 n */
	PF_KIND,    /* enum proto_event_kind, sent as its name */
	PF_BODY,    /* the event body: a map described by the schema of the event's kind */
};

struct proto_schema;

struct proto_field {
	const char *key;
	size_t klen; /* strlen(key) */
	enum proto_fkind kind;
	size_t off;
	size_t off2;
	int64_t min; /* PF_I64*: smallest value */
	int64_t max; /* PF_I64*, PF_U64: largest value (PF_U64: 0 for any); PF_STR*, PF_LIST:
	              * bytes per string */
	const struct proto_schema *sub;
};

struct proto_schema {
	const char *name;
	const struct proto_field *fields;
	size_t nfields;
};

/* The job's fields that every job of a supervisor shares and that follow one another:
 * "cap", "llm" and "est", fields [PROTO_JOB_SHARED_FROM, PROTO_JOB_SHARED_TO) of the job's
 * schema (proto_job_pack_shared). */
#define PROTO_JOB_SHARED_FROM 8
#define PROTO_JOB_SHARED_TO 11

/* The three elements of one PF_COEFS row, for checks and error texts. */
extern const struct proto_field proto_coef_fields[3];

/* The schema of message type t, or NULL if t is not a message type. */
const struct proto_schema *proto_schema_of_type(enum proto_type t);
/* The schema of an event body of kind k, or NULL if k is not an event kind. */
const struct proto_schema *proto_schema_of_kind(enum proto_event_kind k);
/* The message type named by the n bytes at s, or 0. */
enum proto_type proto_type_lookup(const void *s, size_t n);
/* The event kind named by the n bytes at s, or 0. */
enum proto_event_kind proto_kind_lookup(const void *s, size_t n);

struct proto_path;
struct proto_err;

/* Check a string for field f: at most f->max bytes, no NUL byte, valid UTF-8. Returns 0,
 * -EMSGSIZE (too long) or -EINVAL, with err set (path p) on failure. */
int proto_check_str(const struct proto_field *f, const void *s, size_t n,
    const struct proto_path *p, struct proto_err *err);
/* Check that v lies in [f->min, f->max]. Returns 0, or -EINVAL with err set. */
int proto_check_i64(
    const struct proto_field *f, int64_t v, const struct proto_path *p, struct proto_err *err);

#endif
