/* Every message type and event kind survives pack → frame → decode unchanged, and the
 * packer refuses what the decoder would refuse. */
#include <errno.h>
#include <msgpack.h>

#include "common/util.h"
#include "proto/schema.h"
#include "common/utf8.h"
#include "proto/wire.h"
#include "tests/unit/proto_samples.h"
#include "tests/unit/test.h"

/* Pack sample i of variant v, decode the frame's map, and check the two are equal. */
static void roundtrip(size_t i, enum proto_sample_variant v)
{
	struct proto_msg m, back;
	struct proto_buf b;
	struct proto_err err;
	const char *name = proto_sample_build(i, v, &m);
	size_t len;

	proto_buf_init(&b);
	if (proto_msg_pack(&m, &b, &err) != 0) {
		fprintf(stderr, "%s/%d: pack: %s\n", name, (int)v, err.text);
		exit(1);
	}
	CHECK(b.len >= 5);
	len = (size_t)b.data[0] << 24 | (size_t)b.data[1] << 16 | (size_t)b.data[2] << 8 |
	    b.data[3];
	CHECK_EQ_INT(len, b.len - 4);
	if (proto_decode(b.data + 4, len, &back, &err) != 0) {
		fprintf(stderr, "%s/%d: decode: %s\n", name, (int)v, err.text);
		exit(1);
	}
	if (!proto_msg_equal(&m, &back)) {
		fprintf(stderr, "%s/%d: decoded message differs\n", name, (int)v);
		exit(1);
	}
	proto_msg_free(&back);
	proto_msg_free(&m);
	proto_buf_free(&b);
}

TEST(proto_roundtrip_every_type_min_values)
{
	for (size_t i = 0; i < proto_sample_count(); i++)
		roundtrip(i, SAMPLE_MIN);
}

TEST(proto_roundtrip_every_type_typical_values)
{
	for (size_t i = 0; i < proto_sample_count(); i++)
		roundtrip(i, SAMPLE_TYPICAL);
}

TEST(proto_roundtrip_every_type_max_values)
{
	for (size_t i = 0; i < proto_sample_count(); i++)
		roundtrip(i, SAMPLE_MAX);
}

TEST(proto_roundtrip_keeps_utf8_and_long_lists)
{
	struct proto_msg m, back;
	struct proto_buf b;
	struct proto_err err;

	proto_sample_build(1, SAMPLE_MAX, &m);
	proto_buf_init(&b);
	CHECK_EQ_INT(proto_pack(&m, &b), 0);
	CHECK_EQ_INT(proto_decode(b.data + 4, b.len - 4, &back, &err), 0);
	CHECK_EQ_INT(back.type, PROTO_JOB);
	CHECK_EQ_INT(back.u.job.phase.deliverables.n, PROTO_LIST_MAX);
	CHECK_EQ_STR(
	    back.u.job.phase.deliverables.items[PROTO_LIST_MAX - 1], "src/dir0/module_4095.py");
	CHECK_EQ_STR(back.u.job.run_id, "Ünïcödé ✓ 𝄞 日本語");
	CHECK(back.u.job.attempt_id == UINT64_MAX);
	CHECK(back.u.job.deadline_ms == INT64_MAX);
	CHECK(back.u.job.coefs[0].overhead == INT64_MIN);
	CHECK(back.u.job.dry_run);
	CHECK(back.u.job.ann == 1);
	proto_msg_free(&back);
	proto_msg_free(&m);
	proto_buf_free(&b);
}

TEST(proto_nullable_fields_absent_decode_to_null_and_minus_one)
{
	struct proto_msg m, back;
	struct proto_buf b;
	struct proto_err err;

	proto_sample_build(3, SAMPLE_MIN, &m); /* event llm_usage */
	proto_buf_init(&b);
	CHECK_EQ_INT(proto_pack(&m, &b), 0);
	CHECK_EQ_INT(proto_decode(b.data + 4, b.len - 4, &back, &err), 0);
	CHECK(back.u.event.body.usage.error_class == NULL);
	CHECK_EQ_INT(back.u.event.body.usage.prompt_tokens, -1);
	CHECK_EQ_INT(back.u.event.body.usage.completion_tokens, -1);
	proto_msg_free(&back);
	proto_msg_free(&m);
	proto_buf_free(&b);
}

