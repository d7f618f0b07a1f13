/* Every class of malformed map is refused before a handler could see it, with an error
 * naming the field and the reason, and with nothing left allocated. Valid samples are
 * packed, opened as an editable msgpack-c object tree, broken in one place and re-packed. */
#include <msgpack.h>

#include "common/util.h"
#include "proto/wire.h"
#include "tests/unit/proto_samples.h"
#include "tests/unit/test.h"

struct mut {
	struct proto_buf packed;
	msgpack_unpacked up;
	msgpack_sbuffer out;
};

/* Pack sample `id` (typical variant) and open it for editing. */
static void mut_start(struct mut *m, enum proto_sample_id id)
{
	struct proto_msg msg;

	proto_sample_build(id, SAMPLE_TYPICAL, &msg);
	proto_buf_init(&m->packed);
	CHECK_EQ_INT(proto_pack(&msg, &m->packed), 0);
	proto_msg_free(&msg);
	msgpack_unpacked_init(&m->up);
	CHECK(msgpack_unpack_next(&m->up, (const char *)m->packed.data + 4, m->packed.len - 4,
	          NULL) == MSGPACK_UNPACK_SUCCESS);
	msgpack_sbuffer_init(&m->out);
}

/* Release the editing state. */
static void mut_end(struct mut *m)
{
	msgpack_sbuffer_destroy(&m->out);
	msgpack_unpacked_destroy(&m->up);
	proto_buf_free(&m->packed);
}

/* The entry of map o whose key is the n bytes at k, or NULL. */
static msgpack_object_kv *map_entry(msgpack_object *o, const char *k, size_t n)
{
	CHECK(o->type == MSGPACK_OBJECT_MAP);
	for (uint32_t j = 0; j < o->via.map.size; j++) {
		msgpack_object_kv *kv = &o->via.map.ptr[j];

		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
		    memcmp(kv->key.via.str.ptr, k, n) == 0)
			return kv;
	}
	return NULL;
}

/* The value at a path such as "p.dl[3]" or "est.oh[0][2]"; "" is the root map. */
static msgpack_object *mut_at(struct mut *m, const char *path)
{
	msgpack_object *o = &m->up.data;
	const char *p = path;

	while (*p != '\0') {
		size_t n = strcspn(p, ".[");

		if (n > 0) {
			msgpack_object_kv *kv = map_entry(o, p, n);

			CHECK(kv != NULL);
			o = &kv->val;
			p += n;
		}
		while (*p == '[') {
			unsigned long i = strtoul(p + 1, (char **)&p, 10);

			CHECK(o->type == MSGPACK_OBJECT_ARRAY && i < o->via.array.size);
			o = &o->via.array.ptr[i];
			p++;
		}
		if (*p == '.')
			p++;
	}
	return o;
}

/* Remove key `key` from the map at `path`. */
static void mut_del(struct mut *m, const char *path, const char *key)
{
	msgpack_object *o = mut_at(m, path);
	msgpack_object_kv *kv = map_entry(o, key, strlen(key));
	size_t at;

	CHECK(kv != NULL);
	at = (size_t)(kv - o->via.map.ptr);
	memmove(kv, kv + 1, (o->via.map.size - at - 1) * sizeof *kv);
	o->via.map.size--;
}

/* Add the entry key: val at the end of the map at `path`. */
static void mut_add(struct mut *m, const char *path, msgpack_object key, msgpack_object val)
{
	msgpack_object *o = mut_at(m, path);
	msgpack_object_kv *kv;

	kv = msgpack_zone_malloc(m->up.zone, (o->via.map.size + 1) * sizeof *kv);
	CHECK(kv != NULL);
	memcpy(kv, o->via.map.ptr, o->via.map.size * sizeof *kv);
	kv[o->via.map.size].key = key;
	kv[o->via.map.size].val = val;
	o->via.map.ptr = kv;
	o->via.map.size++;
}

