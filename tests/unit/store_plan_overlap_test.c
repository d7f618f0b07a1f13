#include "common/store/store_plan_overlap.h"
#include "tests/unit/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The clash's paths as "file|under". */
static const char *clash_paths(const struct plan_overlap_clash *c)
{
	static char buf[512];

	snprintf(
	    buf, sizeof buf, "%.*s|%.*s", (int)c->file_len, c->file, (int)c->under_len, c->under);
	return buf;
}

TEST(plan_overlap_finds_a_path_under_another_phases_file_either_way)
{
	struct plan_overlap ov = { 0 };
	struct plan_overlap_clash c;

	CHECK_EQ_INT(plan_overlap_add(&ov, "out/a.py", 0, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/b/c.py", 0, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/a.py", 1, &c), 0); /* the same file again */
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/a.pyc", 1, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/a.py.bak/x", 1, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/b/d/e.py", 2, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/a.py/x/y.py", 3, &c), 1);
	CHECK_EQ_INT(c.file_phase, 0);
	CHECK_EQ_INT(c.under_phase, 3);
	CHECK_EQ_STR(clash_paths(&c), "out/a.py|out/a.py/x/y.py");
	plan_overlap_reset(&ov);
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/b/d/e.py", 0, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "x.py", 1, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "out/b", 2, &c), 1);
	CHECK_EQ_INT(c.file_phase, 2);
	CHECK_EQ_INT(c.under_phase, 0);
	CHECK_EQ_STR(clash_paths(&c), "out/b|out/b/d/e.py");
	plan_overlap_free(&ov);
}

TEST(plan_overlap_probes_a_path_without_recording_it)
{
	struct plan_overlap ov = { 0 };
	struct plan_overlap_clash c;

	CHECK_EQ_INT(plan_overlap_probe(&ov, "a/b", &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "src/m.py", 0, &c), 0);
	CHECK_EQ_INT(plan_overlap_add(&ov, "docs/api/index.md", 1, &c), 0);
	CHECK_EQ_INT(plan_overlap_probe(&ov, "src/m.py", &c), 0);
	CHECK_EQ_INT(plan_overlap_probe(&ov, "src/n.py", &c), 0);
	CHECK_EQ_INT(plan_overlap_probe(&ov, "src/m.py/t.py", &c), 1);
	CHECK_EQ_INT(c.file_phase, 0);
	CHECK_EQ_INT(c.under_phase, PLAN_OVERLAP_NONE);
	CHECK_EQ_STR(clash_paths(&c), "src/m.py|src/m.py/t.py");
	CHECK_EQ_INT(plan_overlap_probe(&ov, "docs/api", &c), 1);
	CHECK_EQ_INT(c.file_phase, PLAN_OVERLAP_NONE);
	CHECK_EQ_INT(c.under_phase, 1);
	CHECK_EQ_STR(clash_paths(&c), "docs/api|docs/api/index.md");
	/* A probe records nothing: a second one of a clashing path clashes again. */
	CHECK_EQ_INT(plan_overlap_probe(&ov, "docs", &c), 1);
	CHECK_EQ_INT(plan_overlap_probe(&ov, "docs", &c), 1);
	plan_overlap_free(&ov);
}

TEST(plan_overlap_keeps_each_file_once_and_its_directories_in_it)
{
	struct plan_overlap ov = { 0 };
	struct plan_overlap_clash c;
	char path[4096];
	size_t len = 0;

	/* A deep path: its 999 directories cost no text of their own. */
	for (int i = 0; i < 1000; i++)
		len += (size_t)snprintf(path + len, sizeof path - len, "%sd", i > 0 ? "/" : "");
	CHECK_EQ_INT(plan_overlap_add(&ov, path, 0, &c), 0);
	CHECK_EQ_INT(ov.n, 1000);
	CHECK_EQ_INT(ov.text_len, len);
	path[len - 2] = '\0'; /* a directory of it, delivered as a file */
	CHECK_EQ_INT(plan_overlap_add(&ov, path, 1, &c), 1);
	CHECK_EQ_INT(c.under_len, len);
	/* Many files in few directories, the table grown many times. */
	plan_overlap_reset(&ov);
	for (int i = 0; i < 20000; i++) {
		snprintf(path, sizeof path, "src/m%d/f%d.py", i % 7, i);
		CHECK_EQ_INT(plan_overlap_add(&ov, path, (uint32_t)i, &c), 0);
	}
	CHECK_EQ_INT(ov.n, 20000 + 7 + 1);
	CHECK_EQ_INT(plan_overlap_add(&ov, "src/m3", 20000, &c), 1);
	CHECK_EQ_INT(plan_overlap_add(&ov, "src/m3/f3.py/x", 20001, &c), 1);
	CHECK_EQ_INT(c.file_phase, 3);
	plan_overlap_free(&ov);
}
