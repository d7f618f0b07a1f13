/* A log line holds its whole message, however long, on one line, in text and in JSON. */
#include "common/log.h"
#include "common/util.h"
#include "tests/unit/test.h"

/* Read the file at `path` whole (aborts when it cannot). */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = xmalloc(1 << 20);
	size_t n;

	CHECK(f != NULL);
	n = fread(s, 1, (1 << 20) - 1, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* A message of n copies of 'x'. */
static char *long_text(size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, 'x', n);
	s[n] = '\0';
	return s;
}

TEST(log_line_holds_short_and_long_messages)
{
	size_t sizes[] = { 0, 10, 1022, 1023, 1024, 1025, 5000, 70000 };
	char *text, *at;

	log_init("t", LOG_DEBUG);
	log_configure(LOG_DEBUG, LOG_FORMAT_TEXT);
	CHECK_EQ_INT(log_open("text.log"), 0);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		char *m = long_text(sizes[i]);

		log_msg(LOG_INFO, "%zu:%s|", sizes[i], m);
		free(m);
	}
	log_msg(LOG_WARN, "a\nb\rc");
	text = read_text("text.log");
	at = text;
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		char *eol = strchr(at, '\n'), head[32];
		char *msg = strstr(at, " info: ");

		CHECK(eol != NULL && msg != NULL && msg < eol);
		msg += strlen(" info: ");
		snprintf(head, sizeof head, "%zu:", sizes[i]);
		CHECK(strncmp(msg, head, strlen(head)) == 0);
		msg += strlen(head);
		CHECK_EQ_INT(eol - msg, sizes[i] + 1);
		CHECK(strspn(msg, "x") == sizes[i] && msg[sizes[i]] == '|');
		at = eol + 1;
	}
	CHECK(strstr(at, " warn: a\\nb\\rc\n") != NULL);
	free(text);
}

TEST(log_json_line_holds_a_long_message)
{
	char *m = long_text(3000), *text, *want;

	log_init("t", LOG_DEBUG);
	log_configure(LOG_DEBUG, LOG_FORMAT_JSON);
	CHECK_EQ_INT(log_open("json.log"), 0);
	log_about(LOG_INFO, &(struct log_about){ .run = "r\"1" }, "%s\t\"", m);
	text = read_text("json.log");
	want = xasprintf("\"msg\":\"%s\\t\\\"\",\"run\":\"r\\\"1\"}\n", m);
	CHECK(strstr(text, want) != NULL);
	free(want);
	free(text);
	free(m);
}
