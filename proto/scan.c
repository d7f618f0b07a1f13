#include "proto/scan.h"

#include <string.h>

#include "proto/mp.h"
#include "proto/path.h"

struct scan {
	struct mp_cur cur;
	struct proto_path path;
	struct proto_err *err;
	struct proto_scan_top *top;
};

/* Read one item header, turning a cursor error into an error text. */
static int scan_item(struct scan *s, struct mp_item *it)
{
	int rc = mp_next(&s->cur, it);

	switch (rc) {
	case MP_OK: return 0;
	case MP_ETRUNC:
		return proto_errf(s->err, &s->path, "truncated: the frame ends inside a value");
	case MP_ERESERVED: return proto_errf(s->err, &s->path, "invalid type byte 0xc1");
	default:
		return proto_errf(s->err, &s->path, "%s declares %lu bytes but only %zu remain",
		    mp_kind_name(it->kind), (unsigned long)it->len, (size_t)(s->cur.end - it->ptr));
	}
}

static int scan_value(struct scan *s, int depth);

/* Check the elements of an array whose header was just read. */
static int scan_array(struct scan *s, const struct mp_item *it, int depth)
{
	for (uint32_t k = 0; k < it->len; k++) {
		size_t mark = proto_path_push_index(&s->path, k);

		if (scan_value(s, depth) < 0)
			return -1;
		proto_path_pop(&s->path, mark);
	}
	return 0;
}

/* Note the value of the top map's key `key` when it is "v" or "t"; the value is read
 * again, and checked, by the scan right after. */
static void scan_note_top(struct scan *s, const struct mp_item *key)
{
	struct proto_scan_top *top = s->top;
	struct mp_cur at = s->cur;
	bool *have;

	if (key->len != 1 || (key->ptr[0] != 'v' && key->ptr[0] != 't'))
		return;
	have = key->ptr[0] == 'v' ? &top->have_v : &top->have_t;
	if (*have) {
		if (top->dup == 0)
			top->dup = (char)key->ptr[0];
		return;
	}
	*have = true;
	(void)mp_next(&at, key->ptr[0] == 'v' ? &top->v : &top->t);
}

/* Check the entries of a map whose header was just read: string keys, any values. */
static int scan_map(struct scan *s, const struct mp_item *it, int depth)
{
	struct mp_item key;

	for (uint32_t k = 0; k < it->len; k++) {
		size_t mark;

		if (scan_item(s, &key) < 0)
			return -1;
		if (key.kind != MP_STR)
			return proto_errf(s->err, &s->path, "map key must be a string, got %s",
			    mp_kind_name(key.kind));
		if (depth == 1 && s->top != NULL)
			scan_note_top(s, &key);
		mark = proto_path_push_key(&s->path, key.ptr, key.len);
		if (scan_value(s, depth) < 0)
			return -1;
		proto_path_pop(&s->path, mark);
	}
	return 0;
}

/* Check one value; `depth` counts the containers around it. */
static int scan_value(struct scan *s, int depth)
{
	struct mp_item it;
	size_t left;

	if (scan_item(s, &it) < 0)
		return -1;
	if (it.kind != MP_ARRAY && it.kind != MP_MAP)
		return 0;
	if (depth + 1 > PROTO_DEPTH_MAX)
		return proto_errf(s->err, &s->path, "nesting deeper than %d", PROTO_DEPTH_MAX);
	left = mp_cur_left(&s->cur);
	if (it.kind == MP_ARRAY && it.len > left)
		return proto_errf(s->err, &s->path,
		    "array declares %lu elements but only %zu bytes remain", (unsigned long)it.len,
		    left);
	if (it.kind == MP_MAP && 2ull * it.len > left)
		return proto_errf(s->err, &s->path,
		    "map declares %lu entries but only %zu bytes remain", (unsigned long)it.len,
		    left);
	if (it.kind == MP_ARRAY)
		return scan_array(s, &it, depth + 1);
	return scan_map(s, &it, depth + 1);
}

/* Check one value at *cur as the scan of a whole frame does; -1 when it is malformed. */
int proto_scan_value(struct mp_cur *cur, int depth)
{
	struct proto_err err;
	struct scan s = { .cur = *cur, .err = &err };

	proto_path_init(&s.path, "frame");
	if (scan_value(&s, depth) < 0)
		return -1;
	*cur = s.cur;
	return 0;
}

/* Walk a map's declared lengths against its bytes without allocating; -1 with err set. */
int proto_scan(const void *p, size_t len, struct proto_err *err)
{
	return proto_scan_top(p, len, err, NULL);
}

/* Scan a map as proto_scan does, noting its "v" and "t" in *top (when not NULL). */
int proto_scan_top(const void *p, size_t len, struct proto_err *err, struct proto_scan_top *top)
{
	struct scan s = { .err = err, .top = top };
	struct mp_item first;

	if (top != NULL)
		memset(top, 0, sizeof *top);

	mp_cur_init(&s.cur, p, len);
	proto_path_init(&s.path, "frame");
	if (len == 0)
		return proto_errf(err, &s.path, "empty, expected a map");
	if (mp_next(&s.cur, &first) == MP_OK && first.kind != MP_MAP)
		return proto_errf(err, &s.path, "expected a map, got %s", mp_kind_name(first.kind));
	mp_cur_init(&s.cur, p, len);
	if (scan_value(&s, 0) < 0)
		return -1;
	if (mp_cur_left(&s.cur) > 0)
		return proto_errf(
		    err, &s.path, "%zu bytes after the end of the map", mp_cur_left(&s.cur));
	return 0;
}
