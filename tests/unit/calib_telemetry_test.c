/* The report metrics (docs/telemetry.md) and the sample TSV parser. */
#include "common/calib/telemetry.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A sample with literal strings. */
static struct telem_sample mk(
    const char *cat, int64_t p, int64_t a, bool success, bool truncated, int64_t deliverables)
{
	return (struct telem_sample){ .category = (char *)cat,
		.complexity = (char *)"low",
		.deliverable_count = deliverables,
		.predicted = p,
		.actual = a,
		.actual_max_tokens = -1,
		.success = success,
		.truncated = truncated };
}

TEST(calib_report_metrics_match_hand_computation)
{
	struct telem_sample s[] = {
		mk("a", 100, 200, true, false, 1),
		mk("a", 200, 100, true, false, 1),
		mk("b", 100, 100, true, false, 3),
		mk("b", 50, 400, false, true, 8),
	};
	const struct telem_sample *p[] = { &s[0], &s[1], &s[2], &s[3] };
	struct telem_metrics m;

	telem_metrics_compute(p, 4, 1.0, &m);
	CHECK_EQ_INT(m.underestimated, 2);
	CHECK_NEAR(m.under_pct, 50.0, 1e-12);
	CHECK_NEAR(m.trunc_pct, 25.0, 1e-12);
	CHECK_NEAR(m.success_pct, 75.0, 1e-12);
	/* Waste p/a over every scored row: 0.5, 2, 1, 0.125. */
	CHECK_EQ_INT(m.n_waste, 4);
	CHECK_NEAR(m.waste_median, 0.75, 1e-12);
	CHECK_NEAR(m.waste_mean, 3.625 / 4, 1e-12);
	CHECK_NEAR(m.waste_p90, 2.0, 1e-12); /* fewer than ten: the maximum */
	/* SMAPE over the non-truncated rows only: 66.7, 66.7, 0. */
	CHECK_EQ_INT(m.n_smape, 3);
	CHECK_NEAR(m.smape_mean, 400.0 / 9, 1e-9);
	CHECK_NEAR(m.smape_median, 200.0 / 3, 1e-9);
	CHECK_NEAR(m.smape_min, 0.0, 1e-12);
	/* The truncated row, a lower bound. */
	CHECK_NEAR(m.trunc_predicted_mean, 50.0, 1e-12);
	CHECK_NEAR(m.trunc_actual_mean, 400.0, 1e-12);
	CHECK_NEAR(m.trunc_under_pct, 100.0, 1e-12);
	CHECK(m.tuning_needed && m.under_above_target && m.trunc_above_target);
	CHECK(!m.waste_above_target);
}

TEST(calib_report_under_multiplier_adds_tolerance)
{
	struct telem_sample s[] = { mk("a", 100, 200, true, false, 1),
		mk("a", 50, 400, true, false, 1) };
	const struct telem_sample *p[] = { &s[0], &s[1] };
	struct telem_metrics m;

	telem_metrics_compute(p, 2, 2.5, &m);
	CHECK_EQ_INT(m.underestimated, 1); /* 200 > 250 no; 400 > 125 yes */
}

TEST(calib_report_thresholds_are_strict_at_5_and_2_percent)
{
	struct telem_sample s[100];
	const struct telem_sample *p[100];
	struct telem_metrics m;

	for (int i = 0; i < 100; i++) {
		s[i] = mk("a", 1000, i < 5 ? 2000 : 500, true, i < 2, 1);
		p[i] = &s[i];
	}
	telem_metrics_compute(p, 100, 1.0, &m);
	CHECK_NEAR(m.under_pct, 5.0, 1e-12);
	CHECK_NEAR(m.trunc_pct, 2.0, 1e-12);
	CHECK(!m.tuning_needed);
	/* Waste 2.0 for 95 rows: p90 2.0 < 3, within target. */
	CHECK(!m.waste_above_target);
}

