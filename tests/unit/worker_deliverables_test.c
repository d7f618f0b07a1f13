/* Parsing the model's files document and writing it confined to the workspace. */
#include "common/util.h"
#include "tests/unit/mutate.h"
#include "tests/unit/test.h"
#include "worker/deliverables.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read a whole small file into a static buffer ("" when absent). */
static const char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : 0;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Parse `text` expecting success. */
static void parse_ok(const char *text, struct dlv_set *s)
{
	char err[256];
	int rc = dlv_parse(text, s, err, sizeof err);

	if (rc != DLV_OK)
		fprintf(stderr, "parse: %s\n", err);
	CHECK_EQ_INT(rc, DLV_OK);
}

TEST(worker_deliverables_parse_bare_document)
{
	struct dlv_set s;

	parse_ok(
	    "{\"files\":[{\"path\":\"a/b.py\",\"mode\":\"create\",\"new_content\":\"x = 1\\n\"},"
	    "{\"path\":\"old.txt\",\"mode\":\"delete\"}]}",
	    &s);
	CHECK_EQ_INT(s.n, 2);
	CHECK_EQ_STR(s.files[0].path, "a/b.py");
	CHECK_EQ_STR(s.files[0].content, "x = 1\n");
	CHECK_EQ_INT(s.files[1].mode, DLV_DELETE);
	CHECK(s.files[1].content == NULL);
	dlv_set_free(&s);
}

TEST(worker_deliverables_parse_fenced_document_with_prose)
{
	struct dlv_set s;

	parse_ok("Sure! Here it is:\n\n```json\n{\"files\": [{\"path\": \"x.py\", \"new_content\": "
	         "\"pass\\n\"}]}\n```\nLet me know.",
	    &s);
	CHECK_EQ_INT(s.n, 1);
	CHECK_EQ_INT(s.files[0].mode, DLV_CREATE);
	dlv_set_free(&s);
	parse_ok("```\n{\"files\": []}\n```", &s);
	CHECK_EQ_INT(s.n, 0);
	dlv_set_free(&s);
	parse_ok(
	    "The answer is {\"files\": [{\"path\": \"y\", \"new_content\": \"\"}]} as asked", &s);
	CHECK_EQ_INT(s.n, 1);
	dlv_set_free(&s);
}

TEST(worker_deliverables_parse_errors_say_what_is_wrong)
{
	struct dlv_set s;
	char err[256];

	CHECK_EQ_INT(dlv_parse("I cannot do that.", &s, err, sizeof err), DLV_EPARSE);
	CHECK(strstr(err, "no JSON document") != NULL);
	CHECK_EQ_INT(dlv_parse("{\"files\": {}}", &s, err, sizeof err), DLV_EPARSE);
	CHECK(strstr(err, "expected an array") != NULL);
	CHECK_EQ_INT(
	    dlv_parse("{\"files\": [{\"path\": \"a\"}]}", &s, err, sizeof err), DLV_EPARSE);
	CHECK(strstr(err, "files[0].new_content") != NULL);
	CHECK_EQ_INT(dlv_parse("{\"files\": [{\"path\": \"a\", \"mode\": \"chmod\", "
	                       "\"new_content\": \"\"}]}",
	                 &s, err, sizeof err),
	    DLV_EPARSE);
	CHECK(strstr(err, "files[0].mode") != NULL);
	CHECK_EQ_INT(dlv_parse("{\"files\": [{\"path\": \"a\\u0000b\", \"new_content\": \"\"}]}",
	                 &s, err, sizeof err),
	    DLV_EPARSE);
	CHECK(strstr(err, "NUL") != NULL);
	CHECK_EQ_INT(dlv_parse("{\"files\": [{\"path\": \"a\", \"new_content\": \"1\"},"
	                       "{\"path\": \"a\", \"new_content\": \"2\"}]}",
	                 &s, err, sizeof err),
	    DLV_EPARSE);
	CHECK(strstr(err, "twice") != NULL);
	CHECK_EQ_INT(s.n, 0);
}

TEST(worker_deliverables_invalid_json_says_where_and_why)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
		{ "{\"files\": [{\"path\": \"a\", \"new_content\": \"x\\udc80\"}]}",
		    "the answer's JSON is invalid at byte 42 of the response (52 bytes): a lone "
		    "surrogate \\udc80 (a low one with no high one before it)" },
		{ "Here:\n```json\n{\"files\": [{\"path\": \"a\", \"new_content\": \"\\uD83D!\"}]}\n"
		  "```\n",
		    "the answer's JSON is invalid at byte 55 of the response (71 bytes): a lone "
		    "surrogate \\uD83D (a high one with no low one after it)" },
		{ "I wrote {\"files\": [{\"path\": \"a\", \"new_content\": \"tab\there\"}]} for you",
		    "the answer's JSON is invalid at byte 52 of the response (69 bytes): a control "
		    "character (byte 0x09) in a string" },
		{ "{\"files\": [{\"path\": \"a\", \"new_content\": \"1\"},]}",
		    "the answer's JSON is invalid at byte 45 of the response (47 bytes): no value (a "
		    "string, number, object, array, true, false or null)" },
		/* Nothing that names "files": no document, as before. */
		{ "{\"answer\": \"\\udc80\"}",
		    "no JSON document with \"files\" found in the response (20 bytes)" },
	};
	struct dlv_set s;
	char err[256];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CHECK_EQ_INT(dlv_parse(cases[i].text, &s, err, sizeof err), DLV_EPARSE);
		CHECK_EQ_STR(err, cases[i].err);
		CHECK_EQ_INT(s.n, 0);
	}
}

