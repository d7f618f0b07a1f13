/* The builder prompt and the v2 event's deliverables column. */
#include "common/util.h"
#include "tests/unit/test.h"
#include "worker/events.h"
#include "worker/prompt.h"

#include <jansson.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* Write `text` to `path`. */
static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
}

/* Make j the job of phase r/p in workspace ws reading the one context file ro[0]. */
static void job_reading(struct proto_job *j, char **ro, char *ws)
{
	j->run_id = (char *)"r";
	j->phase_id = (char *)"p";
	j->phase.read_only_context.items = ro;
	j->phase.read_only_context.n = 1;
	j->workspace = ws;
}

TEST(worker_prompt_lists_phase_and_confined_context)
{
	static char *ro[] = { "lib/helper.py", "../secret.txt", "lib/link.txt", "lib/absent.py" };
	static char *dl[] = { "lib/new.py", "lib/helper.py" };
	static char *paths[] = { "lib/" };
	struct proto_job j = { 0 };
	struct prompt p;
	char ws[4096];

	mkdir("ws", 0755);
	mkdir("ws/lib", 0755);
	put("secret.txt", "TOP-SECRET\n");
	put("ws/lib/helper.py", "def helper():\n    return 42\n");
	CHECK(symlink("../../secret.txt", "ws/lib/link.txt") == 0);
	CHECK(realpath("ws", ws) != NULL);
	j.run_id = (char *)"r1";
	j.phase_id = (char *)"p-9";
	j.attempt_number = 2;
	j.phase.name = (char *)"Helpers";
	j.phase.description = (char *)"Use helper() in new.py.";
	j.phase.task_category = (char *)"implementation";
	j.phase.read_only_context.items = ro;
	j.phase.read_only_context.n = 4;
	j.phase.deliverables.items = dl;
	j.phase.deliverables.n = 2;
	j.phase.paths.items = paths;
	j.phase.paths.n = 1;
	j.workspace = ws;
	prompt_build(&j, NULL, &p);
	CHECK(strstr(p.system, "\"files\"") != NULL);
	CHECK(strstr(p.user, "Phase id: p-9") != NULL);
	CHECK(strstr(p.user, "## Deliverables\n- lib/new.py\n- lib/helper.py\n") != NULL);
	CHECK(strstr(p.user, "Complexity: (unset)") != NULL);
	CHECK(strstr(p.user, "return 42") != NULL);
	CHECK(strstr(p.user, "TOP-SECRET") == NULL);
	CHECK(strstr(p.user, "'..' components are not allowed") != NULL);
	CHECK(strstr(p.user, "leaves the workspace") != NULL);
	CHECK(strstr(p.user, "## Current content of existing deliverables") != NULL);
	CHECK_EQ_INT(p.files_included, 2); /* helper.py as context and as a deliverable */
	CHECK_EQ_INT(p.files_skipped, 3);
	prompt_free(&p);
}

/* The prompt's text without a workspace, byte for byte: the phase's lines in order, the
 * defaults for what the phase leaves unset, both lists and the check. */
TEST(worker_prompt_text_is_exact)
{
	static char *dl[] = { "out/a.py", "out/b.py" };
	struct proto_job j = { 0 };
	struct prompt p;

	j.run_id = (char *)"run-7";
	j.phase_id = (char *)"p1";
	j.attempt_number = 12345678901LL;
	j.phase.description = (char *)"Do it.\nWell.";
	j.phase.complexity = (char *)"high";
	j.phase.deliverables.items = dl;
	j.phase.deliverables.n = 2;
	j.phase.check_command = (char *)"make test";
	prompt_build(&j, NULL, &p);
	CHECK_EQ_STR(p.user,
	    "# Phase: (unnamed)\nRun: run-7\nPhase id: p1\nCategory: (unset)\n"
	    "Complexity: high\nAttempt: 12345678901\n\n## Description\nDo it.\nWell.\n"
	    "\n## Deliverables\n- out/a.py\n- out/b.py\n\n## Scope\n(none)\n"
	    "\n## Check\nAfterwards this command must exit 0 in the workspace: make test\n");
	prompt_free(&p);
	j.phase.name = (char *)"N";
	j.phase.description = (char *)"";
	j.phase.check_command = NULL;
	j.attempt_number = 1;
	prompt_build(&j, NULL, &p);
	CHECK_EQ_STR(p.user,
	    "# Phase: N\nRun: run-7\nPhase id: p1\nCategory: (unset)\nComplexity: high\n"
	    "Attempt: 1\n\n## Description\n(none)\n\n## Deliverables\n- out/a.py\n"
	    "- out/b.py\n\n## Scope\n(none)\n");
	prompt_free(&p);
}