TEST(calib_report_success_only_and_strata)
{
	struct telem_samples all = { 0 };
	struct telem_report_opts o = { .success_only = true, .stratify = true };
	struct telem_report r;
	int64_t counts[] = { 0, 1, 2, 5, 6, 9 };
	size_t n_bucket = 0, n_version = 0;

	for (int i = 0; i < 6; i++) {
		struct telem_sample *s = telem_samples_add(&all);

		s->category = xstrdup(i < 3 ? "tests" : "implementation");
		s->complexity = xstrdup("medium");
		s->deliverable_count = counts[i];
		s->predicted = 1000;
		s->actual = 900;
		s->success = i != 5;
		s->estimator_version = i < 2 ? 0 : 2;
	}
	telem_report_build(&all, &o, &r);
	CHECK_EQ_INT(r.n_read, 6);
	CHECK_EQ_INT(r.all.n, 5);
	for (size_t i = 0; i < r.n_strata; i++) {
		const struct telem_stratum *st = &r.strata[i];

		if (st->dim == TELEM_DIM_DELIVERABLES) {
			/* In order: 0-1 (2 samples), 2-5 (2), 6+ (1; the 9 failed). */
			const char *keys[] = { "0-1", "2-5", "6+" };
			size_t ns[] = { 2, 2, 1 };

			CHECK_EQ_STR(st->key, keys[n_bucket]);
			CHECK_EQ_INT(st->m.n, ns[n_bucket]);
			n_bucket++;
		}
		if (st->dim == TELEM_DIM_VERSION) {
			CHECK_EQ_STR(st->key, n_version == 0 ? "unknown" : "2");
			n_version++;
		}
	}
	CHECK_EQ_INT(n_bucket, 3);
	CHECK_EQ_INT(n_version, 2);
	CHECK_EQ_STR(r.strata[0].key, "implementation"); /* categories by name */
	telem_report_free(&r);
	telem_samples_free(&all);
}

TEST(calib_report_strata_of_one_category_a_sample_take_no_n_squared)
{
	/* 60,000 samples, each of a category of its own, given in reverse order (as a file
	 * of one category a line imports them): the strata come out in key order, one sample
	 * each, in well under the minutes that looking up each key among those seen took;
	 * three categories interleaved keep their samples' order (the figures equal those of
	 * each category's samples taken in order). */
	enum {
		N = 60000
	};
	struct telem_samples all = { 0 };
	struct telem_report_opts o = { .stratify = true };
	struct telem_report r;
	size_t ncat = 0;
	uint64_t t0;
	char name[16];

	for (int i = 0; i < N; i++) {
		struct telem_sample *s = telem_samples_add(&all);

		snprintf(name, sizeof name, "c%05d", N - 1 - i);
		s->category = xstrdup(name);
		s->complexity = xstrdup("low");
		s->deliverable_count = 1 + i % 7;
		s->predicted = 100 + i % 1000;
		s->actual = 90 + (i * 7919) % 3000;
		s->actual_max_tokens = -1;
		s->success = true;
	}
	t0 = clock_mono_ms();
	telem_report_build(&all, &o, &r);
	CHECK(clock_mono_ms() - t0 < 10000);
	for (size_t i = 0; i < r.n_strata; i++) {
		if (r.strata[i].dim != TELEM_DIM_CATEGORY)
			continue;
		snprintf(name, sizeof name, "c%05zu", ncat++);
		CHECK_EQ_STR(r.strata[i].key, name);
		CHECK_EQ_INT(r.strata[i].m.n, 1);
	}
	CHECK_EQ_INT(ncat, N);
	telem_report_free(&r);
	telem_samples_free(&all);

	memset(&all, 0, sizeof all);
	for (int i = 0; i < 300; i++) {
		struct telem_sample *s = telem_samples_add(&all);

		s->category = xstrdup(i % 3 == 0 ? "z" : i % 3 == 1 ? "a" : "m");
		s->complexity = xstrdup("low");
		s->deliverable_count = 1;
		s->predicted = 100 + (i * 37) % 900;
		s->actual = 60 + (i * 7919) % 3000;
		s->actual_max_tokens = -1;
		s->success = true;
	}
	telem_report_build(&all, &o, &r);
	for (size_t i = 0; i < r.n_strata; i++) {
		const struct telem_sample *sub[100];
		struct telem_metrics m;
		size_t n = 0;

		if (r.strata[i].dim != TELEM_DIM_CATEGORY)
			continue;
		for (size_t j = 0; j < all.n; j++)
			if (strcmp(all.v[j].category, r.strata[i].key) == 0)
				sub[n++] = &all.v[j];
		telem_metrics_compute(sub, n, 1.0, &m);
		CHECK_EQ_INT(r.strata[i].m.n, 100);
		CHECK(m.waste_mean == r.strata[i].m.waste_mean);
		CHECK(m.smape_mean == r.strata[i].m.smape_mean);
		CHECK(m.actual_mean == r.strata[i].m.actual_mean);
		CHECK(m.predicted_mean == r.strata[i].m.predicted_mean);
		CHECK(m.waste_p90 == r.strata[i].m.waste_p90);
	}
	CHECK_EQ_STR(r.strata[0].key, "a");
	telem_report_free(&r);
	telem_samples_free(&all);
}