/* An answer cut short (a truncated one) says so one way wherever the cut falls: in a
 * string, an escape, a surrogate pair, a UTF-8 character, a number, a literal, between
 * values; so its failures share one fingerprint. */
TEST(worker_deliverables_an_answer_cut_short_always_reads_the_same)
{
	static const char doc[] =
	    "{\"files\": [{\"path\": \"a.py\", \"mode\": null, \"x\": [true, false, -1.5e+3],"
	    " \"new_content\": \"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00 \\n\\\"q\\\"\"}]}";
	static const char *const before[] = { "", "Here you are:\n```json\n" };
	char text[512], err[256], want[256];
	struct dlv_set s;

	for (size_t b = 0; b < ARRAY_SIZE(before); b++) {
		for (size_t n = strlen("{\"files\""); n < strlen(doc); n++) {
			size_t len = (size_t)snprintf(
			    text, sizeof text, "%s%.*s", before[b], (int)n, doc);

			snprintf(want, sizeof want,
			    "the answer's JSON is invalid at byte %zu of the response (%zu bytes): "
			    "it ends inside the document",
			    len, len);
			CHECK_EQ_INT(dlv_parse(text, &s, err, sizeof err), DLV_EPARSE);
			CHECK_EQ_STR(err, want);
		}
		snprintf(text, sizeof text, "%s%s", before[b], doc);
		CHECK_EQ_INT(dlv_parse(text, &s, err, sizeof err), DLV_OK);
		dlv_set_free(&s);
	}
}

/* A workspace "ws" with scope utils/ and deliverable utils/h.py. */
static struct dlv_scope scope_utils(void)
{
	static char *paths[] = { "utils/" };
	static char *dl[] = { "utils/h.py", "README.md" };
	struct dlv_scope s = { paths, 1, dl, 2, NULL, NULL, NULL, NULL };

	mkdir("ws", 0755);
	return s;
}

/* Apply one file and return the status; the refusal text goes to err. */
static int apply_one(const struct dlv_scope *scope, const char *path, char *err, size_t n)
{
	struct dlv_file f = { (char *)path, DLV_CREATE, (char *)"owned\n", 6 };
	struct dlv_set set = { &f, 1 };

	return dlv_apply("ws", scope, &set, err, n);
}

/* The files document as jansson reads it (the worker's reading before it read the
 * document in place): the reference the in-place reading is held to. */
static json_t *ref_try_json(const char *s, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(s, len, JSON_ALLOW_NUL, &jerr);

	if (root != NULL && (!json_is_object(root) || json_object_get(root, "files") == NULL)) {
		json_decref(root);
		root = NULL;
	}
	return root;
}

static json_t *ref_find_document(const char *text)
{
	const char *p, *open, *close, *body;
	json_t *root;
	int pass;

	root = ref_try_json(text, strlen(text));
	if (root != NULL)
		return root;
	for (pass = 0; pass < 2; pass++) {
		for (p = text; (open = strstr(p, "```")) != NULL; p = close + 3) {
			const char *tag = open + 3;
			body = strchr(tag, '\n');
			if (body == NULL)
				return NULL;
			close = strstr(body, "```");
			if (close == NULL)
				close = body + strlen(body);
			if (pass == 1 || strncmp(tag, "json", 4) == 0) {
				root = ref_try_json(body + 1, (size_t)(close - body - 1));
				if (root != NULL)
					return root;
			}
			if (*close == '\0')
				break;
		}
	}
	open = strchr(text, '{');
	close = strrchr(text, '}');
	if (open != NULL && close != NULL && close > open)
		return ref_try_json(open, (size_t)(close - open + 1));
	return NULL;
}

static int ref_mode(const char *s)
{
	if (strcmp(s, "create") == 0)
		return DLV_CREATE;
	if (strcmp(s, "modify") == 0 || strcmp(s, "update") == 0 || strcmp(s, "replace") == 0)
		return DLV_MODIFY;
	if (strcmp(s, "delete") == 0)
		return DLV_DELETE;
	return -1;
}

static int ref_file(json_t *e, size_t i, struct dlv_file *f, char *err, size_t errlen)
{
	json_t *path = json_object_get(e, "path");
	json_t *mode = json_object_get(e, "mode");
	json_t *content = json_object_get(e, "new_content");
	int m = DLV_CREATE;

	if (!json_is_object(e)) {
		snprintf(err, errlen, "files[%zu]: expected an object", i);
		return -1;
	}
	if (!json_is_string(path) || json_string_length(path) == 0) {
		snprintf(err, errlen, "files[%zu].path: missing or not a non-empty string", i);
		return -1;
	}
	if (strlen(json_string_value(path)) != json_string_length(path)) {
		snprintf(err, errlen, "files[%zu].path: contains a NUL character", i);
		return -1;
	}
	if (mode != NULL && !json_is_null(mode)) {
		if (!json_is_string(mode) || (m = ref_mode(json_string_value(mode))) < 0) {
			snprintf(
			    err, errlen, "files[%zu].mode: expected create, modify or delete", i);
			return -1;
		}
	}
	if (content == NULL)
		content = json_object_get(e, "content");
	if (m != DLV_DELETE && !json_is_string(content)) {
		snprintf(err, errlen, "files[%zu].new_content: missing or not a string (path %s)",
		    i, json_string_value(path));
		return -1;
	}
	f->path = xstrdup(json_string_value(path));
	f->mode = (enum dlv_mode)m;
	if (m != DLV_DELETE) {
		f->content_len = json_string_length(content);
		f->content = xmalloc(f->content_len + 1);
		memcpy(f->content, json_string_value(content), f->content_len);
		f->content[f->content_len] = '\0';
	}
	return 0;
}