/* Make ws/`name` of `lines` lines of 8 bytes, and a job reading it (`ro`: { name }) from
 * ws, whose real path goes into `ws_real` (4096 bytes). */
static void job_reading_lines(
    struct proto_job *j, char **ro, const char *name, size_t lines, char *ws_real)
{
	char path[256];
	FILE *f;

	mkdir("ws", 0755);
	snprintf(path, sizeof path, "ws/%s", name);
	f = fopen(path, "w");
	for (size_t i = 0; i < lines; i++)
		fputs("abcdefg\n", f);
	fclose(f);
	CHECK(realpath("ws", ws_real) != NULL);
	job_reading(j, ro, ws_real);
}

TEST(worker_prompt_bounds_each_file)
{
	static char *ro[] = { "big.txt" };
	struct proto_job j = { 0 };
	struct prompt p;
	char ws[4096];

	job_reading_lines(&j, ro, ro[0], 3 * PROMPT_FILE_MAX / 8, ws);
	prompt_build(&j, NULL, &p);
	CHECK(strstr(p.user, "[cut after 65536 bytes]") != NULL);
	CHECK(strlen(p.user) < PROMPT_FILE_MAX + 4096);
	prompt_free(&p);
}

TEST(worker_prompt_says_cut_only_of_a_file_cut)
{
	static char *ro[] = { "whole.txt" };
	struct proto_job j = { 0 };
	struct prompt p;
	char ws[4096];
	FILE *f;

	/* Exactly the most one file may give: included whole (it was said to be cut). */
	job_reading_lines(&j, ro, ro[0], PROMPT_FILE_MAX / 8, ws);
	prompt_build(&j, NULL, &p);
	CHECK(strstr(p.user, "abcdefg\n\n```\n") != NULL);
	CHECK(strstr(p.user, "[cut after") == NULL);
	CHECK_EQ_INT(p.files_included, 1);
	prompt_free(&p);
	/* One byte more is cut. */
	f = fopen("ws/whole.txt", "a");
	fputs("z", f);
	fclose(f);
	prompt_build(&j, NULL, &p);
	CHECK(strstr(p.user, "abcdefg\n\n[cut after 65536 bytes]\n```\n") != NULL);
	CHECK(strchr(p.user, 'z') == NULL);
	prompt_free(&p);
}

TEST(worker_events_deliverables_json_keeps_20_cut_to_200_chars)
{
	char *items[25];
	struct proto_strlist l = { items, 25 };
	char longp[300], *json;
	size_t i;

	memset(longp, 'x', 250);
	longp[250] = '\0';
	for (i = 0; i < 25; i++)
		items[i] = i == 0 ? longp : (char *)"a.py";
	json = ev_deliverables_json(&l);
	CHECK(strncmp(json, "[\"", 2) == 0);
	CHECK(strstr(json, "xxx...\"") != NULL);
	CHECK_EQ_INT(strchr(json + 2, '"') - (json + 2), 200);
	{
		size_t commas = 0;
		for (i = 0; json[i] != '\0'; i++)
			commas += json[i] == ',';
		CHECK_EQ_INT(commas, 19);
	}
	free(json);
}