static const char tsv_good[] =
    "model\ttimestamp\tcategory\tcomplexity\tdeliverables\tpredicted_output\t"
    "actual_output\tselected_budget\tsuccess\ttruncated\tstop_reason\tactual_max_tokens\r\n"
    "m1\t2025-12-23T22:06:12Z\tdocs\tlow\t2\t462\t742\t8192\ttrue\tfalse\tend_turn\t16384\r\n"
    "\n"
    "m2\t2025-12-24 15:38:03.5+00:00\tIMPLEMENT_FEATURE\tmedium\t0\t7020\t12288\t12288\t"
    "False\t1\t\t\n";

TEST(calib_tsv_parses_columns_in_any_order)
{
	struct telem_samples s;
	char err[256];

	CHECK(telem_tsv_parse(tsv_good, strlen(tsv_good), "t.tsv", &s, err, sizeof err) == 0);
	CHECK_EQ_INT(s.n, 2);
	CHECK_EQ_STR(s.v[0].model, "m1");
	CHECK_EQ_STR(s.v[0].category, "docs");
	CHECK_EQ_INT(s.v[0].predicted, 462);
	CHECK_EQ_INT(s.v[0].actual, 742);
	CHECK_EQ_INT(s.v[0].actual_max_tokens, 16384);
	CHECK(s.v[0].success && !s.v[0].truncated);
	CHECK_EQ_STR(s.v[0].stop_reason, "end_turn");
	CHECK_EQ_INT(s.v[1].actual_max_tokens, -1);
	CHECK(!s.v[1].success && s.v[1].truncated);
	CHECK(s.v[1].stop_reason == NULL);
	CHECK_EQ_STR(s.v[1].timestamp, "2025-12-24 15:38:03.5+00:00");
	telem_samples_free(&s);
}

/* Parse len bytes of `text` and expect failure with `needle` in the message and
 * nothing kept. */
static void expect_bad_n(const char *text, size_t len, const char *needle)
{
	struct telem_samples s;
	char err[256];

	CHECK(telem_tsv_parse(text, len, "bad.tsv", &s, err, sizeof err) == -1);
	if (strstr(err, needle) == NULL) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err, needle);
		exit(1);
	}
	CHECK(s.n == 0 && s.v == NULL);
}

/* expect_bad_n over the whole string. */
static void expect_bad(const char *text, const char *needle)
{
	expect_bad_n(text, strlen(text), needle);
}

#define HEADER                                                                                     \
	"timestamp\tcategory\tcomplexity\tdeliverables\tpredicted_output\t"                        \
	"actual_output\tselected_budget\tsuccess\ttruncated\tstop_reason\tmodel\n"
#define ROW "2025-12-23T22:06:12Z\tdocs\tlow\t2\t462\t742\t8192\ttrue\tfalse\tend_turn\tm\n"

