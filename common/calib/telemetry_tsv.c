/* The sample TSV: one header line naming the columns, then one builder call a line
 * (tests/data/autopack-v2-telemetry-samples.tsv). Parsed all or nothing. */
#include "common/calib/telemetry.h"
#include "common/util.h"
#include "common/utf8.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TSV_MAX_COLS 32
#define TSV_NAME_MAX 128       /* bytes in a category, complexity, model or stop reason */
#define TSV_INT_MAX 1000000000 /* no token count or deliverable count above this */
#define TSV_FILE_MAX (64u << 20)
#define TELEM_ID_MAX 128
#define TSV_SHOWN 41 /* a field quoted in a message: at most 40 bytes and its NUL */

enum tsv_col {
	TSV_TIMESTAMP,
	TSV_CATEGORY,
	TSV_COMPLEXITY,
	TSV_DELIVERABLES,
	TSV_PREDICTED,
	TSV_ACTUAL,
	TSV_BUDGET,
	TSV_SUCCESS,
	TSV_TRUNCATED,
	TSV_STOP_REASON,
	TSV_MODEL,
	TSV_MAX_TOKENS, /* optional */
	TSV_NCOLS,
};

static const char *const tsv_names[TSV_NCOLS] = {
	"timestamp",
	"category",
	"complexity",
	"deliverables",
	"predicted_output",
	"actual_output",
	"selected_budget",
	"success",
	"truncated",
	"stop_reason",
	"model",
	"actual_max_tokens",
};

/* One line being parsed: where it is, its fields, and the header's column map. */
struct tsv_line {
	const char *source;
	size_t lineno;
	char *fields[TSV_MAX_COLS];
	size_t nfields;
	int pos[TSV_NCOLS]; /* field index of each column, -1 if absent */
	char *err;
	size_t errlen;
};

/* Format "SOURCE:LINE: column NAME: message" into the error buffer; returns -1. */
static int __attribute__((format(printf, 3, 4)))
tsv_fail(struct tsv_line *l, int c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (c >= 0)
		snprintf(l->err, l->errlen, "%s:%zu: column %s: %s", l->source, l->lineno,
		    tsv_names[c], msg);
	else if (l->lineno > 0)
		snprintf(l->err, l->errlen, "%s:%zu: %s", l->source, l->lineno, msg);
	else
		snprintf(l->err, l->errlen, "%s: %s", l->source, msg);
	return -1;
}

/* Split a line (NUL-terminated, modified in place) at tabs; -1 if it has too many. */
static int tsv_split(struct tsv_line *l, char *line)
{
	l->nfields = 0;
	for (;;) {
		char *tab = strchr(line, '\t');

		if (l->nfields == TSV_MAX_COLS)
			return tsv_fail(l, -1, "more than %d tab-separated fields", TSV_MAX_COLS);
		l->fields[l->nfields++] = line;
		if (tab == NULL)
			return 0;
		*tab = '\0';
		line = tab + 1;
	}
}

/* Map the header's column names; every column but actual_max_tokens is required. */
static int tsv_header(struct tsv_line *l)
{
	for (int c = 0; c < TSV_NCOLS; c++)
		l->pos[c] = -1;
	for (size_t i = 0; i < l->nfields; i++) {
		int c;

		for (c = 0; c < TSV_NCOLS && strcmp(l->fields[i], tsv_names[c]) != 0; c++)
			;
		if (c == TSV_NCOLS)
			return tsv_fail(l, -1,
			    "unknown column '%s' in the header (expected "
			    "timestamp, category, complexity, deliverables, predicted_output, "
			    "actual_output, selected_budget, success, truncated, stop_reason, "
			    "model and optionally actual_max_tokens)",
			    l->fields[i]);
		if (l->pos[c] >= 0)
			return tsv_fail(
			    l, -1, "column '%s' appears twice in the header", tsv_names[c]);
		l->pos[c] = (int)i;
	}
	for (int c = 0; c < TSV_MAX_TOKENS; c++)
		if (l->pos[c] < 0)
			return tsv_fail(l, -1, "the header has no column '%s'", tsv_names[c]);
	return 0;
}

/* The text of column c on this line, or NULL if the column is absent. */
static const char *tsv_get(const struct tsv_line *l, enum tsv_col c)
{
	return l->pos[c] >= 0 ? l->fields[l->pos[c]] : NULL;
}

/* The field s as a message quotes it, in buf (TSV_SHOWN bytes): at most its first 40 bytes,
 * cut at the start of a character, never inside one (a reader of UTF-8 would drop the
 * message's text, or show a U+FFFD). Returns buf. */
static const char *tsv_shown(const char *s, char *buf)
{
	return utf8_one_line(buf, s, TSV_SHOWN);
}