TEST(proto_pack_omits_null_fields)
{
	struct proto_msg m = { .type = PROTO_SHUTDOWN };
	struct proto_buf b;
	msgpack_unpacked up;

	proto_buf_init(&b);
	CHECK_EQ_INT(proto_pack(&m, &b), 0);
	msgpack_unpacked_init(&up);
	CHECK(msgpack_unpack_next(&up, (const char *)b.data + 4, b.len - 4, NULL) ==
	    MSGPACK_UNPACK_SUCCESS);
	CHECK(up.data.type == MSGPACK_OBJECT_MAP);
	CHECK_EQ_INT(up.data.via.map.size, 2); /* v and t only */
	msgpack_unpacked_destroy(&up);
	proto_buf_free(&b);
}

TEST(proto_pack_appends_frames_back_to_back)
{
	struct proto_msg a = { .type = PROTO_CANCEL }, c = { .type = PROTO_ACK }, back;
	struct proto_buf b;
	struct proto_err err;
	size_t first;

	a.u.cancel.attempt_id = 5;
	c.u.ack.attempt_id = 5;
	c.u.ack.seq = 9;
	proto_buf_init(&b);
	CHECK_EQ_INT(proto_pack(&a, &b), 0);
	first = b.len;
	CHECK_EQ_INT(proto_pack(&c, &b), 0);
	CHECK_EQ_INT(proto_decode(b.data + first + 4, b.len - first - 4, &back, &err), 0);
	CHECK(proto_msg_equal(&c, &back));
	proto_msg_free(&back);
	proto_buf_free(&b);
}

TEST(proto_pack_refuses_oversize_map_and_leaves_buffer_unchanged)
{
	struct proto_msg m = { .type = PROTO_RESULT };
	struct proto_result *r = &m.u.result;
	struct proto_buf b;
	struct proto_err err;
	char *big = xmalloc(PROTO_STR_MAX + 1);

	memset(big, 'x', PROTO_STR_MAX);
	big[PROTO_STR_MAX] = '\0';
	r->db_uuid = "u";
	r->outcome = "failed";
	r->failure_reason = r->message = r->fingerprint = r->zero_yield_reason = big;
	proto_buf_init(&b);
	proto_buf_append(&b, "abc", 3);
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EMSGSIZE);
	CHECK(strstr(err.text, "frame: encoded map of ") == err.text);
	CHECK(strstr(err.text, "exceeds limit 4194304") != NULL);
	CHECK_EQ_INT(b.len, 3);
	CHECK(memcmp(b.data, "abc", 3) == 0);
	free(big);
	proto_buf_free(&b);
}

TEST(proto_pack_refuses_string_over_its_limit)
{
	struct proto_msg m = { .type = PROTO_HELLO };
	struct proto_buf b;
	struct proto_err err;
	char name[PROTO_NAME_MAX + 2];

	memset(name, 'v', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	m.u.hello.pid = 1;
	m.u.hello.sw_version = name;
	proto_buf_init(&b);
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EMSGSIZE);
	CHECK_EQ_STR(err.text, "hello.sw: string of 257 bytes exceeds limit 256");
	CHECK_EQ_INT(b.len, 0);
	proto_buf_free(&b);
}

TEST(proto_pack_refuses_null_required_string)
{
	struct proto_msg m = { .type = PROTO_HELLO };
	struct proto_buf b;
	struct proto_err err;

	m.u.hello.pid = 1;
	proto_buf_init(&b);
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EINVAL);
	CHECK_EQ_STR(err.text, "hello.sw: required string is NULL");
	CHECK_EQ_INT(b.len, 0);
	proto_buf_free(&b);
}

TEST(proto_pack_refuses_invalid_utf8_and_out_of_range_integers)
{
	struct proto_msg m = { .type = PROTO_HELLO };
	struct proto_buf b;
	struct proto_err err;

	proto_buf_init(&b);
	m.u.hello.pid = 1;
	m.u.hello.sw_version = "ok\xff";
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EINVAL);
	CHECK_EQ_STR(err.text, "hello.sw: invalid UTF-8 at byte 2");
	m.u.hello.sw_version = "0.1.0";
	m.u.hello.pid = 0;
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EINVAL);
	CHECK_EQ_STR(err.text, "hello.pid: integer 0 out of range [1, 2147483647]");
	CHECK_EQ_INT(b.len, 0);
	proto_buf_free(&b);
}

