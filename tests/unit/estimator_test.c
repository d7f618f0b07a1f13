/* The estimator against the worked examples of docs/estimator.md and more. */
#include "common/estimate/estimator.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Estimate a phase of `n` deliverables in the current directory; fill budget and max. */
static void estimate(const char *cat, const char *cplx, char **d, size_t n, const char *desc,
    struct est_output *out, int *budget, int *max_tokens)
{
	struct est_coefs c;
	struct est_input in = { .deliverables = d,
		.n_deliverables = n,
		.category = cat,
		.complexity = cplx,
		.description = desc };

	est_coefs_default(&c);
	est_estimate(&c, &in, ".", out);
	*budget = est_select_budget(&c, out);
	*max_tokens = est_max_tokens(&c, out, *budget, 0, 0);
}

TEST(estimator_implementation_low_one_new_py_is_3424)
{
	char *d[] = { "utils/string_helper.py" };
	struct est_output o;
	int b, m;

	estimate("implementation", "low", d, 1, NULL, &o, &b, &m);
	CHECK_EQ_INT(o.model, EST_MODEL_OVERHEAD);
	CHECK_EQ_INT(o.overhead, 634);
	CHECK_EQ_INT(o.marginal, 2000);
	CHECK_EQ_INT(o.estimate, 3424);
	CHECK_EQ_INT(b, 8192);
	CHECK_EQ_INT(m, 16384);
	CHECK_NEAR(o.confidence, 0.8, 1e-9);
	CHECK_EQ_STR(o.category, "implementation");
	CHECK_EQ_STR(o.complexity, "low");
	CHECK_EQ_INT(o.doc_features, -1);
}

TEST(estimator_implementation_medium_one_new_py_is_4128)
{
	char *d[] = { "list_helper.py" };
	struct est_output o;
	int b, m;

	estimate("implementation", "medium", d, 1, NULL, &o, &b, &m);
	CHECK_EQ_INT(o.estimate, 4128);
	CHECK_EQ_INT(b, 12288);
	CHECK_EQ_INT(m, 16384);
}

/* The original's figure was 4420 (fallback overhead 2000); "tests" now shares the testing
 * row: int((915 + 1400) × 1.3) = 3009. The budget is the tests floor either way. */
TEST(estimator_tests_low_uses_testing_row_3009)
{
	char *d[] = { "test_x.py" };
	struct est_output o;
	int b, m;

	estimate("tests", "low", d, 1, NULL, &o, &b, &m);
	CHECK_EQ_INT(o.overhead, 915);
	CHECK_EQ_INT(o.estimate, 3009);
	CHECK_EQ_INT(b, 6144);
	CHECK_EQ_INT(m, 16384);
	CHECK_EQ_STR(o.category, "tests");
}

/* Original: int(5400 × 1.3) = 7020, budget 8424. Fixed: int((2500+1400+2000) × 1.3) = 7670,
 * budget int(7670 × 1.2) = 9204. conftest.py is costed as a new Python file. */
TEST(estimator_tests_medium_two_files_7670)
{
	char *d[] = { "test_x.py", "conftest.py" };
	struct est_output o;
	int b, m;

	estimate("tests", "medium", d, 2, NULL, &o, &b, &m);
	CHECK_EQ_INT(o.overhead, 2500);
	CHECK_EQ_INT(o.marginal, 3400);
	CHECK_EQ_INT(o.estimate, 7670);
	CHECK_EQ_INT(b, 9204);
	CHECK_EQ_INT(m, 16384);
}

TEST(estimator_original_tests_figures_without_alias)
{
	struct est_coefs c;
	char *d[] = { "test_x.py", "conftest.py" };
	struct est_input in = {
		.deliverables = d, .n_deliverables = 2, .category = "tests", .complexity = "medium"
	};
	struct est_output o;

	est_coefs_default(&c);
	c.n_overhead_alias = 0; /* the original's table: no "tests" row */
	est_estimate(&c, &in, ".", &o);
	CHECK_EQ_INT(o.estimate, 7020);
	CHECK_EQ_INT(est_select_budget(&c, &o), 8424);
}