/* Parse a non-negative integer column into *out. */
static int tsv_int(struct tsv_line *l, enum tsv_col c, int64_t *out)
{
	const char *s = tsv_get(l, c);
	char shown[TSV_SHOWN];
	int64_t v = 0;

	if (s[0] == '\0')
		return tsv_fail(l, c, "empty; expected a non-negative integer");
	for (const char *p = s; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return tsv_fail(
			    l, c, "expected a non-negative integer, got '%s'", tsv_shown(s, shown));
		v = v * 10 + (*p - '0');
		if (v > TSV_INT_MAX)
			return tsv_fail(
			    l, c, "%s is larger than %d", tsv_shown(s, shown), TSV_INT_MAX);
	}
	*out = v;
	return 0;
}

/* Parse a boolean column: true/false or 1/0, any case. */
static int tsv_bool(struct tsv_line *l, enum tsv_col c, bool *out)
{
	const char *s = tsv_get(l, c);
	char shown[TSV_SHOWN];

	if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = true;
	else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = false;
	else
		return tsv_fail(l, c, "expected true or false, got '%s'", tsv_shown(s, shown));
	return 0;
}

/* Copy a text column: printable, at most TSV_NAME_MAX - 1 bytes, non-empty unless
 * `nullable` (then empty gives NULL). */
static int tsv_text(struct tsv_line *l, enum tsv_col c, bool nullable, char **out)
{
	const char *s = tsv_get(l, c);
	size_t n = strlen(s), bad;

	*out = NULL;
	if (n == 0)
		return nullable ? 0 : tsv_fail(l, c, "empty");
	if (n >= TSV_NAME_MAX)
		return tsv_fail(l, c, "longer than %d bytes", TSV_NAME_MAX - 1);
	for (size_t i = 0; i < n; i++)
		if (iscntrl((unsigned char)s[i]))
			return tsv_fail(l, c, "contains a control character");
	if ((bad = utf8_check(s, n)) != n)
		return tsv_fail(l, c, "not valid UTF-8 (byte %zu)", bad + 1);
	*out = xstrdup(s);
	return 0;
}

/* Check "YYYY-MM-DDTHH:MM:SS" (or a space for T), then an optional fraction and an
 * optional Z or ±HH:MM, naming a time that exists (month 1-12, a day of that month,
 * hour 0-23, minute and second 0-59, offset under 24 h) in the years a database
 * timestamp holds once in UTC; refuses the line otherwise. */
static int tsv_timestamp(struct tsv_line *l, char **out)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	const char *s = tsv_get(l, TSV_TIMESTAMP), *p = s + sizeof shape - 1;
	bool ok = strlen(s) >= sizeof shape - 1 && strlen(s) < 40;
	char stamp[32], shown[TSV_SHOWN];

	for (size_t i = 0; ok && i < sizeof shape - 1; i++) {
		if (shape[i] == 'd')
			ok = isdigit((unsigned char)s[i]);
		else if (shape[i] == 'T')
			ok = s[i] == 'T' || s[i] == ' ';
		else
			ok = s[i] == shape[i];
	}
	if (ok && *p == '.') {
		ok = isdigit((unsigned char)*++p);
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (ok && (*p == '+' || *p == '-'))
		ok = isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) && p[3] == ':' &&
		    isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) &&
		    (p += 6, *p == '\0');
	else if (ok && *p == 'Z')
		ok = p[1] == '\0';
	else if (ok)
		ok = *p == '\0';
	if (ok && time_db_parse(s, stamp) != 0)
		return tsv_fail(l, TSV_TIMESTAMP,
		    "'%s' is not a time that exists in the years %04d to %04d (UTC)",
		    tsv_shown(s, shown), TIME_DB_YEAR_MIN, TIME_DB_YEAR_MAX);
	if (!ok)
		return tsv_fail(l, TSV_TIMESTAMP,
		    "expected a UTC time like "
		    "2025-12-23T22:06:12Z, got '%s'",
		    tsv_shown(s, shown));
	*out = xstrdup(s);
	return 0;
}

/* Parse one data line into a new sample of `out`. */
static int tsv_sample(struct tsv_line *l, size_t ncols, struct telem_samples *out)
{
	struct telem_sample *s;
	int64_t max_tokens = -1;

	if (l->nfields != ncols) {
		size_t i;

		if (l->nfields > ncols)
			return tsv_fail(l, -1, "%zu tab-separated fields, the header has %zu",
			    l->nfields, ncols);
		for (i = 0; i < TSV_NCOLS && l->pos[i] != (int)l->nfields; i++)
			;
		return tsv_fail(l, i < TSV_NCOLS ? (int)i : -1,
		    "missing (the line has %zu "
		    "tab-separated fields, the header %zu)",
		    l->nfields, ncols);
	}
	s = telem_samples_add(out);
	if (tsv_timestamp(l, &s->timestamp) != 0 ||
	    tsv_text(l, TSV_CATEGORY, false, &s->category) != 0 ||
	    tsv_text(l, TSV_COMPLEXITY, false, &s->complexity) != 0 ||
	    tsv_int(l, TSV_DELIVERABLES, &s->deliverable_count) != 0 ||
	    tsv_int(l, TSV_PREDICTED, &s->predicted) != 0 ||
	    tsv_int(l, TSV_ACTUAL, &s->actual) != 0 ||
	    tsv_int(l, TSV_BUDGET, &s->selected_budget) != 0 ||
	    tsv_bool(l, TSV_SUCCESS, &s->success) != 0 ||
	    tsv_bool(l, TSV_TRUNCATED, &s->truncated) != 0 ||
	    tsv_text(l, TSV_STOP_REASON, true, &s->stop_reason) != 0 ||
	    tsv_text(l, TSV_MODEL, false, &s->model) != 0)
		return -1;
	if (l->pos[TSV_MAX_TOKENS] >= 0 && tsv_get(l, TSV_MAX_TOKENS)[0] != '\0' &&
	    tsv_int(l, TSV_MAX_TOKENS, &max_tokens) != 0)
		return -1;
	s->actual_max_tokens = max_tokens;
	return 0;
}

