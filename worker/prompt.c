/* Building the builder prompt from the phase and its context files. */
#include "worker/prompt.h"
#include "common/strbuf.h"
#include "worker/deliverables.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char prompt_system[] =
    "You are the builder in an automated build pipeline. You receive one phase of work "
    "and write the files it asks for.\n"
    "Answer with exactly one JSON document and nothing else:\n"
    "{\"files\": [{\"path\": \"relative/path\", \"mode\": \"create\" | \"modify\" | "
    "\"delete\", \"new_content\": \"the complete file content\"}]}\n"
    "Rules: paths are relative to the workspace root; write every deliverable in full; "
    "write only the deliverables and files under the scope paths; never use absolute paths "
    "or \"..\".";

/* Append `a`, the string `s` ("(null)" for NULL, as printf writes it) and `z`: the
 * prompt's fixed lines are put together without a format. */
static void pb_put3(struct strbuf *b, const char *a, const char *s, const char *z)
{
	strbuf_puts(b, a);
	strbuf_puts(b, s != NULL ? s : "(null)");
	strbuf_puts(b, z);
}

/* Append a list as "- item" lines. */
static void pb_list(struct strbuf *b, const char *title, const struct proto_strlist *l)
{
	size_t i;

	pb_put3(b, "\n## ", title, "\n");
	if (l->n == 0)
		strbuf_puts(b, "(none)\n");
	for (i = 0; i < l->n; i++)
		pb_put3(b, "- ", l->items[i], "\n");
}

/* Whether `fd` is open on the regular file at `abs` (a path resolved to hold no symbolic
 * link), as /proc/self/fd says, and not on a file elsewhere: a component of `abs` that was
 * made a link after it was resolved (another run's check, in a workspace runs share) leads
 * there. Without /proc it is taken as that file. */
static bool pb_opened_is(int fd, const char *abs)
{
	char link[64], where[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if ((n = readlink(link, where, sizeof where - 1)) < 0)
		return true;
	where[n] = '\0';
	return strcmp(where, abs) == 0;
}

/* Append the workspace file `path`, resolved to `abs` (freed here), as a fenced block,
 * within the remaining budget. */
static void pb_file_at(
    struct strbuf *b, char *abs, const char *path, size_t *budget, struct prompt *p)
{
	size_t cap, len = 0;
	char *data;
	bool cut;
	int fd;

	/* Not waited on, nor followed: `abs` holds no link, unless one was put there since. */
	fd = open(abs, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && !pb_opened_is(fd, abs)) {
		close(fd);
		fd = -1;
		errno = ESTALE;
	}
	free(abs);
	if (fd < 0) {
		strbuf_printf(b, "\n### %s\n(not included: %s)\n", path,
		    errno == ESTALE ? "it was changed while it was read" : strerror(errno));
		p->files_skipped++;
		return;
	}
	cap = *budget < PROMPT_FILE_MAX ? *budget : PROMPT_FILE_MAX;
	/* One byte past the cap tells a file cut from one that ends there. */
	data = xmalloc(cap + 2);
	while (len <= cap) {
		ssize_t r = read(fd, data + len, cap + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	cut = len > cap;
	if (cut)
		len = cap;
	data[len] = '\0';
	if (memchr(data, '\0', len) != NULL) {
		strbuf_printf(b, "\n### %s\n(not included: binary file)\n", path);
		p->files_skipped++;
	} else {
		strbuf_printf(b, "\n### %s\n```\n", path);
		strbuf_put(b, data, len);
		if (cut)
			strbuf_printf(b, "\n[cut after %zu bytes]", len);
		strbuf_printf(b, "\n```\n");
		*budget -= len;
		p->files_included++;
	}
	free(data);
}

/* Append one workspace file as a fenced block, within the remaining budget, or say why it
 * is not included. */
static void pb_file(
    struct strbuf *b, const char *workspace, const char *path, size_t *budget, struct prompt *p)
{
	char err[512];
	char *abs = dlv_resolve_read(workspace, path, err, sizeof err);

	if (abs == NULL) {
		strbuf_printf(b, "\n### %s\n(not included: %s)\n", path, err);
		p->files_skipped++;
		return;
	}
	pb_file_at(b, abs, path, budget, p);
}

/* Whether the workspace-relative `path` may name a file: false only when it certainly
 * does not (a component is missing), which spares resolving it. `seen` (nullable) is
 * what the estimate found at the deliverable: when it looked at this very path and found
 * it absent, that answers without looking again. */
static bool pb_may_exist(const char *workspace, const char *path, const struct est_seen *seen)
{
	char *full;
	struct stat st;
	bool maybe;

	if (seen != NULL && seen->verbatim && seen->state == EST_SEEN_ABSENT)
		return false;
	full = xasprintf("%s/%s", workspace, path);
	maybe = stat(full, &st) == 0 || (errno != ENOENT && errno != ENOTDIR);
	free(full);
	return maybe;
}

void prompt_build(const struct proto_job *job, const struct est_output *est, struct prompt *out)
{
	const struct proto_phase *ph = &job->phase;
	struct strbuf b = { 0 };
	size_t budget = PROMPT_CONTEXT_MAX, i;
	bool header = false;
	char num[24];

	memset(out, 0, sizeof *out);
	out->system = xstrdup(prompt_system);
	pb_put3(&b, "# Phase: ", ph->name != NULL ? ph->name : "(unnamed)", "\n");
	pb_put3(&b, "Run: ", job->run_id, "\n");
	pb_put3(&b, "Phase id: ", job->phase_id, "\n");
	pb_put3(&b, "Category: ", ph->task_category != NULL ? ph->task_category : "(unset)", "\n");
	pb_put3(&b, "Complexity: ", ph->complexity != NULL ? ph->complexity : "(unset)", "\n");
	snprintf(num, sizeof num, "%lld", (long long)job->attempt_number);
	pb_put3(&b, "Attempt: ", num, "\n");
	pb_put3(&b, "\n## Description\n",
	    ph->description != NULL && ph->description[0] != '\0' ? ph->description : "(none)",
	    "\n");
	pb_list(&b, "Deliverables", &ph->deliverables);
	pb_list(&b, "Scope", &ph->paths);
	if (ph->check_command != NULL && ph->check_command[0] != '\0')
		strbuf_printf(&b,
		    "\n## Check\nAfterwards this command must exit 0 in the workspace: "
		    "%s\n",
		    ph->check_command);
	if (job->workspace == NULL) {
		out->user = b.s;
		return;
	}
	if (ph->read_only_context.n > 0) {
		strbuf_printf(&b, "\n## Read-only context\n");
		for (i = 0; i < ph->read_only_context.n; i++)
			pb_file(&b, job->workspace, ph->read_only_context.items[i], &budget, out);
	}
	for (i = 0; i < ph->deliverables.n; i++) {
		char err[64];
		char *abs;

		if (!pb_may_exist(job->workspace, ph->deliverables.items[i],
		        est != NULL && i < EST_SEEN_MAX ? &est->seen[i] : NULL))
			continue;
		abs = dlv_resolve_read(job->workspace, ph->deliverables.items[i], err, sizeof err);
		if (abs == NULL)
			continue;
		if (!header)
			strbuf_printf(&b, "\n## Current content of existing deliverables\n");
		header = true;
		pb_file_at(&b, abs, ph->deliverables.items[i], &budget, out);
	}
	out->user = b.s;
}

void prompt_free(struct prompt *p)
{
	free(p->system);
	free(p->user);
	p->system = p->user = NULL;
}