TEST(estimator_docs_low_readme_examples_not_synthesis)
{
	char *d[] = { "README.md" };
	struct est_output o;
	int b, m;

	estimate(
	    "docs", "low", d, 1, "Write a README with usage examples for the helpers", &o, &b, &m);
	CHECK_EQ_INT(o.model, EST_MODEL_OVERHEAD);
	CHECK_EQ_INT(o.estimate, 2600);
	CHECK_EQ_INT(b, 4096);
	CHECK_EQ_INT(m, 4096);
	CHECK(o.doc_features & DOC_EXAMPLES);
	CHECK(!(o.doc_features & DOC_RESEARCH));
	CHECK_EQ_STR(o.context_quality, "none");
}

TEST(estimator_no_deliverables_is_flat_by_complexity)
{
	struct est_output o;
	int b, m;

	estimate("refactoring", "high", NULL, 0, NULL, &o, &b, &m);
	CHECK_EQ_INT(o.model, EST_MODEL_FLAT);
	CHECK_EQ_INT(o.estimate, 16384);
	CHECK_NEAR(o.confidence, 0.5, 1e-9);
	/* confidence < 0.7 → buffer 1.4: int(16384 × 1.4) = 22937 */
	CHECK_EQ_INT(b, 22937);
	CHECK_EQ_INT(m, 22937);
	/* implementation at high complexity → buffer 1.6: int(16384 × 1.6) = 26214 */
	estimate("implementation", "high", NULL, 0, NULL, &o, &b, &m);
	CHECK_EQ_INT(b, 26214);
}

TEST(estimator_unknown_complexity_is_medium)
{
	char *d[] = { "a.py" };
	struct est_output o;
	int b, m;

	estimate("implementation", "critical", d, 1, NULL, &o, &b, &m);
	CHECK_EQ_STR(o.complexity, "medium");
	CHECK_EQ_INT(o.estimate, 4128);
}

TEST(estimator_missing_category_inferred)
{
	char *code[] = { "a.py" };
	char *docs[] = { "docs/guide.md" };
	struct est_output o;
	int b, m;

	estimate(NULL, "low", code, 1, NULL, &o, &b, &m);
	CHECK_EQ_STR(o.category, "implementation");
	estimate(NULL, "low", docs, 1, NULL, &o, &b, &m);
	CHECK_EQ_STR(o.category, "documentation");
	/* documentation/low 1500 + new doc 500 */
	CHECK_EQ_INT(o.estimate, 2600);
}

TEST(estimator_sot_ledger_model)
{
	char *d[] = { "docs/CHANGELOG.md" };
	char *scope[] = { "docs/" };
	struct est_coefs c;
	struct est_input in = { .deliverables = d,
		.n_deliverables = 1,
		.category = "docs",
		.complexity = "low",
		.scope_paths = scope,
		.n_scope_paths = 1 };
	struct est_output o;

	est_coefs_default(&c);
	est_estimate(&c, &in, ".", &o);
	CHECK_EQ_INT(o.model, EST_MODEL_DOC_SOT_UPDATE);
	/* context some 2200 + write 900 + int(0.15 × 900) = 135 → 3235 × 1.3 = 4205 */
	CHECK_EQ_INT(o.estimate, 4205);
	CHECK_EQ_STR(o.category, "doc_sot_update");
	CHECK_EQ_STR(o.sot_file_name, "changelog.md");
	CHECK_EQ_INT(o.sot_entry_count_hint, 1);
	CHECK_NEAR(o.confidence, 0.70, 1e-9);
	/* buffer exactly 2.2: int(4205 × 2.2) = 9251 over the floor 8192 */
	CHECK_EQ_INT(est_select_budget(&c, &o), 9251);
	/* docs-like below the full-file floor: no raise to 16384 */
	CHECK_EQ_INT(est_max_tokens(&c, &o, 9251, 0, 0), 9251);
}