TEST(proto_pack_refuses_unknown_type_and_event_kind)
{
	struct proto_msg m = { .type = 0 };
	struct proto_buf b;
	struct proto_err err;

	proto_buf_init(&b);
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EINVAL);
	CHECK_EQ_STR(err.text, "message: unknown message type 0");
	m.type = PROTO_EVENT;
	m.u.event.db_uuid = "u";
	m.u.event.seq = 1;
	m.u.event.kind = 0;
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EINVAL);
	CHECK_EQ_STR(err.text, "event.kind: unknown event kind 0");
	CHECK_EQ_INT(b.len, 0);
	proto_buf_free(&b);
}

TEST(proto_pack_refuses_list_longer_than_limit)
{
	struct proto_msg m = { .type = PROTO_REQUEST };
	struct proto_buf b;
	struct proto_err err;
	char *items[PROTO_LIST_MAX + 1];

	for (size_t j = 0; j < ARRAY_SIZE(items); j++)
		items[j] = "a";
	m.u.request.command = "status";
	m.u.request.args.items = items;
	m.u.request.args.n = ARRAY_SIZE(items);
	proto_buf_init(&b);
	CHECK_EQ_INT(proto_msg_pack(&m, &b, &err), -EMSGSIZE);
	CHECK_EQ_STR(err.text, "request.args: array of 4097 elements exceeds limit 4096");
	proto_buf_free(&b);
}

TEST(proto_names_match_the_wire)
{
	CHECK_EQ_STR(proto_type_name(PROTO_HELLO), "hello");
	CHECK_EQ_STR(proto_type_name(PROTO_REPLY), "reply");
	CHECK_EQ_STR(proto_type_name((enum proto_type)99), "unknown");
	CHECK_EQ_STR(proto_event_kind_name(PROTO_EV_TOKEN_ESTIMATION), "token_estimation_v2");
	CHECK_EQ_STR(proto_event_kind_name(PROTO_EV_LLM_USAGE), "llm_usage");
	CHECK_EQ_STR(proto_event_kind_name(PROTO_EV_LOG), "log");
	CHECK_EQ_STR(proto_event_kind_name((enum proto_event_kind)0), "unknown");
}

TEST(proto_msg_equal_sees_one_changed_field)
{
	struct proto_msg a, b;

	proto_sample_build(1, SAMPLE_TYPICAL, &a);
	proto_sample_build(1, SAMPLE_TYPICAL, &b);
	CHECK(proto_msg_equal(&a, &b));
	b.u.job.phase.deliverables.items[2][0] = 'X';
	CHECK(!proto_msg_equal(&a, &b));
	proto_msg_free(&a);
	proto_msg_free(&b);
}

TEST(utf8_check_refuses_overlong_surrogate_and_truncated_forms)
{
	CHECK_EQ_INT(utf8_check("abc", 3), 3);
	CHECK_EQ_INT(utf8_check("\xf0\x9d\x84\x9e", 4), 4); /* U+1D11E */
	CHECK_EQ_INT(utf8_check("a\xc0\xaf", 3), 1);        /* overlong '/' */
	CHECK_EQ_INT(utf8_check("ab\xed\xa0\x80", 5), 2);   /* surrogate */
	CHECK_EQ_INT(utf8_check("\xf4\x90\x80\x80", 4), 0); /* past U+10FFFF */
	CHECK_EQ_INT(utf8_check("x\xe6\x97", 3), 1);        /* cut off */
	CHECK_EQ_INT(utf8_bad(""), -1);
	CHECK_EQ_INT(utf8_bad("caf\xc3\xa9"), -1);
	CHECK_EQ_INT(utf8_bad("ab\xff"
	                      "c"),
	    2);
}

TEST(utf8_clean_replaces_bad_bytes_and_cuts_at_a_character)
{
	char *s = utf8_clean("a\xff"
	                     "b",
	    100);

	CHECK_EQ_STR(s,
	    "a\xef\xbf\xbd"
	    "b");
	free(s);
	s = utf8_clean("ab日本", 6); /* 日 fits in 5 bytes, 本 would need 8 */
	CHECK_EQ_STR(s, "ab日");
	free(s);
	s = utf8_clean("", 0);
	CHECK_EQ_STR(s, "");
	free(s);
	s = utf8_clean("\xff\xfe", SIZE_MAX); /* the limit is not an allocation size */
	CHECK_EQ_STR(s, "\xef\xbf\xbd\xef\xbf\xbd");
	free(s);
}