/* Pack the edited tree and decode it; returns proto_decode's result. */
static int mut_decode(struct mut *m, struct proto_msg *out, struct proto_err *err)
{
	msgpack_packer pk;

	msgpack_sbuffer_clear(&m->out);
	msgpack_packer_init(&pk, &m->out, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, m->up.data);
	return proto_decode(m->out.data, m->out.size, out, err);
}

/* Decode the edited tree, expect refusal with exactly `want`, and finish. */
static void mut_expect(struct mut *m, const char *want)
{
	struct proto_msg out;
	struct proto_err err;

	CHECK_EQ_INT(mut_decode(m, &out, &err), -1);
	CHECK_EQ_STR(err.text, want);
	CHECK_EQ_INT(out.type, 0);
	mut_end(m);
}

/* Decode raw map bytes and expect refusal with exactly `want`. */
static void raw_expect(const void *bytes, size_t n, const char *want)
{
	struct proto_msg out;
	struct proto_err err;

	CHECK_EQ_INT(proto_decode(bytes, n, &out, &err), -1);
	CHECK_EQ_STR(err.text, want);
}

/* msgpack-c objects for the edits: a string, n bytes of string, integers, a bare type. */
static msgpack_object o_str(const char *s)
{
	msgpack_object o = { .type = MSGPACK_OBJECT_STR };

	o.via.str.ptr = s;
	o.via.str.size = (uint32_t)strlen(s);
	return o;
}

static msgpack_object o_strn(const char *s, size_t n)
{
	msgpack_object o = o_str("");

	o.via.str.ptr = s;
	o.via.str.size = (uint32_t)n;
	return o;
}

static msgpack_object o_int(int64_t i)
{
	msgpack_object o = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };

	if (i < 0) {
		o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		o.via.i64 = i;
	} else {
		o.via.u64 = (uint64_t)i;
	}
	return o;
}

static msgpack_object o_u64(uint64_t u)
{
	msgpack_object o = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };

	o.via.u64 = u;
	return o;
}

static msgpack_object o_type(msgpack_object_type t)
{
	msgpack_object o = { .type = t };

	return o;
}

TEST(proto_refuses_unknown_type)
{
	struct mut m;

	mut_start(&m, SAMPLE_ACK);
	*mut_at(&m, "t") = o_str("foo");
	mut_expect(&m, "t: unknown message type \"foo\"");
}

TEST(proto_refuses_unknown_type_escaping_unprintable_bytes)
{
	struct mut m;

	mut_start(&m, SAMPLE_ACK);
	*mut_at(&m, "t") = o_str("a\"\n");
	mut_expect(&m, "t: unknown message type \"a\\x22\\x0a\"");
}

TEST(proto_refuses_wrong_version)
{
	struct mut m;

	mut_start(&m, SAMPLE_ACK);
	*mut_at(&m, "v") = o_int(2);
	mut_expect(&m, "v: protocol version 2, expected 1");
	mut_start(&m, SAMPLE_ACK);
	*mut_at(&m, "v") = o_int(-1);
	mut_expect(&m, "v: protocol version -1, expected 1");
	mut_start(&m, SAMPLE_ACK);
	*mut_at(&m, "v") = o_str("1");
	mut_expect(&m, "v: expected integer, got string");
}

TEST(proto_refuses_missing_version_or_type)
{
	struct mut m;

	mut_start(&m, SAMPLE_ACK);
	mut_del(&m, "", "v");
	mut_expect(&m, "frame: missing field \"v\"");
	mut_start(&m, SAMPLE_ACK);
	mut_del(&m, "", "t");
	mut_expect(&m, "frame: missing field \"t\"");
	mut_start(&m, SAMPLE_ACK);
	*mut_at(&m, "t") = o_int(4);
	mut_expect(&m, "t: expected string, got integer");
}

