/* Buffers, and freeing and comparing messages by walking the key table. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "proto/schema.h"
#include "proto/wire.h"

/* Start an empty buffer. */
void proto_buf_init(struct proto_buf *b)
{
	memset(b, 0, sizeof *b);
}

/* Free a buffer's bytes and empty it. */
void proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	proto_buf_init(b);
}

/* Empty a buffer, keeping its memory. */
void proto_buf_reset(struct proto_buf *b)
{
	b->len = 0;
}

/* Append n bytes, growing the buffer (aborts when out of memory). */
void proto_buf_append(struct proto_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap - b->len < n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Free the strings of a list. */
static void list_free(struct proto_strlist *l)
{
	for (size_t j = 0; j < l->n; j++)
		free(l->items[j]);
	free(l->items);
}

/* Free whatever the fields of s own in base. */
static void fields_free(const struct proto_schema *s, char *base)
{
	for (size_t j = 0; j < s->nfields; j++) {
		const struct proto_field *f = &s->fields[j];
		void *at = base + f->off;
		struct proto_coef *rows;
		size_t n;

		switch (f->kind) {
		case PF_STR:
		case PF_STR_OPT: free(*(char **)at); break;
		case PF_LIST: list_free(at); break;
		case PF_MAP: fields_free(f->sub, at); break;
		case PF_COEFS:
			rows = *(struct proto_coef **)at;
			n = *(size_t *)(base + f->off2);
			for (size_t r = 0; r < n; r++) {
				free(rows[r].category);
				free(rows[r].complexity);
			}
			free(rows);
			break;
		case PF_BODY: {
			const struct proto_schema *b;

			b = proto_schema_of_kind(((struct proto_event *)base)->kind);
			if (b != NULL)
				fields_free(b, at);
			break;
		}
		default: break;
		}
	}
}

/* Free what a message owns and zero it. */
void proto_msg_free(struct proto_msg *m)
{
	const struct proto_schema *s = proto_schema_of_type(m->type);

	if (s != NULL)
		fields_free(s, (char *)&m->u);
	memset(m, 0, sizeof *m);
}

/* Note in *ss where the strings of the fields of s in base are, with their lengths; an
 * event (the only message this serves) has no lists or overhead tables. */
static void fields_strings(const struct proto_schema *s, char *base, struct proto_strings *ss)
{
	for (size_t j = 0; j < s->nfields; j++) {
		const struct proto_field *f = &s->fields[j];
		char *at = base + f->off;
		const struct proto_schema *b;

		switch (f->kind) {
		case PF_STR:
		case PF_STR_OPT:
			if (*(char **)at == NULL)
				break;
			assert(ss->n < ARRAY_SIZE(ss->at));
			ss->at[ss->n] = (char **)at;
			ss->len[ss->n] = strlen(*(char **)at) + 1;
			ss->bytes += ss->len[ss->n++];
			break;
		case PF_MAP: fields_strings(f->sub, at, ss); break;
		case PF_BODY:
			b = proto_schema_of_kind(((struct proto_event *)base)->kind);
			if (b != NULL)
				fields_strings(b, at, ss);
			break;
		case PF_LIST:
		case PF_COEFS: abort();
		default: break;
		}
	}
}

void proto_event_strings(struct proto_event *ev, struct proto_strings *ss)
{
	ss->n = ss->bytes = 0;
	fields_strings(proto_schema_of_type(PROTO_EVENT), (char *)ev, ss);
}

void proto_strings_move(const struct proto_strings *ss, char *to)
{
	for (size_t i = 0; i < ss->n; i++) {
		memcpy(to, *ss->at[i], ss->len[i]);
		free(*ss->at[i]);
		*ss->at[i] = to;
		to += ss->len[i];
	}
}

/* Whether two lists hold the same strings in the same order. */
static bool list_eq(const struct proto_strlist *a, const struct proto_strlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t j = 0; j < a->n; j++) {
		if (!str_eq(a->items[j], b->items[j]))
			return false;
	}
	return true;
}

/* Whether two overhead tables are equal. */
static bool coefs_eq(const struct proto_coef *a, const struct proto_coef *b, size_t n)
{
	for (size_t r = 0; r < n; r++) {
		if (!str_eq(a[r].category, b[r].category) ||
		    !str_eq(a[r].complexity, b[r].complexity) || a[r].overhead != b[r].overhead)
			return false;
	}
	return true;
}

/* Whether the fields of s are equal in a and b. */
static bool fields_eq(const struct proto_schema *s, const char *a, const char *b)
{
	for (size_t j = 0; j < s->nfields; j++) {
		const struct proto_field *f = &s->fields[j];
		const void *x = a + f->off, *y = b + f->off;
		bool eq = true;

		switch (f->kind) {
		case PF_STR:
		case PF_STR_OPT: eq = str_eq(*(char *const *)x, *(char *const *)y); break;
		case PF_I64:
		case PF_I64_OPT: eq = *(const int64_t *)x == *(const int64_t *)y; break;
		case PF_U64: eq = *(const uint64_t *)x == *(const uint64_t *)y; break;
		case PF_BOOL: eq = *(const bool *)x == *(const bool *)y; break;
		case PF_LIST: eq = list_eq(x, y); break;
		case PF_MAP: eq = fields_eq(f->sub, x, y); break;
		case PF_COEFS:
			eq = *(const size_t *)(a + f->off2) == *(const size_t *)(b + f->off2) &&
			    coefs_eq(*(struct proto_coef *const *)x, *(struct proto_coef *const *)y,
			        *(const size_t *)(a + f->off2));
			break;
		case PF_KIND:
			eq = *(const enum proto_event_kind *)x == *(const enum proto_event_kind *)y;
			break;
		case PF_BODY: {
			const struct proto_schema *bs;

			bs = proto_schema_of_kind(((const struct proto_event *)a)->kind);
			eq = bs == NULL || fields_eq(bs, x, y);
			break;
		}
		}
		if (!eq)
			return false;
	}
	return true;
}

/* Compare two messages field by field. */
bool proto_msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
	const struct proto_schema *s = proto_schema_of_type(a->type);

	if (a->type != b->type || s == NULL)
		return false;
	return fields_eq(s, (const char *)&a->u, (const char *)&b->u);
}
