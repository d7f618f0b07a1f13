#include "common/progress.h"
#include "tests/unit/test.h"

TEST(progress_duration_text_reads_like_a_countdown)
{
	char buf[32];

	progress_duration_text(-1, buf, sizeof buf);
	CHECK_EQ_STR(buf, "?");
	progress_duration_text(0.4, buf, sizeof buf);
	CHECK_EQ_STR(buf, "0s");
	progress_duration_text(59.6, buf, sizeof buf);
	CHECK_EQ_STR(buf, "1m00s");
	progress_duration_text(552, buf, sizeof buf);
	CHECK_EQ_STR(buf, "9m12s");
	progress_duration_text(7500, buf, sizeof buf);
	CHECK_EQ_STR(buf, "2h05m");
	progress_duration_text(3 * 86400 + 4 * 3600 + 59, buf, sizeof buf);
	CHECK_EQ_STR(buf, "3d04h");
	/* Durations of 9e18 ms in the database made an ETA of 2.7e19 s: past what llround
	 * returns, it read "-9223372036854775808s". */
	progress_duration_text(2.7e19, buf, sizeof buf);
	CHECK_EQ_STR(buf, "3.12e+14d");
	progress_duration_text(1e300, buf, sizeof buf);
	CHECK_EQ_STR(buf, "1.16e+295d");
}

TEST(progress_line_and_json_round_trip)
{
	struct progress p = { .done = 12,
		.remaining = 28,
		.total = 40,
		.failed = 2,
		.percent = 30.0,
		.per_minute = 3.25,
		.eta_seconds = 552,
		.basis = PROGRESS_BASIS_MEDIAN },
	                q;
	char line[128];
	json_t *j = progress_to_json(&p);

	progress_line(&p, line, sizeof line);
	CHECK_EQ_STR(line, "12/40 phases (30.0%), 3.2/min, ETA 9m12s, 2 failed");
	CHECK_EQ_STR(
	    json_string_value(json_object_get(j, "eta_basis")), "median_duration_per_category");
	progress_from_json(j, &q);
	CHECK(q.done == 12 && q.remaining == 28 && q.total == 40 && q.failed == 2);
	CHECK(q.eta_seconds == 552 && q.basis == PROGRESS_BASIS_MEDIAN);
	json_decref(j);
	p.eta_seconds = -1;
	p.basis = PROGRESS_BASIS_NONE;
	j = progress_to_json(&p);
	CHECK(json_is_null(json_object_get(j, "eta_seconds")));
	progress_from_json(j, &q);
	CHECK(q.eta_seconds < 0 && q.basis == PROGRESS_BASIS_NONE);
	progress_line(&q, line, sizeof line);
	CHECK_EQ_STR(line, "12/40 phases (30.0%), 3.2/min, ETA ?, 2 failed");
	json_decref(j);
	q.basis = PROGRESS_BASIS_FINISHED;
	progress_line(&q, line, sizeof line);
	CHECK(strstr(line, "ETA done") != NULL);
	progress_from_json(NULL, &q);
	CHECK(q.done == 0 && q.eta_seconds < 0);
}