TEST(proto_refuses_missing_required_field)
{
	struct mut m;

	mut_start(&m, SAMPLE_EVENT_LOG);
	mut_del(&m, "", "seq");
	mut_expect(&m, "event: missing field \"seq\"");
	mut_start(&m, SAMPLE_JOB);
	mut_del(&m, "", "uuid");
	mut_expect(&m, "job: missing field \"uuid\"");
	mut_start(&m, SAMPLE_JOB);
	mut_del(&m, "p", "name");
	mut_expect(&m, "job.p: missing field \"name\"");
	mut_start(&m, SAMPLE_EVENT_USAGE);
	mut_del(&m, "body", "model");
	mut_expect(&m, "event.body: missing field \"model\"");
	mut_start(&m, SAMPLE_EVENT_ESTIMATION);
	mut_del(&m, "", "body");
	mut_expect(&m, "event: missing field \"body\"");
}

TEST(proto_refuses_mistyped_fields)
{
	struct mut m;

	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "p.dl[2]") = o_int(5);
	mut_expect(&m, "job.p.dl[2]: expected string, got integer");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "att") = o_str("17");
	mut_expect(&m, "job.att: expected integer, got string");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "dry") = o_int(1);
	mut_expect(&m, "job.dry: expected boolean, got integer");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "uuid") = o_type(MSGPACK_OBJECT_NIL);
	mut_expect(&m, "job.uuid: expected string, got nil");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "p") = o_str("x");
	mut_expect(&m, "job.p: expected map, got string");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "p.paths") = o_str("src/");
	mut_expect(&m, "job.p.paths: expected array, got string");
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.in") = o_type(MSGPACK_OBJECT_FLOAT64);
	mut_expect(&m, "event.body.in: expected integer or nil, got float");
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.err") = o_int(3);
	mut_expect(&m, "event.body.err: expected string or nil, got integer");
	mut_start(&m, SAMPLE_EVENT_ESTIMATION);
	*mut_at(&m, "body.success") = o_str("true");
	mut_expect(&m, "event.body.success: expected boolean, got string");
	mut_start(&m, SAMPLE_EVENT_ESTIMATION);
	*mut_at(&m, "body") = o_type(MSGPACK_OBJECT_NIL);
	mut_expect(&m, "event.body: expected map, got nil");
}

TEST(proto_refuses_binary_where_a_string_belongs)
{
	struct mut m;
	msgpack_object bin = { .type = MSGPACK_OBJECT_BIN };

	bin.via.bin.ptr = "abc";
	bin.via.bin.size = 3;
	mut_start(&m, SAMPLE_HELLO);
	*mut_at(&m, "sw") = bin;
	mut_expect(&m, "hello.sw: expected string, got binary");
}

TEST(proto_refuses_integers_that_do_not_fit_the_field)
{
	struct mut m;

	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.http") = o_int(1000);
	mut_expect(&m, "event.body.http: integer 1000 out of range [0, 999]");
	mut_start(&m, SAMPLE_ACK);
	*mut_at(&m, "att") = o_int(-1);
	mut_expect(&m, "ack.att: integer -1 out of range [0, 18446744073709551615]");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "deadline") = o_u64(1ull << 63);
	mut_expect(&m,
	    "job.deadline: integer 9223372036854775808 out of range "
	    "[0, 9223372036854775807]");
	mut_start(&m, SAMPLE_HELLO);
	*mut_at(&m, "pid") = o_int(0);
	mut_expect(&m, "hello.pid: integer 0 out of range [1, 2147483647]");
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.in") = o_int(-1);
	mut_expect(&m, "event.body.in: integer -1 out of range [0, 1000000000]");
}