/* The deliverables' JSON of the v2 event, written directly, is what jansson's compact dump
 * of the same array gives: escapes, UTF-8, an invalid item as "?", the cut at 200 chars. */
TEST(worker_events_deliverables_json_is_what_jansson_writes)
{
	char longp[700];
	char *items[] = { (char *)"out/a.py", (char *)"q\"uote\\back/slash",
		(char *)"tab\tnl\nctl\x01\x1f del\x7f", (char *)"caf\xc3\xa9 \xf0\x9f\x98\x80",
		(char *)"bad \xff byte", longp, (char *)"" };
	struct proto_strlist l = { items, sizeof items / sizeof items[0] };
	json_t *arr = json_array();
	char *ours, *ref;

	/* longp: ASCII letters and two-byte characters, more than 200 of them. */
	longp[0] = '\0';
	for (size_t i = 0, k = 0; k + 2 < sizeof longp; i++) {
		if (i % 2 == 0)
			longp[k++] = 'y';
		else {
			longp[k++] = (char)0xc3;
			longp[k++] = (char)0xa9;
		}
		longp[k] = '\0';
	}
	for (size_t i = 0; i < l.n; i++) {
		/* The reference cut: 197 characters and "..." past 200. */
		size_t chars = 0, k, cut = 0;
		json_t *s;
		for (k = 0; items[i][k] != '\0'; k++)
			if (((unsigned char)items[i][k] & 0xC0) != 0x80) {
				if (chars == 197)
					cut = k;
				chars++;
			}
		if (chars > 200) {
			char *c = xasprintf("%.*s...", (int)cut, items[i]);
			s = json_string(c);
			free(c);
		} else {
			s = json_string(items[i]);
		}
		json_array_append_new(arr, s != NULL ? s : json_string("?"));
	}
	ref = json_dumps(arr, JSON_COMPACT);
	ours = ev_deliverables_json(&l);
	CHECK_EQ_STR(ours, ref);
	free(ours);
	free(ref);
	json_decref(arr);
}

TEST(worker_events_deliverables_detail_json_names_kind_and_size)
{
	static const char want[] =
	    "[{\"kind\":\"new\",\"bytes\":null},{\"kind\":\"modify\",\"bytes\":4},"
	    "{\"kind\":\"test\",\"bytes\":null},{\"kind\":\"doc\",\"bytes\":null}]";
	char *items[] = { (char *)"new.py", (char *)"old.py", (char *)"tests/test_x.py",
		(char *)"docs/a.md" };
	struct proto_strlist l = { items, 4 };
	struct est_output none = { 0 }, est;
	struct est_input in = {
		.deliverables = items, .n_deliverables = 4, .category = "implementation"
	};
	struct est_coefs c;
	char *json;

	CHECK(mkdir("ws", 0755) == 0);
	put("ws/old.py", "abc\n");
	/* No estimate's looks: each path is looked at. */
	strcpy(none.category, "implementation");
	json = ev_deliverables_detail_json(&l, &none, "ws");
	CHECK_EQ_STR(json, want);
	free(json);
	/* From what the estimate saw, the same answer. */
	est_coefs_default(&c);
	est_estimate(&c, &in, "ws", &est);
	CHECK_EQ_INT(est.model, EST_MODEL_OVERHEAD);
	CHECK_EQ_INT(est.seen[0].state, EST_SEEN_ABSENT);
	CHECK_EQ_INT(est.seen[1].state, EST_SEEN_PRESENT);
	CHECK_EQ_INT((int)est.seen[1].bytes, 4);
	CHECK_EQ_INT(est.seen[2].cls, EST_CLASS_TEST); /* the estimate's class, kept */
	CHECK_EQ_INT(est.seen[3].cls, EST_CLASS_DOC);
	json = ev_deliverables_detail_json(&l, &est, "ws");
	CHECK_EQ_STR(json, want);
	free(json);
	l.n = 0;
	json = ev_deliverables_detail_json(&l, &none, "ws");
	CHECK_EQ_STR(json, "[]");
	free(json);
}

