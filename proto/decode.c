/* Strict decoding of one scanned msgpack map into a struct proto_msg, driven by the key
 * table in schema.c. */
#include <assert.h>
#include <string.h>

#include "common/util.h"
#include "proto/mp.h"
#include "proto/path.h"
#include "proto/scan.h"
#include "proto/schema.h"
#include "proto/wire.h"

struct dec {
	struct mp_cur cur;
	struct proto_path path;
	struct proto_err *err;
	/* One walk over bytes not scanned first: what is skipped is scanned, what is read
	 * is checked as the scan would, and any failure is left to the exact decoding. */
	bool fast;
	int depth; /* maps being decoded, the top one included */
};

/* Read the next item; the bytes were scanned, so failure means a scan bug or misuse. */
static int dec_item(struct dec *d, struct mp_item *it)
{
	if (mp_next(&d->cur, it) != MP_OK)
		return proto_errf(d->err, &d->path, "malformed value");
	return 0;
}

/* Report a value of the wrong msgpack type. */
static int dec_type_err(struct dec *d, const char *want, const struct mp_item *it)
{
	return proto_errf(d->err, &d->path, "expected %s, got %s", want, mp_kind_name(it->kind));
}

/* Copy out the string item `it` after checking it against field f. */
static int dec_str(struct dec *d, const struct proto_field *f, const struct mp_item *it, char **out)
{
	if (it->kind != MP_STR)
		return dec_type_err(d, f->kind == PF_STR_OPT ? "string or nil" : "string", it);
	if (proto_check_str(f, it->ptr, it->len, &d->path, d->err) < 0)
		return -1;
	*out = xstrndup((const char *)it->ptr, it->len);
	return 0;
}

/* Convert the integer item `it` for field f, checking its range. */
static int dec_i64(
    struct dec *d, const struct proto_field *f, const struct mp_item *it, int64_t *out)
{
	if (it->kind == MP_NINT) {
		*out = it->i;
	} else if (it->kind == MP_UINT) {
		if (it->u > (uint64_t)INT64_MAX)
			return proto_errf(d->err, &d->path,
			    "integer %llu out of range [%lld, %lld]", (unsigned long long)it->u,
			    (long long)f->min, (long long)f->max);
		*out = (int64_t)it->u;
	} else {
		return dec_type_err(d, f->kind == PF_I64_OPT ? "integer or nil" : "integer", it);
	}
	return proto_check_i64(f, *out, &d->path, d->err);
}

/* Decode an array of strings into l; l->n counts the items copied so far. */
static int dec_list(
    struct dec *d, const struct proto_field *f, const struct mp_item *arr, struct proto_strlist *l)
{
	struct mp_item it;

	if (arr->kind != MP_ARRAY)
		return dec_type_err(d, "array", arr);
	if (arr->len > PROTO_LIST_MAX)
		return proto_errf(d->err, &d->path, "array of %lu elements exceeds limit %d",
		    (unsigned long)arr->len, PROTO_LIST_MAX);
	if (d->fast && arr->len > mp_cur_left(&d->cur))
		return proto_errf(d->err, &d->path, "malformed value");
	l->items = xcalloc(arr->len, sizeof *l->items);
	for (uint32_t k = 0; k < arr->len; k++) {
		size_t mark = proto_path_push_index(&d->path, k);

		if (dec_item(d, &it) < 0 || dec_str(d, f, &it, &l->items[k]) < 0)
			return -1;
		l->n++;
		proto_path_pop(&d->path, mark);
	}
	return 0;
}

/* Decode one [category, complexity, overhead] row. */
static int dec_coef(struct dec *d, struct proto_coef *c)
{
	struct mp_item row, it;
	char **strs[2] = { &c->category, &c->complexity };

	if (dec_item(d, &row) < 0)
		return -1;
	if (row.kind != MP_ARRAY)
		return dec_type_err(d, "array [category, complexity, overhead]", &row);
	if (row.len != 3)
		return proto_errf(d->err, &d->path,
		    "expected 3 elements [category, complexity, overhead], got %lu",
		    (unsigned long)row.len);
	for (int k = 0; k < 3; k++) {
		size_t mark = proto_path_push_index(&d->path, (uint64_t)k);

		if (dec_item(d, &it) < 0)
			return -1;
		if (k < 2 && dec_str(d, &proto_coef_fields[k], &it, strs[k]) < 0)
			return -1;
		if (k == 2 && dec_i64(d, &proto_coef_fields[k], &it, &c->overhead) < 0)
			return -1;
		proto_path_pop(&d->path, mark);
	}
	return 0;
}