/* Parse the whole text; on failure free what was parsed. */
int telem_tsv_parse(const char *text, size_t len, const char *source, struct telem_samples *out,
    char *err, size_t errlen)
{
	struct tsv_line l = { .source = source, .err = err, .errlen = errlen };
	size_t bom = utf8_bom_len(text, len);
	char *buf = xmalloc(len - bom + 1);
	char *line = buf, *end = buf + len - bom;
	size_t ncols = 0;
	int rc = 0;

	memset(out, 0, sizeof *out);
	text += bom;
	len -= bom;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		const char *nul = memchr(buf, '\0', len);

		for (const char *p = buf; p < nul; p++)
			l.lineno += *p == '\n';
		l.lineno++;
		rc = tsv_fail(&l, -1, "contains a NUL byte; not a text file");
		end = line;
	}
	while (rc == 0 && line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char *stop = nl != NULL ? nl : end;

		l.lineno++;
		*stop = '\0';
		if (stop > line && stop[-1] == '\r')
			stop[-1] = '\0';
		if (l.lineno == 1)
			rc = tsv_split(&l, line) != 0 ? -1 : tsv_header(&l);
		else if (line[strspn(line, " \t")] != '\0')
			rc = tsv_split(&l, line) != 0 ? -1 : tsv_sample(&l, ncols, out);
		if (l.lineno == 1)
			ncols = l.nfields;
		line = stop + 1;
	}
	if (rc == 0 && l.lineno == 0)
		rc = tsv_fail(&l, -1, "empty file; expected a header line");
	if (rc == 0 && out->n == 0) {
		l.lineno = 0;
		rc = tsv_fail(&l, -1, "no samples after the header");
	}
	free(buf);
	if (rc != 0)
		telem_samples_free(out);
	return rc;
}

/* Read a TSV file whole and parse it. */
int telem_tsv_read_file(const char *path, struct telem_samples *out, char *err, size_t errlen)
{
	char *text;
	size_t len;
	bool regular;
	int rc = file_read_all(path, TSV_FILE_MAX, false, &text, &len, &regular);

	memset(out, 0, sizeof *out);
	if (rc == -EFBIG)
		return errbuf_fail(err, errlen, "%s: larger than %u MiB", path, TSV_FILE_MAX >> 20);
	if (rc != 0)
		return errbuf_fail(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
	rc = telem_tsv_parse(text, len, path, out, err, errlen);
	free(text);
	return rc;
}

/* Read an open descriptor to its end and parse it. */
int telem_tsv_read_fd(
    int fd, const char *source, struct telem_samples *out, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc = fd_read_all(fd, TSV_FILE_MAX, &text, &len);

	memset(out, 0, sizeof *out);
	if (rc == -EFBIG)
		return errbuf_fail(
		    err, errlen, "%s: larger than %u MiB", source, TSV_FILE_MAX >> 20);
	if (rc != 0)
		return errbuf_fail(err, errlen, "%s: cannot read: %s", source, strerror(-rc));
	rc = telem_tsv_parse(text, len, source, out, err, errlen);
	free(text);
	return rc;
}

/* Whether c may appear in an id. */
static bool telem_id_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

/* Check an id against the plan rules. */
bool telem_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > TELEM_ID_MAX || id[0] == '.' || id[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!telem_id_char(id[i]))
			return false;
	return true;
}

/* Derive "imported-<stem>" from a file path. */
char *telem_import_run_id(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;
	size_t n;
	char *id;

	base = base != NULL ? base + 1 : path;
	dot = strrchr(base, '.');
	n = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base);
	if (n > TELEM_ID_MAX - 9)
		n = TELEM_ID_MAX - 9;
	id = xasprintf("imported-%.*s", (int)n, base);
	for (char *p = id + 9; *p != '\0'; p++)
		if (!telem_id_char(*p))
			*p = '-';
	if (n == 0)
		strcpy(id + 8, "");
	return id;
}