TEST(proto_refuses_token_counts_past_the_most_a_call_reports)
{
	static const struct {
		int sample;
		const char *field;
		int64_t v;
		const char *want;
	} cases[] = {
		{ SAMPLE_EVENT_USAGE, "body.total", INT64_MAX,
		    "event.body.total: integer 9223372036854775807 out of range [0, 2000000000]" },
		{ SAMPLE_EVENT_USAGE, "body.total", 2000000001,
		    "event.body.total: integer 2000000001 out of range [0, 2000000000]" },
		{ SAMPLE_EVENT_USAGE, "body.in", 1000000001,
		    "event.body.in: integer 1000000001 out of range [0, 1000000000]" },
		{ SAMPLE_EVENT_USAGE, "body.out", INT64_MAX,
		    "event.body.out: integer 9223372036854775807 out of range [0, 1000000000]" },
		{ SAMPLE_EVENT_ESTIMATION, "body.pred", 1000000001,
		    "event.body.pred: integer 1000000001 out of range [0, 1000000000]" },
		{ SAMPLE_EVENT_ESTIMATION, "body.actual", INT64_MAX,
		    "event.body.actual: integer 9223372036854775807 out of range [0, 1000000000]" },
		{ SAMPLE_EVENT_ESTIMATION, "body.budget", 1000000001,
		    "event.body.budget: integer 1000000001 out of range [0, 1000000000]" },
		{ SAMPLE_EVENT_ESTIMATION, "body.maxt", 1000000001,
		    "event.body.maxt: integer 1000000001 out of range [0, 1000000000]" },
		{ SAMPLE_EVENT_ESTIMATION, "body.in", 1000000001,
		    "event.body.in: integer 1000000001 out of range [0, 1000000000]" },
		{ SAMPLE_JOB, "cap", 1000000001,
		    "job.cap: integer 1000000001 out of range [0, 1000000000]" },
	};
	struct mut m;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		mut_start(&m, cases[i].sample);
		*mut_at(&m, cases[i].field) = o_int(cases[i].v);
		mut_expect(&m, cases[i].want);
	}
	/* The most each may say is accepted. */
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.total") = o_int(PROTO_TOTAL_TOKENS_MAX);
	*mut_at(&m, "body.out") = o_int(PROTO_TOKENS_MAX);
	{
		struct proto_msg out;
		struct proto_err err;

		CHECK_EQ_INT(mut_decode(&m, &out, &err), 0);
		CHECK(out.u.event.body.usage.total_tokens == PROTO_TOTAL_TOKENS_MAX);
		proto_msg_free(&out);
		mut_end(&m);
	}
}

TEST(proto_refuses_seqs_and_versions_past_what_the_database_keeps)
{
	/* Kept as signed 64-bit integers: a seq of 2^64 - 1 was stored as -1, and the gap
	 * between a result's final seq and the events received wrapped. A result's final seq
	 * is 0 when no event was sent. */
	static const struct {
		int sample;
		const char *field;
		uint64_t v;
		const char *want;
	} cases[] = {
		{ SAMPLE_EVENT_USAGE, "seq", 1ull << 63,
		    "event.seq: integer 9223372036854775808 out of range [1, 9223372036854775807]" },
		/* Seq 0 is the supervisor's record of a telemetry gap: a worker's took its place. */
		{ SAMPLE_EVENT_LOG, "seq", 0,
		    "event.seq: integer 0 out of range [1, 9223372036854775807]" },
		{ SAMPLE_RESULT, "seq", UINT64_MAX,
		    "result.seq: integer 18446744073709551615 out of range [0, "
		    "9223372036854775807]" },
		{ SAMPLE_EVENT_ESTIMATION, "body.ver", 1ull << 63,
		    "event.body.ver: integer 9223372036854775808 out of range [0, "
		    "9223372036854775807]" },
	};
	struct proto_msg msg, out;
	struct proto_buf buf;
	struct proto_err err;
	struct mut m;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		mut_start(&m, cases[i].sample);
		*mut_at(&m, cases[i].field) = o_u64(cases[i].v);
		mut_expect(&m, cases[i].want);
	}
	/* The most is accepted. */
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "seq") = o_u64(INT64_MAX);
	CHECK_EQ_INT(mut_decode(&m, &out, &err), 0);
	CHECK(out.u.event.seq == INT64_MAX);
	proto_msg_free(&out);
	mut_end(&m);
	/* And the packer refuses what the reader would. */
	proto_sample_build(SAMPLE_RESULT, SAMPLE_TYPICAL, &msg);
	msg.u.result.final_seq = 1ull << 63;
	proto_buf_init(&buf);
	CHECK(proto_msg_pack(&msg, &buf, &err) != 0);
	CHECK(strstr(err.text, "result.seq: integer 9223372036854775808 out of range") != NULL);
	proto_buf_free(&buf);
	proto_msg_free(&msg);
}