/* Decode the estimator's overhead table into *rows / *n; *n counts whole rows so far. */
static int dec_coefs(struct dec *d, const struct mp_item *arr, struct proto_coef **rows, size_t *n)
{
	if (arr->kind != MP_ARRAY)
		return dec_type_err(d, "array", arr);
	if (arr->len > PROTO_LIST_MAX)
		return proto_errf(d->err, &d->path, "array of %lu elements exceeds limit %d",
		    (unsigned long)arr->len, PROTO_LIST_MAX);
	if (d->fast && arr->len > mp_cur_left(&d->cur))
		return proto_errf(d->err, &d->path, "malformed value");
	*rows = xcalloc(arr->len, sizeof **rows);
	for (uint32_t k = 0; k < arr->len; k++) {
		size_t mark = proto_path_push_index(&d->path, k);
		int rc = dec_coef(d, &(*rows)[k]);

		/* a half-decoded row still owns its strings: count it so they are freed */
		(*n)++;
		if (rc < 0)
			return -1;
		proto_path_pop(&d->path, mark);
	}
	return 0;
}

static int dec_entries(struct dec *d, const struct proto_schema *s, char *base, uint32_t n);

/* Decode the value of field f (its first item already read into `it`) into base. */
static int dec_field(
    struct dec *d, const struct proto_field *f, const struct mp_item *it, char *base)
{
	void *at = base + f->off;
	enum proto_event_kind kind;

	switch (f->kind) {
	case PF_STR_OPT:
		if (it->kind == MP_NIL)
			return 0;
		/* fall through */
	case PF_STR: return dec_str(d, f, it, at);
	case PF_I64_OPT:
		if (it->kind == MP_NIL) {
			*(int64_t *)at = -1;
			return 0;
		}
		/* fall through */
	case PF_I64: return dec_i64(d, f, it, at);
	case PF_U64:
		if (it->kind != MP_UINT)
			return it->kind == MP_NINT ?
			    proto_errf(d->err, &d->path, "integer %lld out of range [0, %llu]",
			        (long long)it->i, (unsigned long long)UINT64_MAX) :
			    dec_type_err(d, "integer", it);
		if (f->max > 0 && (it->u < (uint64_t)f->min || it->u > (uint64_t)f->max))
			return proto_errf(d->err, &d->path,
			    "integer %llu out of range [%lld, %lld]", (unsigned long long)it->u,
			    (long long)f->min, (long long)f->max);
		*(uint64_t *)at = it->u;
		return 0;
	case PF_BOOL:
		if (it->kind != MP_BOOL)
			return dec_type_err(d, "boolean", it);
		*(bool *)at = it->b;
		return 0;
	case PF_LIST: return dec_list(d, f, it, at);
	case PF_MAP:
		if (it->kind != MP_MAP)
			return dec_type_err(d, "map", it);
		return dec_entries(d, f->sub, at, it->len);
	case PF_COEFS: return dec_coefs(d, it, at, (size_t *)(base + f->off2));
	case PF_KIND: {
		char shown[80];

		if (it->kind != MP_STR)
			return dec_type_err(d, "string", it);
		kind = proto_kind_lookup(it->ptr, it->len);
		if (kind == 0) {
			proto_escape(shown, sizeof shown, it->ptr, it->len, 40);
			return proto_errf(d->err, &d->path, "unknown event kind \"%s\"", shown);
		}
		*(enum proto_event_kind *)at = kind;
		return 0;
	}
	case PF_BODY: break;
	}
	return proto_errf(d->err, &d->path, "internal: field kind %d", (int)f->kind);
}

/* Whether field f's key is the n bytes at k. */
static bool key_is(const struct proto_field *f, const uint8_t *k, size_t n)
{
	return f->klen == n && memcmp(f->key, k, n) == 0;
}

/* Find the field of s whose key is the n bytes at k, trying field `hint` first (a map
 * packed as proto_pack packs one has its keys in the table's order); returns its index
 * or -1. The keys of a table are distinct, so the hint changes only the time taken. */
static int field_index(const struct proto_schema *s, const uint8_t *k, size_t n, size_t hint)
{
	if (n == 0)
		return -1;
	if (hint < s->nfields && key_is(&s->fields[hint], k, n))
		return (int)hint;
	for (size_t j = 0; j < s->nfields; j++)
		if (s->fields[j].key[0] == (char)k[0] && key_is(&s->fields[j], k, n))
			return (int)j;
	return -1;
}