TEST(calib_tsv_refuses_bad_lines_with_line_and_column)
{
	static const char nul[] = HEADER ROW "x\0y\n";

	expect_bad(HEADER ROW "2025-12-23T22:06:12Z\tdocs\tlow\t2\tabc\t742\t8192\ttrue\t"
	                      "false\tend_turn\tm\n",
	    "bad.tsv:3: column predicted_output: expected a non-negative integer, got 'abc'");
	expect_bad(HEADER ROW "2025-12-23T22:06:12Z\tdocs\tlow\t2\t4\t742\t8192\tyes\tfalse\t"
	                      "end_turn\tm\n",
	    "bad.tsv:3: column success: expected true or false, got 'yes'");
	expect_bad(HEADER "yesterday\tdocs\tlow\t2\t4\t742\t8192\ttrue\tfalse\tend_turn\tm\n",
	    "bad.tsv:2: column timestamp: expected a UTC time");
	expect_bad(HEADER "2025-12-23T22:06:12Z\tdocs\tlow\t2\t462\t742\t8192\ttrue\tfalse\n",
	    "bad.tsv:2: column stop_reason: missing");
	expect_bad(HEADER "2025-12-23T22:06:12Z\t\tlow\t2\t4\t742\t8192\ttrue\tfalse\tx\tm\n",
	    "bad.tsv:2: column category: empty");
	expect_bad(HEADER "2025-12-23T22:06:12Z\tdocs\tlow\t-2\t4\t742\t8192\ttrue\tfalse\tx\t"
	                  "m\n",
	    "bad.tsv:2: column deliverables: expected a non-negative integer, got '-2'");
	expect_bad(HEADER "2025-12-23T22:06:12Z\tdocs\tlow\t2\t4\t742\t8192\ttrue\tfalse\tx\tm\t"
	                  "extra\n",
	    "bad.tsv:2: 12 tab-separated fields, the header has 11");
	expect_bad_n(nul, sizeof nul - 1, "bad.tsv:3: contains a NUL byte");
}

TEST(calib_tsv_refuses_bad_headers_and_empty_files)
{
	expect_bad("timestamp\tcategory\n",
	    "bad.tsv:1: the header has no column "
	    "'complexity'");
	expect_bad("", "bad.tsv: empty file");
	expect_bad(HEADER, "bad.tsv: no samples after the header");
	expect_bad("timestamp\tcolour\n", "bad.tsv:1: unknown column 'colour'");
	expect_bad("model\tmodel\n", "column 'model' appears twice");
}

TEST(calib_tsv_reads_the_real_samples)
{
	const char *src = getenv("AUTOPACK_SRCDIR");
	struct telem_samples s;
	char err[256], *path;
	size_t clean = 0, trunc = 0;

	CHECK(src != NULL);
	path = xasprintf("%s/tests/data/autopack-v2-telemetry-samples.tsv", src);
	CHECK(telem_tsv_read_file(path, &s, err, sizeof err) == 0);
	CHECK_EQ_INT(s.n, 64);
	for (size_t i = 0; i < s.n; i++) {
		clean += telem_clean(&s.v[i]);
		trunc += s.v[i].truncated;
	}
	CHECK_EQ_INT(clean, 55); /* as the data's README says */
	CHECK_EQ_INT(trunc, 7);
	telem_samples_free(&s);
	free(path);
	CHECK(telem_tsv_read_file("/nonexistent.tsv", &s, err, sizeof err) == -1);
	CHECK(strstr(err, "/nonexistent.tsv: cannot read") != NULL);
}

TEST(calib_import_run_id_comes_from_the_file_name)
{
	char *id = telem_import_run_id("/data/autopack-v2-telemetry-samples.tsv");

	CHECK_EQ_STR(id, "imported-autopack-v2-telemetry-samples");
	free(id);
	id = telem_import_run_id("my samples (dec).tsv");
	CHECK_EQ_STR(id, "imported-my-samples--dec-");
	CHECK(telem_id_valid(id));
	free(id);
	CHECK(!telem_id_valid("-x"));
	CHECK(!telem_id_valid(""));
	CHECK(!telem_id_valid("a/b"));
	CHECK(telem_id_valid("run-1.2_x"));
}