/* Whether the nullable string s lies wholly inside [lo, lo + n). */
static bool str_inside(const char *s, const char *lo, size_t n)
{
	return s == NULL || (s >= lo && s + strlen(s) < lo + n);
}

TEST(proto_strings_move_keeps_the_event_and_takes_its_strings)
{
	for (int v = SAMPLE_MIN; v <= SAMPLE_MAX; v++) {
		for (size_t i = 0; i < proto_sample_count(); i++) {
			struct proto_msg m, moved;
			struct proto_buf b;
			struct proto_err err;
			struct proto_strings strs;
			const struct proto_usage *u;
			size_t n;
			char *buf;

			proto_sample_build(i, (enum proto_sample_variant)v, &m);
			if (m.type != PROTO_EVENT) {
				proto_msg_free(&m);
				continue;
			}
			/* A decoded event, as the supervisor holds it. */
			proto_buf_init(&b);
			CHECK(proto_msg_pack(&m, &b, &err) == 0);
			CHECK(proto_decode(b.data + 4, b.len - 4, &moved, &err) == 0);
			proto_event_strings(&moved.u.event, &strs);
			n = strs.bytes;
			CHECK(n >= strlen(moved.u.event.db_uuid) + 1);
			buf = xmalloc(n);
			proto_strings_move(&strs, buf);
			CHECK(proto_msg_equal(&m, &moved));
			CHECK(str_inside(moved.u.event.db_uuid, buf, n));
			u = &moved.u.event.body.usage;
			if (moved.u.event.kind == PROTO_EV_LLM_USAGE)
				CHECK(str_inside(u->provider, buf, n) &&
				    str_inside(u->model, buf, n) && str_inside(u->role, buf, n) &&
				    str_inside(u->error_class, buf, n));
			/* The event owns nothing now: freeing the buffer frees all of it. */
			free(buf);
			proto_msg_free(&m);
			proto_buf_free(&b);
		}
	}
}

/* Check that the keys of table s, and of the tables nested in it, are distinct and that
 * each one's length is noted right (the decoder compares keys by it). */
static void keys_distinct(const struct proto_schema *s)
{
	for (size_t i = 0; i < s->nfields; i++) {
		CHECK_EQ_INT(s->fields[i].klen, strlen(s->fields[i].key));
		for (size_t j = i + 1; j < s->nfields; j++)
			CHECK(strcmp(s->fields[i].key, s->fields[j].key) != 0);
		if (s->fields[i].kind == PF_MAP)
			keys_distinct(s->fields[i].sub);
	}
}

/* The decoder finds a key trying the table's next field first: that finds the same field
 * as a search from the start only while a table's keys are distinct. */
TEST(proto_schema_keys_are_distinct_in_each_table)
{
	for (int t = PROTO_HELLO; t <= PROTO_REPLY; t++)
		keys_distinct(proto_schema_of_type((enum proto_type)t));
	for (int k = 0; k < EVENT_KIND_COUNT; k++)
		if (proto_schema_of_kind((enum proto_event_kind)k) != NULL)
			keys_distinct(proto_schema_of_kind((enum proto_event_kind)k));
	for (size_t i = 0; i < 3; i++)
		CHECK_EQ_INT(proto_coef_fields[i].klen, strlen(proto_coef_fields[i].key));
}

/* A map whose keys come in an order other than the table's decodes to the same message. */
TEST(proto_decode_takes_keys_in_any_order)
{
	struct proto_msg m, back;
	struct proto_err err;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str_with_body(&pk, "seq", 3);
	msgpack_pack_uint64(&pk, 7);
	msgpack_pack_str_with_body(&pk, "att", 3);
	msgpack_pack_uint64(&pk, 5);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_str_with_body(&pk, "ack", 3);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_uint64(&pk, PROTO_VERSION);
	CHECK(proto_decode(sb.data, sb.size, &back, &err) == 0);
	m = (struct proto_msg){ .type = PROTO_ACK, .u.ack = { 5, 7 } };
	CHECK(proto_msg_equal(&m, &back));
	proto_msg_free(&back);
	msgpack_sbuffer_destroy(&sb);
}