TEST(estimator_doc_synthesis_model)
{
	char *d[] = { "docs/API_REFERENCE.md", "docs/a.md", "docs/b.md", "docs/c.md", "docs/d.md" };
	struct est_coefs c;
	struct est_input in = { .deliverables = d,
		.n_deliverables = 5,
		.category = "documentation",
		.complexity = "medium",
		.description = "Document the REST API" };
	struct est_output o;

	est_coefs_default(&c);
	est_estimate(&c, &in, ".", &o);
	CHECK_EQ_INT(o.model, EST_MODEL_DOC_SYNTHESIS);
	CHECK(o.doc_features & DOC_API_REFERENCE);
	CHECK(o.doc_features & DOC_RESEARCH);
	/* 2500 + 1200 + 850×5 + int(0.12 × 4250) = 510 → 8460 × 1.3 = 10998 */
	CHECK_EQ_INT(o.estimate, 10998);
	CHECK_EQ_STR(o.category, "doc_synthesis");
	CHECK_EQ_INT(est_select_budget(&c, &o), 24195);
}

TEST(estimator_buffers_many_deliverables_and_high_risk)
{
	char *d[] = { "a.py", "b.py", "c.py", "d.py", "e.py", "f.py", "g.py", "h.py" };
	struct est_coefs c;
	struct est_input in = { .deliverables = d,
		.n_deliverables = 8,
		.category = "integration",
		.complexity = "low" };
	struct est_output o;

	est_coefs_default(&c);
	est_estimate(&c, &in, ".", &o);
	/* (3000 + 8 × 2000) × 1.3 = 24700; 8 deliverables → buffer 1.6 = 39520 */
	CHECK_EQ_INT(o.estimate, 24700);
	CHECK_EQ_INT(est_select_budget(&c, &o), 39520);

	in.n_deliverables = 2;
	in.complexity = "high";
	est_estimate(&c, &in, ".", &o);
	/* (6000 + 4000) × 1.3 = 13000; integration/high → 1.6 = 20800 */
	CHECK_EQ_INT(o.estimate, 13000);
	CHECK_EQ_INT(est_select_budget(&c, &o), 20800);
}

TEST(estimator_budget_and_max_tokens_capped_at_64000)
{
	char *d[40];
	struct est_coefs c;
	struct est_input in = { .deliverables = d,
		.n_deliverables = 40,
		.category = "frontend",
		.complexity = "high" };
	struct est_output o;
	int i, b;

	for (i = 0; i < 40; i++)
		d[i] = xasprintf("src/c%d.tsx", i);
	est_coefs_default(&c);
	est_estimate(&c, &in, ".", &o);
	CHECK(o.estimate > 64000);
	b = est_select_budget(&c, &o);
	CHECK_EQ_INT(b, 64000);
	CHECK_EQ_INT(est_max_tokens(&c, &o, b, 0, 0), 64000);
	CHECK_EQ_INT(est_max_tokens(&c, &o, b, 0, 32000), 32000);
	for (i = 0; i < 40; i++)
		free(d[i]);
}

TEST(estimator_escalation_is_125_percent_capped)
{
	struct est_coefs c;

	est_coefs_default(&c);
	CHECK_EQ_INT(est_escalate(&c, 16384, 0), 20480);
	CHECK_EQ_INT(est_escalate(&c, 60000, 0), 64000);
	CHECK_EQ_INT(est_escalate(&c, 16384, 18000), 18000);
}

/* Write `lines` lines: `imports` import lines, then code indented by `indent` spaces. */
static void write_py(const char *path, int lines, int imports, int indent)
{
	FILE *f = fopen(path, "w");
	int i;

	CHECK(f != NULL);
	for (i = 0; i < imports; i++)
		fprintf(f, "import mod%d\n", i);
	fprintf(f, "# a comment line\n\n");
	for (; i < lines; i++)
		fprintf(f, "%*sx%d = %d\n", i == lines - 1 ? indent : 0, "", i, i);
	fclose(f);
}