TEST(proto_accepts_any_integer_encoding_that_fits)
{
	/* {v: int8 1, t: "ack", att: int64 5, seq: uint16 7} */
	static const uint8_t map[] = { 0x84, 0xa1, 'v', 0xd0, 0x01, 0xa1, 't', 0xa3, 'a', 'c', 'k',
		0xa3, 'a', 't', 't', 0xd3, 0, 0, 0, 0, 0, 0, 0, 5, 0xa3, 's', 'e', 'q', 0xcd, 0x00,
		0x07 };
	struct proto_msg out;
	struct proto_err err;

	CHECK_EQ_INT(proto_decode(map, sizeof map, &out, &err), 0);
	CHECK_EQ_INT(out.type, PROTO_ACK);
	CHECK_EQ_INT(out.u.ack.attempt_id, 5);
	CHECK_EQ_INT(out.u.ack.seq, 7);
	proto_msg_free(&out);
}

TEST(proto_refuses_strings_over_their_limit)
{
	struct mut m;
	char *big = xmalloc(PROTO_STR_MAX + 1);

	memset(big, 'a', PROTO_STR_MAX + 1);
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "uuid") = o_strn(big, 300);
	mut_expect(&m, "job.uuid: string of 300 bytes exceeds limit 256");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "p.desc") = o_strn(big, PROTO_STR_MAX + 1);
	mut_expect(&m, "job.p.desc: string of 1048577 bytes exceeds limit 1048576");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "p.dl[1]") = o_strn(big, PROTO_PATH_MAX + 1);
	mut_expect(&m, "job.p.dl[1]: string of 4097 bytes exceeds limit 4096");
	free(big);
}

TEST(proto_refuses_lists_over_their_limit)
{
	struct mut m;
	msgpack_object *dl;
	msgpack_object *items;

	mut_start(&m, SAMPLE_JOB);
	dl = mut_at(&m, "p.dl");
	items = msgpack_zone_malloc(m.up.zone, (PROTO_LIST_MAX + 1) * sizeof *items);
	for (size_t j = 0; j <= PROTO_LIST_MAX; j++)
		items[j] = o_str("a.py");
	dl->via.array.ptr = items;
	dl->via.array.size = PROTO_LIST_MAX + 1;
	mut_expect(&m, "job.p.dl: array of 4097 elements exceeds limit 4096");
}

TEST(proto_refuses_nul_bytes_and_invalid_utf8_in_strings)
{
	struct mut m;

	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "run") = o_strn("ab\0cd", 5);
	mut_expect(&m, "job.run: string holds a NUL byte at offset 2");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "run") = o_str("a\xc3(");
	mut_expect(&m, "job.run: invalid UTF-8 at byte 1");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "p.ro[0]") = o_str("\xed\xa0\x80");
	mut_expect(&m, "job.p.ro[0]: invalid UTF-8 at byte 0");
}

TEST(proto_refuses_duplicate_keys)
{
	struct mut m;

	mut_start(&m, SAMPLE_ACK);
	mut_add(&m, "", o_str("att"), o_int(9));
	mut_expect(&m, "ack: duplicate field \"att\"");
	mut_start(&m, SAMPLE_ACK);
	mut_add(&m, "", o_str("t"), o_str("ack"));
	mut_expect(&m, "frame: duplicate field \"t\"");
}