static int ref_parse(const char *text, struct dlv_set *out, char *err, size_t errlen)
{
	json_t *root, *files;
	size_t i, j;

	out->files = NULL;
	out->n = 0;
	root = ref_find_document(text);
	if (root == NULL) {
		snprintf(err, errlen,
		    "no JSON document with \"files\" found in the response (%zu bytes)",
		    strlen(text));
		return DLV_EPARSE;
	}
	files = json_object_get(root, "files");
	if (!json_is_array(files)) {
		snprintf(err, errlen, "files: expected an array");
		goto fail;
	}
	if (json_array_size(files) > DLV_FILES_MAX) {
		snprintf(err, errlen, "files: %zu entries exceed the limit of %d",
		    json_array_size(files), DLV_FILES_MAX);
		goto fail;
	}
	out->files = xcalloc(json_array_size(files) + 1, sizeof *out->files);
	for (i = 0; i < json_array_size(files); i++) {
		if (ref_file(json_array_get(files, i), i, &out->files[i], err, errlen) < 0)
			goto fail;
		out->n++;
		for (j = 0; j < i; j++) {
			if (strcmp(out->files[j].path, out->files[i].path) == 0) {
				snprintf(err, errlen, "files[%zu].path: %s appears twice", i,
				    out->files[i].path);
				goto fail;
			}
		}
	}
	json_decref(root);
	return DLV_OK;
fail:
	json_decref(root);
	dlv_set_free(out);
	return DLV_EPARSE;
}

/* Texts read as a set, and refused, by dlv_parse_agrees. */
static int agreed_ok, agreed_refused;

/* dlv_parse and the reference agree on `text`: the same status, message and files. */
static void dlv_parse_agrees(const char *text)
{
	struct dlv_set a, b;
	char ea[512] = "", eb[512] = "";
	int ra = dlv_parse(text, &a, ea, sizeof ea), rb = ref_parse(text, &b, eb, sizeof eb);

	CHECK_EQ_INT(ra, rb);
	if (ra != rb) {
		fprintf(stderr, "text: %s\n", text);
		return;
	}
	if (ra != DLV_OK) {
		agreed_refused++;
		/* The reference finds no document where one meant to be is not JSON, which
		 * dlv_parse says (worker_deliverables_invalid_json_says_where_and_why). */
		if (strncmp(ea, "the answer's JSON is invalid at byte ", 37) == 0)
			CHECK(strncmp(eb, "no JSON document with ", 22) == 0);
		else
			CHECK_EQ_STR(ea, eb);
		return;
	}
	agreed_ok++;
	CHECK_EQ_INT(a.n, b.n);
	for (size_t i = 0; i < a.n && i < b.n; i++) {
		CHECK_EQ_STR(a.files[i].path, b.files[i].path);
		CHECK_EQ_INT(a.files[i].mode, b.files[i].mode);
		CHECK_EQ_INT(a.files[i].content_len, b.files[i].content_len);
		CHECK((a.files[i].content == NULL) == (b.files[i].content == NULL));
		if (a.files[i].content != NULL && b.files[i].content != NULL)
			CHECK(memcmp(a.files[i].content, b.files[i].content,
			          a.files[i].content_len + 1) == 0);
	}
	dlv_set_free(&a);
	dlv_set_free(&b);
}

TEST(worker_deliverables_document_is_read_as_jansson_reads_it)
{
	static const char *const seeds[] = {
		"{\"files\":[{\"path\":\"a/b.py\",\"mode\":\"create\",\"new_content\":\"x = 1\\n\"},"
		"{\"path\":\"old.txt\",\"mode\":\"delete\"},{\"path\":\"c\",\"content\":\"\\u0000z\"}]}",
		"Here:\n```json\n{\"files\": [{\"path\": \"x.py\", \"mode\": \"update\", "
		"\"new_content\": \"caf\xc3\xa9 \\ud83d\\ude00 \\\"q\\\" \\/\\\\\\b\\f\\r\\t\"}]}\n```\nok",
		"```\n{\"files\": []}\n```",
		"```python\nx = {1}\n```\n```\n{\"files\": [{\"path\": \"y\", \"new_content\": \"\"}]}\n```",
		"The answer is {\"files\": [{\"path\": \"y\", \"new_content\": \"\"}]} as asked",
		"{\"files\": {}}",
		"{\"files\": null}",
		"{\"files\": [{\"path\": \"a\"}]}",
		"{\"files\": [{\"path\": \"a\", \"mode\": \"chmod\", \"new_content\": \"\"}]}",
		"{\"files\": [{\"path\": \"a\", \"mode\": null, \"new_content\": \"n\"}]}",
		"{\"files\": [{\"path\": \"a\", \"mode\": \"create\\u0000x\", \"new_content\": \"\"}]}",
		"{\"files\": [{\"path\": \"a\\u0000b\", \"new_content\": \"\"}]}",
		"{\"files\": [{\"path\": \"a\", \"new_content\": \"1\"},{\"path\": \"a\", "
		"\"new_content\": \"2\"}]}",
		"{\"files\": [{\"path\": \"a\", \"new_content\": null, \"content\": \"c\"}]}",
		"{\"files\": [{\"content\": \"c\", \"path\": \"a\", \"new_content\": \"n\"}, "
		"{\"content\": \"only\", \"path\": \"b\", \"mode\": \"modify\"}]}",
		"{\"files\": [{\"path\": \"a\", \"path\": \"b\", \"new_content\": \"1\"}], \"files\": []}",
		"{\"fi\\u006ces\": [{\"p\\u0061th\": \"k\", \"new_content\": \"e\"}]}",
		"{\"files\": [{\"path\": \"\", \"new_content\": \"\"}]}",
		"{\"files\": [{\"path\": 7, \"new_content\": \"\"}]}",
		"{\"files\": [3, {\"path\": \"a\"}]}",
		"{\"files\": [{\"path\": \"a\", \"new_content\": \"\\ud800\"}]}",
		"{\"files\": [{\"path\": \"a\", \"new_content\": \"bad \xff\"}]}",
		"{\"files\": [{\"path\": \"a\", \"new_content\": \"raw \x01\"}]}",
		"{\"k\\u0000ey\": 1, \"files\": []}",
		"{\"files\": [], \"n\": 1e400}",
		"{\"files\": [], \"n\": 99999999999999999999}",
		"{\"files\": []} trailing",
		"[{\"files\": []}]",
		"{\"files\": [{\"path\": \"a\", \"new_content\": \"1\"},]}",
		"",
		"no document here",
	};
	static const char alphabet[] = "{}[]\":,\\u0123456789abcdefnrtx-+.eE \n`\x7f\xc3\xa9\xed";
	uint64_t seed = 0x2545f4914f6cdd1dull;

	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		dlv_parse_agrees(seeds[i]);
	for (int round = 0; round < 20000; round++) {
		char buf[512];

		test_mutate(buf, sizeof buf, seeds[round % 4], alphabet, &seed);
		dlv_parse_agrees(buf);
	}
	/* Both outcomes well represented among the mutations. */
	CHECK(agreed_ok > 1000);
	CHECK(agreed_refused > 1000);
}