TEST(estimator_file_multiplier_on_real_files)
{
	struct est_coefs c;

	est_coefs_default(&c);
	write_py("small.py", 10, 1, 4);
	CHECK_NEAR(est_file_multiplier(&c, ".", "small.py"), 0.7 * 0.9 * 0.9, 1e-9);
	write_py("big.py", 600, 20, 20);
	CHECK_NEAR(est_file_multiplier(&c, ".", "big.py"), 2.0, 1e-9); /* 1.5×1.2×1.2 clamped */
	write_py("mid.py", 300, 10, 10);
	CHECK_NEAR(est_file_multiplier(&c, ".", "mid.py"), 1.3, 1e-9);
	CHECK_NEAR(est_file_multiplier(&c, ".", "absent.py"), 1.0, 1e-9);
}

TEST(estimator_follows_no_link_out_of_the_workspace)
{
	struct est_coefs c;
	char *big = NULL;
	int64_t bytes;

	est_coefs_default(&c);
	mkdir("ws", 0755);
	write_py("big.py", 600, 20, 20);
	big = realpath("big.py", NULL);
	CHECK(big != NULL);
	/* Out of the workspace, by an absolute link or through "..": neither read nor sized. */
	CHECK_EQ_INT(symlink(big, "ws/abs.py"), 0);
	CHECK_EQ_INT(symlink("../big.py", "ws/up.py"), 0);
	CHECK_NEAR(est_file_multiplier(&c, "ws", "abs.py"), 1.0, 1e-9);
	CHECK_NEAR(est_file_multiplier(&c, "ws", "up.py"), 1.0, 1e-9);
	CHECK_EQ_INT(
	    est_deliverable_kind("Modify abs.py", "implementation", "ws", &bytes), EST_DLV_NEW);
	CHECK_EQ_INT(bytes, -1);
	CHECK_EQ_INT(
	    est_deliverable_kind("Modify up.py", "implementation", "ws", &bytes), EST_DLV_NEW);
	CHECK_EQ_INT(bytes, -1);
	/* A link that stays in it is followed. */
	write_py("ws/inner.py", 600, 20, 20);
	CHECK_EQ_INT(symlink("inner.py", "ws/in.py"), 0);
	CHECK_NEAR(est_file_multiplier(&c, "ws", "in.py"), 2.0, 1e-9);
	CHECK_EQ_INT(
	    est_deliverable_kind("Modify in.py", "implementation", "ws", &bytes), EST_DLV_MODIFY);
	CHECK(bytes > 0);
	free(big);
}

TEST(estimator_existing_deliverable_uses_multiplier)
{
	char *d[] = { "small.py" };
	struct est_output o;
	int b, m;

	write_py("small.py", 10, 1, 4);
	estimate("implementation", "low", d, 1, NULL, &o, &b, &m);
	/* existing .py 700 × 0.567 = 396 (int), (634 + 396) × 1.3 = 1339 */
	CHECK_EQ_INT(o.marginal, 396);
	CHECK_EQ_INT(o.estimate, 1339);
	/* "create" in the text makes it new despite the file */
	d[0] = "Create small.py";
	estimate("implementation", "low", d, 1, NULL, &o, &b, &m);
	CHECK_EQ_INT(o.marginal, 2000);
	CHECK_NEAR(o.confidence, 1.0, 1e-9);
}

TEST(estimator_deliverable_path_extraction)
{
	char p[256];

	est_deliverable_path("Create src/foo.py (new file)", p, sizeof p);
	CHECK_EQ_STR(p, "src/foo.py");
	est_deliverable_path("Modify src/a.b/c.tsx-old to add X", p, sizeof p);
	CHECK_EQ_STR(p, "src/a.b/c.tsx");
	est_deliverable_path("Update README (top section)", p, sizeof p);
	CHECK_EQ_STR(p, "readme");
	CHECK_EQ_INT(est_classify("tests/unit/x.py", NULL), EST_CLASS_TEST);
	CHECK_EQ_INT(est_classify("docs/x.txt", NULL), EST_CLASS_DOC);
	CHECK_EQ_INT(est_classify("alembic/versions/1.py", NULL), EST_CLASS_CONFIG);
	CHECK_EQ_INT(est_classify("web/App.vue", NULL), EST_CLASS_FRONTEND);
	CHECK_EQ_INT(est_classify("db/schema.sql", NULL), EST_CLASS_SQL);
	CHECK_EQ_INT(est_classify("main.go", NULL), EST_CLASS_OTHER);
	CHECK_EQ_INT(est_classify("main.go", "frontend"), EST_CLASS_FRONTEND);
}