TEST(proto_job_shared_entries_pack_to_the_same_frame)
{
	const struct proto_schema *s = proto_schema_of_type(PROTO_JOB);
	const char *keys[] = { "cap", "llm", "est" };

	/* The shared entries are the job's "cap", "llm" and "est", none of them optional. */
	CHECK_EQ_INT(PROTO_JOB_SHARED_TO - PROTO_JOB_SHARED_FROM, 3);
	for (size_t i = PROTO_JOB_SHARED_FROM; i < PROTO_JOB_SHARED_TO; i++) {
		CHECK_EQ_STR(s->fields[i].key, keys[i - PROTO_JOB_SHARED_FROM]);
		CHECK(s->fields[i].kind != PF_STR_OPT && s->fields[i].kind != PF_I64_OPT);
	}
	for (int v = SAMPLE_MIN; v <= SAMPLE_MAX; v++) {
		struct proto_buf plain, shared, with;
		struct proto_err err;
		struct proto_msg m;

		proto_sample_build(SAMPLE_JOB, (enum proto_sample_variant)v, &m);
		proto_buf_init(&plain);
		proto_buf_init(&shared);
		proto_buf_init(&with);
		CHECK_EQ_INT(proto_msg_pack(&m, &plain, &err), 0);
		CHECK_EQ_INT(proto_job_pack_shared(&m.u.job, &shared, &err), 0);
		CHECK(shared.len > 0);
		m.u.job.shared = &shared;
		CHECK_EQ_INT(proto_msg_pack(&m, &with, &err), 0);
		CHECK_EQ_INT(with.len, plain.len);
		CHECK(memcmp(with.data, plain.data, plain.len) == 0);
		/* The frame carries the shared bytes, not the job's own fields. */
		m.u.job.max_tokens_cap = 7;
		CHECK_EQ_INT(proto_msg_pack(&m, &with, &err), 0);
		CHECK(memcmp(with.data + plain.len, plain.data, plain.len) == 0);
		m.u.job.shared = NULL;
		proto_msg_free(&m);
		proto_buf_free(&plain);
		proto_buf_free(&shared);
		proto_buf_free(&with);
	}
}

TEST(proto_job_shared_entries_refuse_what_the_job_refuses)
{
	struct proto_buf shared;
	struct proto_err err;
	struct proto_msg m;

	proto_sample_build(SAMPLE_JOB, SAMPLE_TYPICAL, &m);
	proto_buf_init(&shared);
	free(m.u.job.llm.model);
	m.u.job.llm.model = xstrdup("bad\xff");
	CHECK_EQ_INT(proto_job_pack_shared(&m.u.job, &shared, &err), -EINVAL);
	CHECK_EQ_STR(err.text, "job.llm.model: invalid UTF-8 at byte 3");
	CHECK_EQ_INT(shared.len, 0);
	proto_msg_free(&m);
	proto_buf_free(&shared);
}

/* A string is framed as msgpack-c frames it (fixstr, str8, str16, str32 by its length),
 * whether the frame's buffer has room for it already or must grow. */
TEST(proto_pack_frames_strings_as_msgpack_c_does)
{
	static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536, 70000 };
	struct proto_buf roomy, tight;
	struct proto_err err;
	char *reason = xmalloc(70000 + 64);

	memset(reason, 'r', 70000 + 64);
	proto_buf_init(&roomy);
	proto_buf_append(&roomy, reason, 70000 + 64); /* room for every frame below */
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		struct proto_msg m = { .type = PROTO_SHUTDOWN };
		msgpack_sbuffer sb;
		msgpack_packer pk;

		reason[lens[i]] = '\0';
		m.u.shutdown.reason = reason;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 3);
		msgpack_pack_str_with_body(&pk, "v", 1);
		msgpack_pack_uint64(&pk, PROTO_VERSION);
		msgpack_pack_str_with_body(&pk, "t", 1);
		msgpack_pack_str_with_body(&pk, "shutdown", 8);
		msgpack_pack_str_with_body(&pk, "why", 3);
		msgpack_pack_str_with_body(&pk, reason, lens[i]);
		proto_buf_reset(&roomy);
		proto_buf_init(&tight);
		CHECK(proto_msg_pack(&m, &roomy, &err) == 0);
		CHECK(proto_msg_pack(&m, &tight, &err) == 0);
		CHECK_EQ_INT(roomy.len, sb.size + 4);
		CHECK_EQ_INT(tight.len, sb.size + 4);
		CHECK(memcmp(roomy.data + 4, sb.data, sb.size) == 0);
		CHECK(memcmp(tight.data + 4, sb.data, sb.size) == 0);
		proto_buf_free(&tight);
		msgpack_sbuffer_destroy(&sb);
		reason[lens[i]] = 'r';
	}
	proto_buf_free(&roomy);
	free(reason);
}
