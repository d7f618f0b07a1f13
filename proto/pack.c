/* Packing a struct proto_msg into one frame with msgpack-c, driven by the key table in
 * schema.c. Every value is checked against the same limits the decoder applies, so what
 * packs always decodes. */
#include <errno.h>
#include <msgpack.h>
#include <string.h>

#include "proto/path.h"
#include "proto/schema.h"
#include "proto/wire.h"

struct pk {
	msgpack_packer mp;
	struct proto_path path;
	struct proto_err *err;
	/* The job's shared entries packed once (proto_job.shared), else NULL. */
	const struct proto_buf *shared;
};

/* msgpack-c write callback: append to the proto_buf; cannot fail. Most writes are a
 * value's few bytes into room the buffer has: copied here, without a call. */
static int pk_write(void *data, const char *p, size_t n)
{
	struct proto_buf *b = data;

	if (n <= 8 && b->cap - b->len >= n) {
		for (size_t i = 0; i < n; i++)
			b->data[b->len + i] = (uint8_t)p[i];
		b->len += n;
		return 0;
	}
	proto_buf_append(b, p, n);
	return 0;
}

/* Write the string's n bytes at p with its msgpack header (the form msgpack-c's
 * msgpack_pack_str picks: fixstr below 32 bytes, then str8, str16, str32) in one copy
 * where the buffer has room: a key or a short value costs one append, not two calls
 * through the packer. */
static void pk_strbytes(struct pk *k, const char *p, size_t n)
{
	struct proto_buf *b = k->mp.data;
	uint8_t *at;
	size_t h;

	if (b->cap - b->len < n + 5) {
		msgpack_pack_str_with_body(&k->mp, p, n);
		return;
	}
	at = b->data + b->len;
	if (n < 32) {
		at[0] = (uint8_t)(0xa0 | n);
		h = 1;
	} else if (n < 256) {
		at[0] = 0xd9;
		at[1] = (uint8_t)n;
		h = 2;
	} else if (n < 65536) {
		at[0] = 0xda;
		at[1] = (uint8_t)(n >> 8);
		at[2] = (uint8_t)n;
		h = 3;
	} else {
		at[0] = 0xdb;
		at[1] = (uint8_t)(n >> 24);
		at[2] = (uint8_t)(n >> 16);
		at[3] = (uint8_t)(n >> 8);
		at[4] = (uint8_t)n;
		h = 5;
	}
	memcpy(at + h, p, n);
	b->len += h + n;
}

/* Pack the string s for field f; a NULL string is an error for a required field. */
static int pk_str(struct pk *k, const struct proto_field *f, const char *s)
{
	size_t n;
	int rc;

	if (s == NULL) {
		proto_errf(k->err, &k->path, "required string is NULL");
		return -EINVAL;
	}
	n = strlen(s);
	rc = proto_check_str(f, s, n, &k->path, k->err);
	if (rc < 0)
		return rc;
	pk_strbytes(k, s, n);
	return 0;
}

/* Pack v for field f after checking its range. */
static int pk_i64(struct pk *k, const struct proto_field *f, int64_t v)
{
	int rc = proto_check_i64(f, v, &k->path, k->err);

	if (rc < 0)
		return rc;
	msgpack_pack_int64(&k->mp, v);
	return 0;
}

/* Pack a list of strings. */
static int pk_list(struct pk *k, const struct proto_field *f, const struct proto_strlist *l)
{
	if (l->n > PROTO_LIST_MAX) {
		proto_errf(k->err, &k->path, "array of %zu elements exceeds limit %d", l->n,
		    PROTO_LIST_MAX);
		return -EMSGSIZE;
	}
	if (l->n > 0 && l->items == NULL) {
		proto_errf(k->err, &k->path, "%zu items but the array is NULL", l->n);
		return -EINVAL;
	}
	msgpack_pack_array(&k->mp, l->n);
	for (size_t j = 0; j < l->n; j++) {
		size_t mark = proto_path_push_index(&k->path, j);
		int rc = pk_str(k, f, l->items[j]);

		if (rc < 0)
			return rc;
		proto_path_pop(&k->path, mark);
	}
	return 0;
}