TEST(worker_prompt_uses_the_estimates_looks)
{
	static char *dl[] = { "gone.py", "Modify kept.py", "kept.py" };
	struct est_input in = {
		.deliverables = dl, .n_deliverables = 3, .category = "implementation"
	};
	struct proto_job j = { 0 };
	struct est_output est;
	struct est_coefs c;
	struct prompt p;
	char ws[4096];

	CHECK(mkdir("ws", 0755) == 0);
	put("ws/kept.py", "KEPT = 1\n");
	CHECK(realpath("ws", ws) != NULL);
	est_coefs_default(&c);
	est_estimate(&c, &in, ws, &est);
	CHECK_EQ_INT(est.seen[0].state, EST_SEEN_ABSENT);
	CHECK(est.seen[0].verbatim);
	CHECK(!est.seen[1].verbatim); /* "Modify kept.py" names kept.py: not this path */
	CHECK_EQ_INT(est.seen[2].state, EST_SEEN_PRESENT);
	j.run_id = (char *)"r";
	j.phase_id = (char *)"p";
	j.phase.deliverables.items = dl;
	j.phase.deliverables.n = 3;
	j.workspace = ws;
	/* gone.py appears now: the estimate's look stands for this build (it is recorded as
	 * absent), what it found present is read. */
	put("ws/gone.py", "GONE = 1\n");
	prompt_build(&j, &est, &p);
	CHECK(strstr(p.user, "KEPT = 1") != NULL);
	CHECK(strstr(p.user, "GONE = 1") == NULL);
	CHECK_EQ_INT(p.files_included, 1);
	prompt_free(&p);
	/* Without the estimate, every deliverable is looked for. */
	prompt_build(&j, NULL, &p);
	CHECK(strstr(p.user, "GONE = 1") != NULL);
	CHECK_EQ_INT(p.files_included, 2);
	prompt_free(&p);
}

/* Swap ws/real between the directory it is and a symbolic link out of the workspace,
 * until told to stop: another run's check in a workspace runs share. */
static volatile int swap_stop;

static void *swap_dir(void *arg)
{
	(void)arg;
	while (!swap_stop) {
		rename("ws/real", "ws/real.dir");
		(void)!symlink("../outside", "ws/real.lnk");
		rename("ws/real.lnk", "ws/real");
		unlink("ws/real");
		rename("ws/real.dir", "ws/real");
	}
	return NULL;
}

TEST(worker_prompt_reads_no_file_a_changed_path_leads_out_to)
{
	static char *ro[] = { "real/ctx.txt" };
	uint64_t until = clock_mono_ms() + 4000;
	struct proto_job j = { 0 };
	int included = 0, leaked = 0;
	struct prompt p;
	char ws[4096];
	pthread_t t;

	CHECK(mkdir("ws", 0755) == 0 && mkdir("ws/real", 0755) == 0 && mkdir("outside", 0755) == 0);
	put("ws/real/ctx.txt", "inside\n");
	put("outside/ctx.txt", "TOP-SECRET\n");
	CHECK(realpath("ws", ws) != NULL);
	job_reading(&j, ro, ws);
	CHECK(pthread_create(&t, NULL, swap_dir, NULL) == 0);
	while (clock_mono_ms() < until && leaked == 0) {
		prompt_build(&j, NULL, &p);
		included += p.files_included;
		leaked += strstr(p.user, "TOP-SECRET") != NULL;
		prompt_free(&p);
	}
	swap_stop = 1;
	pthread_join(t, NULL);
	if (leaked > 0)
		fprintf(stderr,
		    "a file outside the workspace was read into the prompt (after %d "
		    "read from inside)\n",
		    included);
	CHECK_EQ_INT(leaked, 0);
	CHECK(included > 0);
}