TEST(worker_deliverables_write_in_scope_atomically)
{
	struct dlv_scope scope = scope_utils();
	struct dlv_file f[] = { { (char *)"utils/h.py", DLV_CREATE, (char *)"A\n", 2 },
		{ (char *)"utils/deep/er/x.py", DLV_CREATE, (char *)"B\n", 2 },
		{ (char *)"./README.md", DLV_MODIFY, (char *)"C\n", 2 } };
	struct dlv_set set = { f, 3 };
	char err[256];
	DIR *d;
	struct dirent *e;
	int entries = 0;

	CHECK_EQ_INT(dlv_apply("ws", &scope, &set, err, sizeof err), DLV_OK);
	CHECK_EQ_STR(slurp("ws/utils/h.py"), "A\n");
	CHECK_EQ_STR(slurp("ws/utils/deep/er/x.py"), "B\n");
	CHECK_EQ_STR(slurp("ws/README.md"), "C\n");
	chmod("ws/utils/h.py", 0600);
	f[0].content = (char *)"A2\n";
	f[0].content_len = 3;
	set.n = 1;
	CHECK_EQ_INT(dlv_apply("ws", &scope, &set, err, sizeof err), DLV_OK);
	CHECK_EQ_STR(slurp("ws/utils/h.py"), "A2\n");
	{
		struct stat st;
		CHECK(stat("ws/utils/h.py", &st) == 0);
		CHECK_EQ_INT(st.st_mode & 0777, 0600); /* the mode of the file it replaced */
	}
	d = opendir("ws/utils");
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' || strstr(e->d_name, ".tmp") != NULL)
			entries++;
	closedir(d);
	CHECK_EQ_INT(entries, 2); /* h.py and deep/, no temporary files left */
	CHECK_EQ_INT(
	    dlv_missing("ws", scope.deliverables, scope.ndeliverables, NULL, err, sizeof err), 0);
}

TEST(worker_deliverables_refuse_absolute_and_dotdot)
{
	struct dlv_scope scope = scope_utils();
	char err[256];

	CHECK_EQ_INT(apply_one(&scope, "/etc/passwd", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "/etc/passwd") && strstr(err, "absolute"));
	CHECK_EQ_INT(apply_one(&scope, "../../etc/x", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "../../etc/x") && strstr(err, "'..'"));
	CHECK_EQ_INT(apply_one(&scope, "utils/../../x", err, sizeof err), DLV_ESCOPE);
	CHECK_EQ_INT(apply_one(&scope, "utils\\..\\x", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "backslash"));
	CHECK(!exists("x") && !exists("ws/x"));
}