/* Pack the estimator's overhead table as [[cat, cplx, n], ...]. */
static int pk_coefs(struct pk *k, const struct proto_coef *rows, size_t n)
{
	if (n > PROTO_LIST_MAX) {
		proto_errf(
		    k->err, &k->path, "array of %zu elements exceeds limit %d", n, PROTO_LIST_MAX);
		return -EMSGSIZE;
	}
	if (n > 0 && rows == NULL) {
		proto_errf(k->err, &k->path, "%zu rows but the array is NULL", n);
		return -EINVAL;
	}
	msgpack_pack_array(&k->mp, n);
	for (size_t j = 0; j < n; j++) {
		size_t mark = proto_path_push_index(&k->path, j), m2;
		int rc;

		msgpack_pack_array(&k->mp, 3);
		m2 = proto_path_push_index(&k->path, 0);
		rc = pk_str(k, &proto_coef_fields[0], rows[j].category);
		proto_path_pop(&k->path, m2);
		if (rc == 0) {
			proto_path_push_index(&k->path, 1);
			rc = pk_str(k, &proto_coef_fields[1], rows[j].complexity);
			proto_path_pop(&k->path, m2);
		}
		if (rc == 0) {
			proto_path_push_index(&k->path, 2);
			rc = pk_i64(k, &proto_coef_fields[2], rows[j].overhead);
			proto_path_pop(&k->path, m2);
		}
		if (rc < 0)
			return rc;
		proto_path_pop(&k->path, mark);
	}
	return 0;
}

/* Whether field f of base goes on the wire (nullable fields holding NULL or -1 do not). */
static bool pk_present(const struct proto_field *f, const char *base)
{
	if (f->kind == PF_STR_OPT)
		return *(char *const *)(base + f->off) != NULL;
	if (f->kind == PF_I64_OPT)
		return *(const int64_t *)(base + f->off) != -1;
	return true;
}

static int pk_map(struct pk *k, const struct proto_schema *s, const char *base, size_t extra);

/* Pack the value of field f of base. */
static int pk_field(struct pk *k, const struct proto_field *f, const char *base)
{
	const void *at = base + f->off;
	const struct proto_event *ev = (const struct proto_event *)base;

	switch (f->kind) {
	case PF_STR:
	case PF_STR_OPT: return pk_str(k, f, *(char *const *)at);
	case PF_I64:
	case PF_I64_OPT: return pk_i64(k, f, *(const int64_t *)at);
	case PF_U64:
		if (f->max > 0 &&
		    (*(const uint64_t *)at < (uint64_t)f->min ||
		        *(const uint64_t *)at > (uint64_t)f->max)) {
			proto_errf(k->err, &k->path, "integer %llu out of range [%lld, %lld]",
			    (unsigned long long)*(const uint64_t *)at, (long long)f->min,
			    (long long)f->max);
			return -EINVAL;
		}
		msgpack_pack_uint64(&k->mp, *(const uint64_t *)at);
		return 0;
	case PF_BOOL:
		if (*(const bool *)at)
			msgpack_pack_true(&k->mp);
		else
			msgpack_pack_false(&k->mp);
		return 0;
	case PF_LIST: return pk_list(k, f, at);
	case PF_MAP: return pk_map(k, f->sub, at, 0);
	case PF_COEFS:
		return pk_coefs(
		    k, *(struct proto_coef *const *)at, *(const size_t *)(base + f->off2));
	case PF_KIND:
		if (proto_schema_of_kind(ev->kind) == NULL)
			break;
		pk_strbytes(
		    k, proto_event_kind_name(ev->kind), strlen(proto_event_kind_name(ev->kind)));
		return 0;
	case PF_BODY:
		if (proto_schema_of_kind(ev->kind) == NULL)
			break;
		return pk_map(k, proto_schema_of_kind(ev->kind), at, 0);
	}
	proto_errf(k->err, &k->path, "unknown event kind %d", (int)ev->kind);
	return -EINVAL;
}

/* Pack the fields of s found in base as entries of a map whose header is written; the
 * job's shared entries are copied when k->shared holds them. */