TEST(proto_refuses_unknown_event_kind_and_malformed_coefficient_rows)
{
	struct mut m;

	mut_start(&m, SAMPLE_EVENT_LOG);
	*mut_at(&m, "kind") = o_str("llm_usage_v9");
	mut_expect(&m, "event.kind: unknown event kind \"llm_usage_v9\"");
	mut_start(&m, SAMPLE_JOB);
	mut_at(&m, "est.oh[1]")->via.array.size = 2;
	mut_expect(&m,
	    "job.est.oh[1]: expected 3 elements [category, complexity, overhead], "
	    "got 2");
	mut_start(&m, SAMPLE_JOB);
	*mut_at(&m, "est.oh[0][2]") = o_str("2000");
	mut_expect(&m, "job.est.oh[0][2]: expected integer, got string");
}

TEST(proto_ignores_unknown_keys_at_every_level)
{
	struct mut m;
	struct proto_msg out, want;
	struct proto_err err;

	mut_start(&m, SAMPLE_JOB);
	mut_add(&m, "", o_str("future"), o_str("x"));
	mut_add(&m, "p", o_str("future_list"), o_type(MSGPACK_OBJECT_NIL));
	mut_add(&m, "llm", o_str("temperature"), o_type(MSGPACK_OBJECT_FLOAT64));
	mut_add(&m, "est", o_str("zz"), o_int(-3));
	CHECK_EQ_INT(mut_decode(&m, &out, &err), 0);
	proto_sample_build(SAMPLE_JOB, SAMPLE_TYPICAL, &want);
	CHECK(proto_msg_equal(&out, &want));
	proto_msg_free(&want);
	proto_msg_free(&out);
	mut_end(&m);
}

TEST(proto_accepts_nil_for_nullable_fields)
{
	struct mut m;
	struct proto_msg out;
	struct proto_err err;

	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.err") = o_type(MSGPACK_OBJECT_NIL);
	*mut_at(&m, "body.in") = o_type(MSGPACK_OBJECT_NIL);
	CHECK_EQ_INT(mut_decode(&m, &out, &err), 0);
	CHECK(out.u.event.body.usage.error_class == NULL);
	CHECK_EQ_INT(out.u.event.body.usage.prompt_tokens, -1);
	CHECK_EQ_INT(out.u.event.body.usage.completion_tokens, 567);
	proto_msg_free(&out);
	mut_end(&m);
}

TEST(proto_decodes_event_body_sent_before_its_kind)
{
	struct mut m;
	struct proto_msg out, want;
	struct proto_err err;
	msgpack_object *root;
	msgpack_object_kv tmp;

	mut_start(&m, SAMPLE_EVENT_ESTIMATION);
	root = mut_at(&m, "");
	/* move "body" (last) in front of "kind" */
	tmp = root->via.map.ptr[root->via.map.size - 1];
	root->via.map.ptr[root->via.map.size - 1] = root->via.map.ptr[0];
	root->via.map.ptr[0] = tmp;
	CHECK_EQ_INT(mut_decode(&m, &out, &err), 0);
	proto_sample_build(SAMPLE_EVENT_ESTIMATION, SAMPLE_TYPICAL, &want);
	CHECK(proto_msg_equal(&out, &want));
	proto_msg_free(&want);
	proto_msg_free(&out);
	mut_end(&m);
}

TEST(proto_reports_an_event_body_error_only_when_the_rest_of_the_event_has_none)
{
	struct mut m;

	/* the body (packed after the kind, so decoded where it stands) is broken too */
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.model") = o_int(7);
	mut_del(&m, "", "seq");
	mut_expect(&m, "event: missing field \"seq\"");
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.in") = o_str("12");
	mut_add(&m, "", o_str("att"), o_int(9));
	mut_expect(&m, "event: duplicate field \"att\"");
	mut_start(&m, SAMPLE_EVENT_USAGE);
	*mut_at(&m, "body.model") = o_int(7);
	mut_add(&m, "", o_str("future"), o_str("x"));
	mut_expect(&m, "event.body.model: expected string, got integer");
}