TEST(worker_deliverables_refuse_outside_scope_and_reserved)
{
	struct dlv_scope scope = scope_utils();
	char err[256];

	CHECK_EQ_INT(apply_one(&scope, "other/x.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "other/x.py") && strstr(err, "scope"));
	CHECK_EQ_INT(apply_one(&scope, "utilsx/a.py", err, sizeof err), DLV_ESCOPE);
	CHECK_EQ_INT(apply_one(&scope, "utils/.git/config", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, ".git"));
	CHECK_EQ_INT(apply_one(&scope, "", err, sizeof err), DLV_ESCOPE);
	CHECK(!exists("ws/other") && !exists("ws/utilsx"));
}

TEST(worker_deliverables_never_write_the_database_in_the_workspace)
{
	static char *paths[] = { "." };
	char err[512], cwd[4096], *db;
	struct dlv_scope scope = { paths, 1, NULL, 0, NULL, NULL, NULL, NULL };
	struct dlv_file del = { "app.db-wal", DLV_DELETE, NULL, 0 };
	struct dlv_set set = { &del, 1 };

	mkdir("ws", 0755);
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	db = xasprintf("%s/ws/app.db", cwd);
	scope.protect = db;
	close(open("ws/app.db", O_CREAT | O_WRONLY, 0600));
	close(open("ws/app.db-wal", O_CREAT | O_WRONLY, 0600));
	CHECK_EQ_INT(apply_one(&scope, "app.db", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "\"app.db\": is the database ") && strstr(err, "/ws/app.db"));
	CHECK_EQ_INT(apply_one(&scope, "./app.db-shm", err, sizeof err), DLV_ESCOPE);
	CHECK_EQ_INT(apply_one(&scope, "app.db.lock", err, sizeof err), DLV_ESCOPE);
	CHECK_EQ_INT(dlv_apply("ws", &scope, &set, err, sizeof err), DLV_ESCOPE);
	/* Through a symlinked directory that leads back to it. */
	CHECK(symlink(".", "ws/again") == 0);
	CHECK_EQ_INT(apply_one(&scope, "again/app.db", err, sizeof err), DLV_ESCOPE);
	CHECK(exists("ws/app.db-wal") && !exists("ws/app.db-shm"));
	CHECK_EQ_INT((int)strlen(slurp("ws/app.db")), 0);
	/* Other files beside it, and a file of that name elsewhere, are written. */
	CHECK_EQ_INT(apply_one(&scope, "other.py", err, sizeof err), DLV_OK);
	CHECK_EQ_INT(apply_one(&scope, "app.dbx.py", err, sizeof err), DLV_OK);
	mkdir("ws/sub", 0755);
	CHECK_EQ_INT(apply_one(&scope, "sub/app.db", err, sizeof err), DLV_OK);
	free(db);
}

TEST(worker_deliverables_a_new_file_is_made_under_the_umask)
{
	static char *paths[] = { "." };
	struct dlv_scope scope = { paths, 1, NULL, 0, NULL, NULL, NULL, NULL };
	char err[256];
	struct stat st;

	mkdir("ws", 0755);
	umask(077);
	CHECK_EQ_INT(apply_one(&scope, "private.py", err, sizeof err), DLV_OK);
	CHECK(stat("ws/private.py", &st) == 0);
	CHECK_EQ_INT(st.st_mode & 07777, 0600);
	umask(022);
	CHECK_EQ_INT(apply_one(&scope, "shared.py", err, sizeof err), DLV_OK);
	CHECK(stat("ws/shared.py", &st) == 0);
	CHECK_EQ_INT(st.st_mode & 07777, 0644);
	/* A file that exists keeps its mode, whatever the umask. */
	chmod("ws/private.py", 0640);
	umask(077);
	CHECK_EQ_INT(apply_one(&scope, "private.py", err, sizeof err), DLV_OK);
	CHECK(stat("ws/private.py", &st) == 0);
	CHECK_EQ_INT(st.st_mode & 07777, 0640);
}

TEST(worker_deliverables_a_temporary_name_taken_moves_to_the_next)
{
	static char *paths[] = { "." };
	struct dlv_scope scope = { paths, 1, NULL, 0, NULL, NULL, NULL, NULL };
	char err[256], name[128];
	int k;

	mkdir("ws", 0755);
	/* The names this process's first writes of x.py take, left by a worker killed
	 * while it wrote (its pid now this one's) or put there by a check. */
	for (k = 0; k < 8; k++) {
		snprintf(name, sizeof name, "ws/.x.py.autopack-%ld-%d.tmp", (long)getpid(), k);
		close(open(name, O_CREAT | O_WRONLY, 0600));
	}
	CHECK_EQ_INT(apply_one(&scope, "x.py", err, sizeof err), DLV_OK);
	CHECK_EQ_STR(slurp("ws/x.py"), "owned\n");
	for (k = 0; k < 8; k++) {
		snprintf(name, sizeof name, "ws/.x.py.autopack-%ld-%d.tmp", (long)getpid(), k);
		CHECK(exists(name)); /* not its own: left alone */
	}
}

TEST(worker_deliverables_never_write_or_delete_the_log_file)
{
	static char *paths[] = { "." };
	char err[512];
	struct dlv_scope scope = { paths, 1, NULL, 0, NULL, NULL, NULL, "ws/logs/sup.log" };
	struct dlv_file del = { "logs/sup.log", DLV_DELETE, NULL, 0 };
	struct dlv_set set = { &del, 1 };
	FILE *fp;

	mkdir("ws", 0755);
	mkdir("ws/logs", 0755);
	CHECK((fp = fopen("ws/logs/sup.log", "w")) != NULL);
	fputs("line\n", fp);
	fclose(fp);
	CHECK_EQ_INT(apply_one(&scope, "logs/sup.log", err, sizeof err), DLV_ESCOPE);
	CHECK_EQ_STR(err,
	    "path \"logs/sup.log\": is the log file ws/logs/sup.log of the supervisor and its "
	    "workers (--log-file)");
	CHECK_EQ_INT(dlv_apply("ws", &scope, &set, err, sizeof err), DLV_ESCOPE);
	/* Through a symlinked directory, and a hard link to it. */
	CHECK(symlink("logs", "ws/again") == 0);
	CHECK_EQ_INT(apply_one(&scope, "again/sup.log", err, sizeof err), DLV_ESCOPE);
	CHECK(link("ws/logs/sup.log", "ws/hard.log") == 0);
	CHECK_EQ_INT(apply_one(&scope, "hard.log", err, sizeof err), DLV_ESCOPE);
	CHECK_EQ_STR(slurp("ws/logs/sup.log"), "line\n");
	/* Another file beside it is written. */
	CHECK_EQ_INT(apply_one(&scope, "logs/other.log", err, sizeof err), DLV_OK);
}

TEST(worker_deliverables_a_symlink_into_a_reserved_directory_is_not_followed)
{
	/* The whole workspace in scope: a check, which may not write its .autopack/logs, left
	 * links to it and to .git for the worker to write the model's files through. */
	static char *paths[] = { "." };
	struct dlv_scope scope = { paths, 1, NULL, 0, NULL, NULL, NULL, NULL };
	char err[512];

	mkdir("ws", 0755);
	mkdir("ws/.autopack", 0755);
	mkdir("ws/.autopack/logs", 0755);
	mkdir("ws/.git", 0755);
	mkdir("ws/.git/hooks", 0755);
	mkdir("ws/sub", 0755);
	CHECK(symlink(".autopack/logs", "ws/out") == 0);
	CHECK_EQ_INT(
	    apply_one(&scope, "out/run__p1__a3.stdout.txt/x.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "symlink out leads into the .autopack directory, which is reserved") &&
	    strstr(err, "(-> .autopack/logs/run__p1__a3.stdout.txt/x.py)"));
	CHECK_EQ_INT(apply_one(&scope, "out/mod.py", err, sizeof err), DLV_ESCOPE);
	/* The workspace itself, reached by a link, with .autopack below it. */
	CHECK(symlink("..", "ws/sub/top") == 0);
	CHECK_EQ_INT(apply_one(&scope, "sub/top/.autopack/logs/y.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "symlink sub/top leads into the .autopack directory"));
	CHECK(symlink("../.git/hooks", "ws/sub/hooks") == 0);
	CHECK_EQ_INT(apply_one(&scope, "sub/hooks/pre-commit", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "symlink sub/hooks leads into the .git directory, which is reserved"));
	/* In any case: a case-folding file system opens .git for .GIT. */
	CHECK_EQ_INT(apply_one(&scope, ".GIT/hooks/pre-commit", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "the .git directory is reserved"));
	CHECK_EQ_INT(apply_one(&scope, ".AUTOPACK/logs/x.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "the .autopack directory is reserved"));
	CHECK(symlink("../.GIT", "ws/sub/upper") == 0);
	mkdir("ws/.GIT", 0755);
	CHECK_EQ_INT(apply_one(&scope, "sub/upper/x.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "symlink sub/upper leads into the .git directory, which is reserved"));
	CHECK(!exists("ws/.GIT/hooks") && !exists("ws/.GIT/x.py") && !exists("ws/.AUTOPACK"));
	CHECK(!exists("ws/.autopack/logs/run__p1__a3.stdout.txt") &&
	    !exists("ws/.autopack/logs/mod.py") && !exists("ws/.autopack/logs/y.py") &&
	    !exists("ws/.git/hooks/pre-commit"));
	/* .autopack below the top is no reserved directory. */
	mkdir("ws/sub/.autopack", 0755);
	CHECK(symlink(".autopack", "ws/sub/own") == 0);
	CHECK_EQ_INT(apply_one(&scope, "sub/own/z.py", err, sizeof err), DLV_OK);
	CHECK(exists("ws/sub/.autopack/z.py"));
}

TEST(worker_deliverables_refuse_symlink_escapes)
{
	struct dlv_scope scope = scope_utils();
	char err[512];

	mkdir("outside", 0755);
	mkdir("ws/utils", 0755);
	CHECK(symlink("../../outside", "ws/utils/evil") == 0);
	CHECK_EQ_INT(apply_one(&scope, "utils/evil/x.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "utils/evil") && strstr(err, "leaves the workspace"));
	/* A file that is itself a symlink out of the workspace. */
	CHECK(symlink("../../outside/target", "ws/utils/h.py") == 0);
	CHECK_EQ_INT(apply_one(&scope, "utils/h.py", err, sizeof err), DLV_ESCOPE);
	/* A symlink that stays in the workspace but leaves the scope. */
	mkdir("ws/private", 0755);
	CHECK(symlink("../private", "ws/utils/priv") == 0);
	CHECK_EQ_INT(apply_one(&scope, "utils/priv/k.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "scope"));
	/* One that stays in scope is followed. */
	mkdir("ws/utils/real", 0755);
	CHECK(symlink("real", "ws/utils/alias") == 0);
	CHECK_EQ_INT(apply_one(&scope, "utils/alias/ok.py", err, sizeof err), DLV_OK);
	CHECK_EQ_STR(slurp("ws/utils/real/ok.py"), "owned\n");
	/* Nothing reached the outside directory. */
	{
		DIR *d = opendir("outside");
		struct dirent *e;
		int n = 0;
		while ((e = readdir(d)) != NULL)
			n += e->d_name[0] != '.';
		closedir(d);
		CHECK_EQ_INT(n, 0);
	}
	CHECK(!exists("ws/private/k.py"));
}

/* Swap ws/utils/flip between a symlink into the workspace and one out of it, until told
 * to stop: another run's check in a workspace runs share. */
static volatile int flip_stop;

static void *flip_link(void *arg)
{
	(void)arg;
	while (!flip_stop) {
		(void)!symlink("real", "ws/utils/flip.in");
		rename("ws/utils/flip.in", "ws/utils/flip");
		(void)!symlink("../../outside", "ws/utils/flip.out");
		rename("ws/utils/flip.out", "ws/utils/flip");
	}
	return NULL;
}

TEST(worker_deliverables_a_symlink_changed_while_checked_is_not_followed)
{
	struct dlv_scope scope = scope_utils();
	uint64_t until = clock_mono_ms() + 3000;
	int ok = 0, refused = 0, n = 0;
	char err[512];
	pthread_t t;
	DIR *d;

	mkdir("outside", 0755);
	mkdir("ws/utils", 0755);
	mkdir("ws/utils/real", 0755);
	CHECK(symlink("real", "ws/utils/flip") == 0);
	CHECK(pthread_create(&t, NULL, flip_link, NULL) == 0);
	while (clock_mono_ms() < until && n == 0) {
		for (int i = 0; i < 200; i++) {
			int rc = apply_one(&scope, "utils/flip/x.py", err, sizeof err);

			ok += rc == DLV_OK;
			refused += rc == DLV_ESCOPE;
		}
		d = opendir("outside");
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			n += e->d_name[0] != '.';
		closedir(d);
	}
	flip_stop = 1;
	pthread_join(t, NULL);
	if (n > 0)
		fprintf(stderr,
		    "%d file(s) written outside the workspace (%d written inside, %d "
		    "refused)\n",
		    n, ok, refused);
	CHECK_EQ_INT(n, 0);
	CHECK(ok > 0 && refused > 0);
}

TEST(worker_deliverables_walk_tells_what_a_component_is)
{
	struct dlv_scope scope = scope_utils();
	char err[512];
	FILE *fp;

	mkdir("ws/utils", 0755);
	CHECK((fp = fopen("ws/utils/plain", "w")) != NULL);
	fclose(fp);
	/* A regular file where a directory should be: in the way, not out of scope. */
	CHECK_EQ_INT(apply_one(&scope, "utils/plain/x.py", err, sizeof err), DLV_ECONFLICT);
	CHECK_EQ_STR(err,
	    "path \"utils/plain/x.py\": utils/plain is a file in the workspace, and this path "
	    "needs it as a directory (an earlier phase of the run, or another program, made it "
	    "so: the run's deliverables overlap); nothing was written");
	CHECK_EQ_INT(
	    dlv_check_path("ws", -1, &scope, "utils/plain/x.py", err, sizeof err), DLV_ECONFLICT);
	/* A directory where the file should be. */
	CHECK_EQ_INT(apply_one(&scope, "utils", err, sizeof err), DLV_ECONFLICT);
	CHECK(strstr(err,
	          "utils is a directory in the workspace, and this path names it as a "
	          "file") != NULL);
	/* A FIFO at the file's own path (a check made it): in the way, never written over. */
	CHECK(mkfifo("ws/utils/fifo.py", 0644) == 0);
	CHECK_EQ_INT(apply_one(&scope, "utils/fifo.py", err, sizeof err), DLV_ECONFLICT);
	CHECK_EQ_STR(err,
	    "path \"utils/fifo.py\": utils/fifo.py is a FIFO in the workspace, not a regular "
	    "file (a check command or another program made it): remove it; nothing was "
	    "written");
	CHECK_EQ_INT(
	    dlv_check_path("ws", -1, &scope, "utils/fifo.py", err, sizeof err), DLV_ECONFLICT);
	/* A symlink in scope to that file: followed, then found not to be a directory. */
	CHECK(symlink("plain", "ws/utils/to_plain") == 0);
	CHECK_EQ_INT(apply_one(&scope, "utils/to_plain/x.py", err, sizeof err), DLV_ECONFLICT);
	CHECK(strstr(err,
	          "utils/to_plain is a symbolic link to something that is not a "
	          "directory") != NULL);
	/* A symlink to nothing. */
	CHECK(symlink("nowhere", "ws/utils/dangling") == 0);
	CHECK_EQ_INT(apply_one(&scope, "utils/dangling/x.py", err, sizeof err), DLV_ESCOPE);
	CHECK(strstr(err, "points to nothing") != NULL);
	/* Missing directories are made, existing ones entered. */
	CHECK_EQ_INT(apply_one(&scope, "utils/new/deeper/x.py", err, sizeof err), DLV_OK);
	CHECK_EQ_INT(apply_one(&scope, "utils/new/deeper/y.py", err, sizeof err), DLV_OK);
	CHECK_EQ_STR(slurp("ws/utils/new/deeper/y.py"), "owned\n");
	CHECK(!exists("ws/utils/plain/x.py") && !exists("ws/utils/nowhere"));
}

TEST(worker_deliverables_check_path_looks_under_the_workspace_it_is_lent)
{
	struct dlv_scope scope = scope_utils();
	char err[512];
	FILE *fp;
	int other;

	mkdir("ws/utils", 0755);
	CHECK((fp = fopen("ws/utils/plain", "w")) != NULL);
	fclose(fp);
	mkdir("other", 0755);
	mkdir("other/utils", 0755);
	mkdir("other/utils/plain", 0755);
	CHECK((other = open("other", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0);
	/* Looked at by its path: the file is in the way. */
	CHECK_EQ_INT(
	    dlv_check_path("ws", -1, &scope, "utils/plain/x.py", err, sizeof err), DLV_ECONFLICT);
	/* Under the directory lent for it: there, a directory, and the path is free. */
	CHECK_EQ_INT(
	    dlv_check_path("ws", other, &scope, "utils/plain/x.py", err, sizeof err), DLV_OK);
	CHECK_EQ_INT(
	    dlv_check_path("ws", other, &scope, "utils/plain", err, sizeof err), DLV_ECONFLICT);
	CHECK(strstr(err, "utils/plain is a directory in the workspace") != NULL);
	/* The lent directory is left open, for the next look. */
	CHECK(fcntl(other, F_GETFD) >= 0);
	CHECK_EQ_INT(dlv_check_path("ws", other, &scope, "utils/new.py", err, sizeof err), DLV_OK);
	CHECK(close(other) == 0);
}

TEST(worker_deliverables_one_refusal_writes_nothing)
{
	struct dlv_scope scope = scope_utils();
	struct dlv_file f[] = { { (char *)"utils/h.py", DLV_CREATE, (char *)"A\n", 2 },
		{ (char *)"../../etc/x", DLV_CREATE, (char *)"B\n", 2 } };
	struct dlv_set set = { f, 2 };
	char err[256];

	CHECK_EQ_INT(dlv_apply("ws", &scope, &set, err, sizeof err), DLV_ESCOPE);
	CHECK(!exists("ws/utils/h.py"));
}

TEST(worker_deliverables_missing_are_named)
{
	struct dlv_scope scope = scope_utils();
	char names[256];

	CHECK_EQ_INT(
	    dlv_missing("ws", scope.deliverables, scope.ndeliverables, NULL, names, sizeof names),
	    2);
	CHECK_EQ_STR(names, "utils/h.py, README.md");
}

TEST(worker_deliverables_missing_trusts_only_files_the_set_wrote)
{
	static char *dl[] = { "./a.py", "b.py", "c/", "d.py" };
	struct dlv_file f[] = {
		{ (char *)"a.py", DLV_CREATE, (char *)"A\n", 2 },
		{ (char *)"b.py", DLV_DELETE, NULL, 0 },
		{ (char *)"c", DLV_CREATE, (char *)"C\n", 2 },
	};
	struct dlv_set written = { f, 3 };
	char names[256];
	FILE *fp;

	mkdir("ws", 0755);
	/* a.py, written by the set, counts as present without a look (here it is gone
	 * again); a deleted file, a directory deliverable the set wrote a file over, and a
	 * deliverable the set does not name are looked for. */
	CHECK_EQ_INT(dlv_missing("ws", dl, 4, &written, names, sizeof names), 3);
	CHECK_EQ_STR(names, "b.py, c/, d.py");
	CHECK_EQ_INT(dlv_missing("ws", dl, 4, NULL, names, sizeof names), 4);
	CHECK((fp = fopen("ws/b.py", "w")) != NULL);
	fclose(fp);
	CHECK(mkdir("ws/c", 0755) == 0);
	CHECK((fp = fopen("ws/d.py", "w")) != NULL);
	fclose(fp);
	CHECK_EQ_INT(dlv_missing("ws", dl, 4, &written, names, sizeof names), 0);
}

TEST(worker_deliverables_read_resolution_is_confined)
{
	char err[256], *p;

	mkdir("ws", 0755);
	mkdir("ws/a", 0755);
	CHECK(symlink("/etc/hostname", "ws/a/link") == 0);
	close(open("ws/a/f.txt", O_CREAT | O_WRONLY, 0644));
	p = dlv_resolve_read("ws", "a/f.txt", err, sizeof err);
	CHECK(p != NULL);
	free(p);
	CHECK(dlv_resolve_read("ws", "a/link", err, sizeof err) == NULL);
	CHECK(strstr(err, "leaves the workspace"));
	CHECK(dlv_resolve_read("ws", "../ws/a/f.txt", err, sizeof err) == NULL);
	CHECK(dlv_resolve_read("ws", "a", err, sizeof err) == NULL);
}

TEST(dlv_count_written_counts_created_or_modified_deliverables)
{
	struct dlv_file files[] = {
		{ "./src/a.py", DLV_CREATE, "x", 1 },
		{ "src//b.py", DLV_MODIFY, "y", 1 },
		{ "src/c.py", DLV_DELETE, NULL, 0 },
		{ "src/other.py", DLV_CREATE, "z", 1 },
	};
	struct dlv_set set = { files, 4 };
	char *dels[] = { "src/a.py", "src/b.py", "src/c.py", "docs/d.md" };

	CHECK_EQ_INT(dlv_count_written(&set, dels, 4), 2);
	CHECK_EQ_INT(dlv_count_written(&set, dels + 2, 2), 0);
	CHECK_EQ_INT(dlv_count_written(&set, dels, 0), 0);
}

/* A heartbeat that notes, at each call, how many of ws/utils/b0.py .. b3.py exist. */
static void beat_count(void *ctx)
{
	int *seen = ctx, n = 0;
	char path[64];
	struct stat st;

	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "ws/utils/b%d.py", i);
		n += stat(path, &st) == 0;
	}
	seen[++seen[0]] = n;
}

TEST(worker_deliverables_say_alive_between_files_not_after_the_last)
{
	/* The caller hears between files, each synced and in place by then; after the last
	 * one the caller's own next word (its result, or a heartbeat before a check) follows
	 * at once. */
	static char *paths[] = { "utils/" };
	struct dlv_file f[] = { { (char *)"utils/b0.py", DLV_CREATE, (char *)"0\n", 2 },
		{ (char *)"utils/b1.py", DLV_CREATE, (char *)"1\n", 2 },
		{ (char *)"utils/b2.py", DLV_CREATE, (char *)"2\n", 2 },
		{ (char *)"utils/b3.py", DLV_CREATE, (char *)"3\n", 2 } };
	int seen[8] = { 0 };
	struct dlv_scope scope = { paths, 1, NULL, 0, NULL, beat_count, seen, NULL };
	struct dlv_set set = { f, 4 };
	char err[256];

	mkdir("ws", 0755);
	CHECK_EQ_INT(dlv_apply("ws", &scope, &set, err, sizeof err), DLV_OK);
	CHECK_EQ_INT(seen[0], 3);
	CHECK_EQ_INT(seen[1], 1);
	CHECK_EQ_INT(seen[2], 2);
	CHECK_EQ_INT(seen[3], 3);
	seen[0] = 0;
	set.n = 1;
	CHECK_EQ_INT(dlv_apply("ws", &scope, &set, err, sizeof err), DLV_OK);
	CHECK_EQ_INT(seen[0], 0);
}