static int pk_fields(struct pk *k, const struct proto_schema *s, const char *base)
{
	for (size_t j = 0; j < s->nfields; j++) {
		const struct proto_field *f = &s->fields[j];
		size_t mark;
		int rc;

		if (j == PROTO_JOB_SHARED_FROM && k->shared != NULL &&
		    s == proto_schema_of_type(PROTO_JOB)) {
			proto_buf_append(k->mp.data, k->shared->data, k->shared->len);
			j = PROTO_JOB_SHARED_TO - 1;
			continue;
		}
		if (!pk_present(f, base))
			continue;
		pk_strbytes(k, f->key, f->klen);
		mark = proto_path_push_key(&k->path, f->key, f->klen);
		rc = pk_field(k, f, base);
		if (rc < 0)
			return rc;
		proto_path_pop(&k->path, mark);
	}
	return 0;
}

/* Pack the fields of s found in base as one map with `extra` more entries, which the
 * caller writes right after the header. */
static int pk_map(struct pk *k, const struct proto_schema *s, const char *base, size_t extra)
{
	size_t n = extra;

	for (size_t j = 0; j < s->nfields; j++)
		n += pk_present(&s->fields[j], base);
	msgpack_pack_map(&k->mp, n);
	return extra == 0 ? pk_fields(k, s, base) : 0;
}

/* Write the frame length in front of the map that starts at `start + 4`. */
static void pk_length(struct proto_buf *b, size_t start, size_t len)
{
	b->data[start] = (uint8_t)(len >> 24);
	b->data[start + 1] = (uint8_t)(len >> 16);
	b->data[start + 2] = (uint8_t)(len >> 8);
	b->data[start + 3] = (uint8_t)len;
}

/* Append a message as a frame; a negative errno with err set, b unchanged. */
int proto_msg_pack(const struct proto_msg *m, struct proto_buf *b, struct proto_err *err)
{
	const struct proto_schema *s = proto_schema_of_type(m->type);
	const char *base = (const char *)&m->u;
	struct pk k = { .err = err };
	size_t start = b->len, len;
	int rc;

	err->text[0] = '\0';
	if (s == NULL) {
		proto_path_init(&k.path, "message");
		proto_errf(err, &k.path, "unknown message type %d", (int)m->type);
		return -EINVAL;
	}
	if (m->type == PROTO_JOB)
		k.shared = m->u.job.shared;
	proto_path_init(&k.path, s->name);
	proto_buf_append(b, "\0\0\0\0", 4);
	msgpack_packer_init(&k.mp, b, pk_write);
	pk_map(&k, s, base, 2);
	pk_strbytes(&k, "v", 1);
	msgpack_pack_uint64(&k.mp, PROTO_VERSION);
	pk_strbytes(&k, "t", 1);
	pk_strbytes(&k, s->name, strlen(s->name));
	rc = pk_fields(&k, s, base);
	len = b->len - start - 4;
	if (rc == 0 && len > PROTO_FRAME_MAX_DEFAULT) {
		proto_path_init(&k.path, "frame");
		proto_errf(err, &k.path, "encoded map of %zu bytes exceeds limit %u", len,
		    PROTO_FRAME_MAX_DEFAULT);
		rc = -EMSGSIZE;
	}
	if (rc < 0) {
		b->len = start;
		return rc;
	}
	pk_length(b, start, len);
	return 0;
}

int proto_job_pack_shared(const struct proto_job *j, struct proto_buf *out, struct proto_err *err)
{
	const struct proto_schema *s = proto_schema_of_type(PROTO_JOB);
	const char *base = (const char *)j;
	struct pk k = { .err = err };

	err->text[0] = '\0';
	proto_buf_reset(out);
	proto_path_init(&k.path, s->name);
	msgpack_packer_init(&k.mp, out, pk_write);
	for (size_t i = PROTO_JOB_SHARED_FROM; i < PROTO_JOB_SHARED_TO; i++) {
		const struct proto_field *f = &s->fields[i];
		size_t mark;
		int rc;

		/* Each is always present: none is optional. */
		pk_strbytes(&k, f->key, f->klen);
		mark = proto_path_push_key(&k.path, f->key, f->klen);
		if ((rc = pk_field(&k, f, base)) < 0) {
			proto_buf_reset(out);
			return rc;
		}
		proto_path_pop(&k.path, mark);
	}
	return 0;
}

/* Append a message as a frame; a negative errno, b unchanged. */
int proto_pack(const struct proto_msg *m, struct proto_buf *b)
{
	struct proto_err err;

	return proto_msg_pack(m, b, &err);
}