/* Step over one value; in a fast walk, check it as the scan would. */
static int dec_skip(struct dec *d)
{
	if (d->fast ? proto_scan_value(&d->cur, d->depth) < 0 : mp_skip(&d->cur) != MP_OK)
		return proto_errf(d->err, &d->path, "malformed value");
	return 0;
}

/* Decode the event body at the cursor, the event's kind being known, leaving the cursor
 * after it. */
static int dec_body(struct dec *d, const struct proto_field *f, char *base)
{
	const struct proto_schema *s;
	struct mp_item it;
	size_t mark = proto_path_push_key(&d->path, f->key, f->klen);

	s = proto_schema_of_kind(((struct proto_event *)base)->kind);
	if (dec_item(d, &it) < 0)
		return -1;
	if (it.kind != MP_MAP)
		return dec_type_err(d, "map", &it);
	if (dec_entries(d, s, base + f->off, it.len) < 0)
		return -1;
	proto_path_pop(&d->path, mark);
	return 0;
}

/* Decode the event body found earlier at `at`, now that the event's kind is known. */
static int dec_body_later(struct dec *d, const struct proto_field *f, struct mp_cur at, char *base)
{
	struct mp_cur after = d->cur;

	d->cur = at;
	if (dec_body(d, f, base) < 0)
		return -1;
	d->cur = after;
	return 0;
}

/* Whether schema s has an event-kind field and it is among the fields `seen`. */
static bool kind_seen(const struct proto_schema *s, uint32_t seen)
{
	for (size_t j = 0; j < s->nfields; j++)
		if (s->fields[j].kind == PF_KIND)
			return (seen & (1u << j)) != 0;
	return false;
}

/* Decode n map entries against schema s into base: unknown keys are skipped, a repeated
 * key is refused, then every required field must have been seen. An event body met after
 * its kind is decoded where it stands, one met before it once the map is read; either
 * way an error in the body is reported only when the rest of the map has none. */
static int dec_entries(struct dec *d, const struct proto_schema *s, char *base, uint32_t n)
{
	uint32_t seen = 0;
	size_t hint = 0; /* the field after the last one found */
	struct mp_cur body_at = { 0 };
	const struct proto_field *body = NULL;
	struct mp_item key, it;
	struct proto_err body_err;
	bool body_failed = false;
	int rc;

	/* Every field has a bit in `seen` (schema.c asserts this for each table). */
	assert(s->nfields <= PROTO_FIELDS_MAX && PROTO_FIELDS_MAX <= 8 * sizeof seen);
	d->depth++;

	for (uint32_t k = 0; k < n; k++) {
		const struct proto_field *f;
		size_t mark;
		int j;

		if (dec_item(d, &key) < 0)
			return -1;
		/* a fast walk leaves odd keys, and "v" or "t" after the first two, to the scan */
		if (d->fast &&
		    (key.kind != MP_STR ||
		        (d->depth == 1 && key.len == 1 &&
		            (key.ptr[0] == 'v' || key.ptr[0] == 't'))))
			return proto_errf(d->err, &d->path, "malformed value");
		j = field_index(s, key.ptr, key.len, hint);
		if (j < 0) {
			if (dec_skip(d) < 0)
				return -1;
			continue;
		}
		hint = (size_t)j + 1;
		f = &s->fields[j];
		if (seen & (1u << j))
			return proto_errf(d->err, &d->path, "duplicate field \"%s\"", f->key);
		seen |= 1u << j;
		if (f->kind == PF_BODY) {
			body_at = d->cur;
			if (kind_seen(s, seen)) {
				mark = d->path.len;
				if (dec_body(d, f, base) == 0)
					continue;
				body_err = *d->err;
				body_failed = true;
				proto_path_pop(&d->path, mark);
				d->cur = body_at;
			} else {
				body = f;
			}
			if (dec_skip(d) < 0)
				return -1;
			continue;
		}
		/* The key matched: it is key.len bytes long. */
		mark = proto_path_push_key(&d->path, f->key, key.len);
		if (dec_item(d, &it) < 0 || dec_field(d, f, &it, base) < 0)
			return -1;
		proto_path_pop(&d->path, mark);
	}
	for (size_t j = 0; j < s->nfields; j++) {
		const struct proto_field *f = &s->fields[j];

		if (seen & (1u << j))
			continue;
		if (f->kind == PF_STR_OPT)
			continue;
		if (f->kind == PF_I64_OPT) {
			*(int64_t *)(base + f->off) = -1;
			continue;
		}
		return proto_errf(d->err, &d->path, "missing field \"%s\"", f->key);
	}
	if (body_failed) {
		*d->err = body_err;
		return -1;
	}
	rc = body != NULL ? dec_body_later(d, body, body_at, base) : 0;
	d->depth--;
	return rc;
}