TEST(estimator_wire_rows_replace_defaults_through_aliases)
{
	struct est_coefs c;
	char err[128];
	char name_cat[] = "tests", name_cplx[] = "low", new_cat[] = "ml", new_cplx[] = "high";
	struct est_coef_row rows[] = { { name_cat, name_cplx, 700 }, { new_cat, new_cplx, 4200 } };
	struct est_coef_row bad[] = { { name_cat, name_cplx, 0 } };

	est_coefs_default(&c);
	CHECK_EQ_INT(est_coefs_apply(&c, rows, 2, 7, err, sizeof err), 0);
	CHECK_EQ_INT(c.version, 7);
	CHECK_EQ_INT(est_overhead_lookup(&c, "testing", "low"), 700);
	CHECK_EQ_INT(est_overhead_lookup(&c, "tests", "low"), 700);
	CHECK_EQ_INT(est_overhead_lookup(&c, "ml", "high"), 4200);
	CHECK_EQ_INT(est_overhead_lookup(&c, "ml", "low"), 2000);
	CHECK_EQ_INT(est_coefs_apply(&c, bad, 1, 8, err, sizeof err), -1);
	CHECK(strstr(err, "tests/low") != NULL);
	CHECK_EQ_INT(c.version, 7);
}

TEST(estimator_deliverable_kinds_and_existing_sizes)
{
	FILE *f = fopen("old.py", "w");
	int64_t bytes;

	CHECK(f != NULL);
	fputs("x = 1\n", f);
	fclose(f);
	CHECK_EQ_INT(
	    est_deliverable_kind("Modify old.py", "implementation", ".", &bytes), EST_DLV_MODIFY);
	CHECK_EQ_INT(bytes, 6);
	CHECK_EQ_INT(
	    est_deliverable_kind("Create old.py", "implementation", ".", &bytes), EST_DLV_NEW);
	CHECK_EQ_INT(bytes, 6);
	CHECK_EQ_INT(
	    est_deliverable_kind("src/new.py", "implementation", ".", &bytes), EST_DLV_NEW);
	CHECK_EQ_INT(bytes, -1);
	CHECK_EQ_INT(est_deliverable_kind("tests/test_a.py", "tests", ".", &bytes), EST_DLV_TEST);
	CHECK_EQ_INT(est_deliverable_kind("docs/guide.md", "docs", ".", &bytes), EST_DLV_DOC);
	CHECK_EQ_STR(est_dlv_kind_name(EST_DLV_MODIFY), "modify");
}

TEST(estimator_looks_under_the_workspace_it_is_lent)
{
	struct stat st;
	int other, fd;

	mkdir("lent_ws", 0755);
	mkdir("lent_other", 0755);
	write_py("lent_other/only_there.py", 10, 1, 4);
	CHECK((other = open("lent_other", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0);
	CHECK(est_open_under("lent_ws", "only_there.py", O_PATH) < 0);
	est_workspace_lend("lent_ws", other);
	CHECK((fd = est_open_under("lent_ws", "only_there.py", O_PATH)) >= 0);
	CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
	close(fd);
	/* Only for the workspace it stands for; and a link out of it is still refused. */
	CHECK(est_open_under(".", "only_there.py", O_PATH) < 0);
	CHECK(symlink("/etc/hostname", "lent_other/out") == 0);
	CHECK(est_open_under("lent_ws", "out", O_PATH) < 0);
	/* Left open; once lent no more, the path is opened again. */
	CHECK(fcntl(other, F_GETFD) >= 0);
	est_workspace_lend(NULL, -1);
	CHECK(est_open_under("lent_ws", "only_there.py", O_PATH) < 0);
	CHECK(close(other) == 0);
}
