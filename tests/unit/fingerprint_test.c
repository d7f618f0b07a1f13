/* The failure normaliser and fingerprints against worked examples (docs/drain-rules.md). */
#include "common/fingerprint/fingerprint.h"
#include "tests/unit/test.h"

/* Normalise `in` into a static buffer. */
static const char *norm(const char *in)
{
	static char out[512];

	fp_normalise(in, out, sizeof out);
	return out;
}

TEST(fingerprint_worked_example_windows_path_and_line)
{
	CHECK_EQ_STR(norm("ImportError at line 123: cannot import module from "
	                  "c:\\dev\\Autopack\\file.py:456"),
	    "importerror at line num: cannot import module from path:num");
}

TEST(fingerprint_worked_example_timeout)
{
	char fp[256];

	fp_fingerprint("TIMEOUT", "timeout", "Phase drain timed out after 30 minutes (see logs)",
	    fp, sizeof fp);
	CHECK_EQ_STR(fp, "TIMEOUT|timeout|phase drain timed out after num minutes (see logs)");
}

TEST(fingerprint_slash_inside_a_word_is_not_a_path)
{
	CHECK_EQ_STR(norm("CI collection/import errors"), "ci collection/import errors");
	CHECK_EQ_STR(
	    norm("No module named foo in /usr/lib/python3/x.py"), "no module named foo in path");
	CHECK_EQ_STR(norm("open('/tmp/a b.txt') failed"), "open('path b.txt') failed");
	CHECK_EQ_STR(norm("path=/var/log/x.log"), "path=path");
}

TEST(fingerprint_dates_times_addresses_ids_numbers)
{
	CHECK_EQ_STR(
	    norm("at 2025-12-29 10:11:12 object at 0x7fff12ab"), "at date time object at addr");
	CHECK_EQ_STR(
	    norm("session batch-drain-20251229-101112 failed"), "session batch-drain-id failed");
	CHECK_EQ_STR(
	    norm("exit 2 after 15 tries, abc123 kept"), "exit num after num tries, abc123 kept");
	CHECK_EQ_STR(norm("x.py:12:  \t  error\n\n"), "x.py:num: error");
}

TEST(fingerprint_parts_only_when_present)
{
	char fp[256];
	char b[16];

	CHECK_EQ_INT(fp_fingerprint(NULL, NULL, NULL, fp, sizeof fp), 0);
	fp_rc_bucket(1, b, sizeof b);
	fp_fingerprint("FAILED", b, NULL, fp, sizeof fp);
	CHECK_EQ_STR(fp, "FAILED|rc1");
	fp_rc_bucket(143, b, sizeof b);
	CHECK_EQ_STR(b, "timeout143");
	fp_rc_bucket(-1, b, sizeof b);
	CHECK_EQ_STR(b, "timeout");
	fp_rc_bucket(0, b, sizeof b);
	CHECK_EQ_STR(b, "rc0");
	fp_rc_bucket(7, b, sizeof b);
	CHECK_EQ_STR(b, "rc7");
	fp_fingerprint(NULL, NULL, "Boom", fp, sizeof fp);
	CHECK_EQ_STR(fp, "boom");
}

TEST(fingerprint_message_cut_at_200_bytes_on_a_character_boundary)
{
	char msg[400], fp[512];
	size_t i;

	for (i = 0; i < 199; i++)
		msg[i] = 'a';
	strcpy(msg + 199, "\xc3\xa9tail"); /* é straddles byte 200 */
	fp_fingerprint(NULL, NULL, msg, fp, sizeof fp);
	CHECK_EQ_INT(strlen(fp), 199);
}

TEST(fingerprint_llm_boundary_markers)
{
	CHECK(fp_llm_boundary("Error: context_length_exceeded for model"));
	CHECK(fp_llm_boundary("prompt is over the Maximum Context of 200k"));
	CHECK(!fp_llm_boundary("check failed: 2 tests"));
	CHECK(!fp_llm_boundary(NULL));
}

TEST(fingerprint_zero_yield_reasons)
{
	struct fp_yield y = { 0 };

	y.samples = 1;
	CHECK(fp_zero_yield_reason(&y) == ZERO_YIELD_NONE);
	y.samples = 0;
	y.dry_run = true;
	CHECK(fp_zero_yield_reason(&y) == ZERO_YIELD_NONE);
	y.dry_run = false;
	y.success = true;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "success_no_llm_calls");
	y.success = false;
	y.timed_out = true;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "timeout");
	y.timed_out = false;
	y.boundary = true;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "llm_boundary_hit");
	y.boundary = false;
	y.stage = FP_STAGE_BEFORE_LLM;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "failed_before_llm");
	y.stage = FP_STAGE_PROVIDER;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "provider_error");
	y.stage = FP_STAGE_PARSE;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "parse_failed");
	y.stage = FP_STAGE_CHECK;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "check_failed");
	y.stage = FP_STAGE_UNKNOWN;
	y.output = "sqlite: Database Error while reading";
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "failed_before_llm");
	y.output = "Traceback";
	y.has_rc = true;
	y.rc = 2;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "execution_error");
	y.rc = 143;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "timeout");
	y.rc = 0;
	CHECK_EQ_STR(zero_yield_name(fp_zero_yield_reason(&y)), "unknown");
}

TEST(fingerprint_of_an_attempt_has_one_format_whoever_computes_it)
{
	char fp[256];

	/* The worker's end. */
	fp_attempt(OUTCOME_FAILED, REASON_CHECK_FAILED, "check command exited 1 (stderr: /w/x)", fp,
	    sizeof fp);
	CHECK_EQ_STR(fp, "FAILED|check_failed|check command exited num (stderr: path)");
	/* An end the supervisor saw: the same three parts. */
	fp_attempt(OUTCOME_WORKER_CRASHED, outcome_reason(OUTCOME_WORKER_CRASHED),
	    "worker pid 4242 ended: status 0, signal 9", fp, sizeof fp);
	CHECK_EQ_STR(
	    fp, "WORKER_CRASHED|worker_crashed|worker pid num ended: status num, signal num");
	fp_attempt(OUTCOME_TIMEOUT, REASON_TIMEOUT, NULL, fp, sizeof fp);
	CHECK_EQ_STR(fp, "TIMEOUT|timeout");
	/* No fingerprint for what succeeded. */
	CHECK_EQ_INT(fp_attempt(OUTCOME_SUCCESS, REASON_NONE, "fine", fp, sizeof fp), 0);
	CHECK_EQ_STR(fp, "");
	CHECK_EQ_INT(fp_attempt(OUTCOME_DRY_RUN, REASON_NONE, NULL, fp, sizeof fp), 0);
}