/* Check the top map's "v" and "t", which the scan noted; sets *type. d->path names the
 * frame, and a wrong "v" or "t" is reported under its own name. */
static int dec_header(struct dec *d, const struct proto_scan_top *top, enum proto_type *type)
{
	const struct mp_item *v = &top->v, *t = &top->t;
	char shown[80];

	if (top->dup != 0)
		return proto_errf(d->err, &d->path, "duplicate field \"%c\"", top->dup);
	if (!top->have_v)
		return proto_errf(d->err, &d->path, "missing field \"v\"");
	if (v->kind != MP_UINT || v->u != PROTO_VERSION) {
		proto_path_init(&d->path, "v");
		if (v->kind == MP_NINT)
			return proto_errf(d->err, &d->path, "protocol version %lld, expected %d",
			    (long long)v->i, PROTO_VERSION);
		if (v->kind != MP_UINT)
			return dec_type_err(d, "integer", v);
		return proto_errf(d->err, &d->path, "protocol version %llu, expected %d",
		    (unsigned long long)v->u, PROTO_VERSION);
	}
	if (!top->have_t)
		return proto_errf(d->err, &d->path, "missing field \"t\"");
	*type = t->kind == MP_STR ? proto_type_lookup(t->ptr, t->len) : 0;
	if (*type == 0) {
		proto_path_init(&d->path, "t");
		if (t->kind != MP_STR)
			return dec_type_err(d, "string", t);
		proto_escape(shown, sizeof shown, t->ptr, t->len, 40);
		return proto_errf(d->err, &d->path, "unknown message type \"%s\"", shown);
	}
	return 0;
}

/* Decode a map packed as proto_pack packs one ("v" and "t" first) in one walk, checking
 * it as proto_scan would on the way; -1, with nothing left allocated, for any other map,
 * valid or not: the exact decoding then says what, if anything, is wrong. */
static int decode_fast(const void *map, size_t len, struct proto_msg *out, struct proto_err *err)
{
	struct dec d = { .err = err, .fast = true };
	struct proto_scan_top head = { .dup = 0 };
	struct mp_item top, key, val;
	enum proto_type type;

	mp_cur_init(&d.cur, map, len);
	proto_path_init(&d.path, "frame");
	if (dec_item(&d, &top) < 0 || top.kind != MP_MAP || top.len < 2)
		return -1;
	for (int k = 0; k < 2; k++) {
		if (dec_item(&d, &key) < 0 || key.kind != MP_STR || key.len != 1 ||
		    dec_item(&d, &val) < 0)
			return -1;
		if (key.ptr[0] == 'v' && !head.have_v) {
			head.v = val;
			head.have_v = true;
		} else if (key.ptr[0] == 't' && !head.have_t) {
			head.t = val;
			head.have_t = true;
		} else {
			return -1;
		}
	}
	if (dec_header(&d, &head, &type) < 0)
		return -1;
	out->type = type;
	proto_path_init(&d.path, proto_type_name(type));
	if (dec_entries(&d, proto_schema_of_type(type), (char *)&out->u, top.len - 2) < 0 ||
	    mp_cur_left(&d.cur) > 0) {
		proto_msg_free(out);
		return -1;
	}
	return 0;
}

/* Decode one map strictly; -1 with err set and nothing left allocated. */
int proto_decode(const void *map, size_t len, struct proto_msg *out, struct proto_err *err)
{
	memset(out, 0, sizeof *out);
	if (decode_fast(map, len, out, err) == 0)
		return 0;
	return proto_decode_scanned(map, len, out, err);
}

/* Scan the whole map, then decode it; -1 with err set and nothing left allocated. */
int proto_decode_scanned(const void *map, size_t len, struct proto_msg *out, struct proto_err *err)
{
	struct dec d = { .err = err };
	struct proto_scan_top head;
	struct mp_item top;
	enum proto_type type;

	memset(out, 0, sizeof *out);
	err->text[0] = '\0';
	if (proto_scan_top(map, len, err, &head) < 0)
		return -1;
	proto_path_init(&d.path, "frame");
	if (dec_header(&d, &head, &type) < 0)
		return -1;
	out->type = type;
	mp_cur_init(&d.cur, map, len);
	proto_path_init(&d.path, proto_type_name(type));
	if (dec_item(&d, &top) < 0 ||
	    dec_entries(&d, proto_schema_of_type(type), (char *)&out->u, top.len) < 0) {
		proto_msg_free(out);
		return -1;
	}
	return 0;
}