TEST(proto_refuses_huge_declared_containers_without_allocating)
{
	/* a 5-byte map asking for 2^32-1 entries */
	static const uint8_t huge_map[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
	/* {v:1, t:"ack", x: array32 of 2^32-1 elements} with nothing after */
	static const uint8_t huge_array[] = { 0x83, 0xa1, 'v', 0x01, 0xa1, 't', 0xa3, 'a', 'c', 'k',
		0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t huge_str[] = { 0x83, 0xa1, 'v', 0x01, 0xa1, 't', 0xa3, 'a', 'c', 'k',
		0xa1, 'x', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a' };
	static const uint8_t huge_bin[] = { 0x81, 0xa1, 'x', 0xc6, 0x7f, 0xff, 0xff, 0xff };
	static const uint8_t huge_ext[] = { 0x81, 0xa1, 'x', 0xc9, 0xff, 0xff, 0xff, 0xff, 1 };
	static const uint8_t top_array[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };

	raw_expect(huge_map, sizeof huge_map,
	    "frame: map declares 4294967295 entries but only 0 bytes remain");
	raw_expect(huge_array, sizeof huge_array,
	    "frame.x: array declares 4294967295 elements but only 0 bytes remain");
	raw_expect(huge_str, sizeof huge_str,
	    "frame.x: string declares 4294967295 bytes but only 1 remain");
	raw_expect(huge_bin, sizeof huge_bin,
	    "frame.x: binary declares 2147483647 bytes but only 0 remain");
	raw_expect(huge_ext, sizeof huge_ext,
	    "frame.x: extension declares 4294967295 bytes but only 0 remain");
	raw_expect(top_array, sizeof top_array, "frame: expected a map, got array");
}

TEST(proto_refuses_map_whose_entries_outnumber_its_bytes)
{
	/* {v:1, "x": map16 of 10 entries} holding 19 bytes: needs 20 */
	uint8_t buf[64] = { 0x82, 0xa1, 'v', 0x01, 0xa1, 'x', 0xde, 0x00, 0x0a };
	size_t n = 9 + 19;

	memset(buf + 9, 0xc0, 19);
	raw_expect(buf, n, "frame.x: map declares 10 entries but only 19 bytes remain");
}

TEST(proto_refuses_nesting_deeper_than_the_bound)
{
	/* {v:1, t:"ack", att:1, seq:1, x: [[[[[0]]]]]} is depth 6: allowed */
	uint8_t ok[] = { 0x85, 0xa1, 'v', 0x01, 0xa1, 't', 0xa3, 'a', 'c', 'k', 0xa3, 'a', 't', 't',
		0x01, 0xa3, 's', 'e', 'q', 0x01, 0xa1, 'x', 0x91, 0x91, 0x91, 0x91, 0x91, 0x00 };
	/* one level more */
	uint8_t deep[] = { 0x81, 0xa1, 'x', 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x00 };
	struct proto_msg out;
	struct proto_err err;

	CHECK_EQ_INT(proto_decode(ok, sizeof ok, &out, &err), 0);
	proto_msg_free(&out);
	raw_expect(deep, sizeof deep, "frame.x[0][0][0][0][0]: nesting deeper than 6");
}

TEST(proto_refuses_structural_garbage)
{
	static const uint8_t reserved[] = { 0x81, 0xa1, 'x', 0xc1 };
	static const uint8_t int_key[] = { 0x81, 0x01, 0x02 };
	static const uint8_t trailing[] = { 0x80, 0xc0, 0xc0 };
	static const uint8_t cut[] = { 0x82, 0xa1, 'v', 0x01, 0xa1 };
	static const uint8_t cut_int[] = { 0x81, 0xa1, 'v', 0xcf, 0x00 };

	raw_expect(reserved, sizeof reserved, "frame.x: invalid type byte 0xc1");
	raw_expect(int_key, sizeof int_key, "frame: map key must be a string, got integer");
	raw_expect(trailing, sizeof trailing, "frame: 2 bytes after the end of the map");
	raw_expect(cut, sizeof cut, "frame: string declares 1 bytes but only 0 remain");
	raw_expect(cut_int, sizeof cut_int, "frame.v: truncated: the frame ends inside a value");
	raw_expect("", 0, "frame: empty, expected a map");
}
