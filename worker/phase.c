/* One phase attempt, end to end (see phase.h). */
#include "worker/phase.h"
#include "common/estimate/estimator.h"
#include "common/fingerprint/fingerprint.h"
#include "common/log.h"
#include "common/relpath.h"
#include "common/sysdirs.h"
#include "common/util.h"
#include "common/utf8.h"
#include "worker/check.h"
#include "worker/deliverables.h"
#include "worker/events.h"
#include "worker/keys.h"
#include "worker/llm.h"
#include "worker/prompt.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The attempt in progress. */
struct phase_ctx {
	const struct proto_job *job;
	const struct phase_hooks *hooks;
	const struct est_coefs *coefs; /* phase_coefs's */
	struct est_output est;
	int budget;
	uint64_t start;
	uint64_t deadline; /* clock_mono_ms() value; 0: none */
	const char *api_key;
	const char *provider;
	int call_max_tokens; /* of the builder call being made */
	bool link_lost;
	bool interrupted; /* a stop signal from outside killed the check command */
	int samples;      /* clean v2 samples */
	enum fp_stage stage;
	enum outcome outcome; /* OUTCOME_NONE while running */
	enum reason reason;
	char message[PHASE_MESSAGE_MAX + 1];
	bool boundary;
	int ws_fd; /* the workspace, open until the call (phase_ws_open); -1: not open */
};

/* Send one event unless the link is already gone. */
static void phase_emit(struct phase_ctx *pc, struct proto_event *ev)
{
	if (pc->link_lost || pc->hooks == NULL || pc->hooks->emit == NULL)
		return;
	if (pc->hooks->emit(pc->hooks->ctx, ev) != 0)
		pc->link_lost = true;
}

/* Emit a log event with a formatted message (key scrubbed, bytes that are not UTF-8 as
 * U+FFFD). The message is formatted on the stack, and copied only to mask the key or to
 * replace bad bytes, when it holds either; one longer than the stack buffer is formatted
 * on the heap. Aborts when out of memory. */
__attribute__((format(printf, 3, 4))) static void phase_log(
    struct phase_ctx *pc, const char *level, const char *fmt, ...)
{
	char stack[1024], *heap = NULL, *scrubbed = NULL, *clean = NULL, *msg = stack;
	struct proto_event ev;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(stack, sizeof stack, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	if ((size_t)n >= sizeof stack) {
		va_start(ap, fmt);
		if (vasprintf(&heap, fmt, ap) < 0)
			abort();
		va_end(ap);
		msg = heap;
	}
	if (pc->api_key != NULL && strlen(pc->api_key) >= LLM_KEY_SCRUB_MIN &&
	    strstr(msg, pc->api_key) != NULL)
		msg = scrubbed = llm_scrubbed(msg, pc->api_key);
	if (utf8_bad(msg) >= 0)
		msg = clean = utf8_clean(msg, SIZE_MAX);
	ev_log_fill(&ev, level, msg);
	phase_emit(pc, &ev);
	free(clean);
	free(scrubbed);
	free(heap);
}

/* Set the result's message from `fmt` and `ap`: bytes that are not UTF-8 (a check's
 * output) as U+FFFD, since the result could not be sent otherwise, and one longer than
 * PHASE_MESSAGE_MAX keeping its start and its end (str_elide). */
__attribute__((format(printf, 2, 0))) static void phase_message_v(
    struct phase_ctx *pc, const char *fmt, va_list ap)
{
	char *full;
	int n = vasprintf(&full, fmt, ap);

	if (n < 0) {
		strlcpy_ap(pc->message, "out of memory formatting the message", sizeof pc->message);
	} else {
		char *clean = utf8_clean(full, SIZE_MAX);

		str_elide(pc->message, clean, sizeof pc->message);
		free(clean);
		free(full);
	}
	llm_scrub(pc->message, sizeof pc->message, pc->api_key);
}

/* End the attempt with `outcome`, `reason` and a formatted message (phase_message_v). */
__attribute__((format(printf, 5, 6))) static void phase_end(struct phase_ctx *pc,
    enum outcome outcome, enum reason reason, enum fp_stage stage, const char *fmt, ...)
{
	va_list ap;

	pc->outcome = outcome;
	pc->reason = reason;
	pc->stage = stage;
	va_start(ap, fmt);
	phase_message_v(pc, fmt, ap);
	va_end(ap);
}

/* Give an attempt that goes on (a success) a formatted message (phase_message_v). */
__attribute__((format(printf, 2, 3))) static void phase_note(
    struct phase_ctx *pc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	phase_message_v(pc, fmt, ap);
	va_end(ap);
}

/* Milliseconds left before the deadline (INT64_MAX without one). */
static int64_t phase_left(const struct phase_ctx *pc)
{
	if (pc->deadline == 0)
		return INT64_MAX;
	return (int64_t)pc->deadline - (int64_t)clock_mono_ms();
}

/* End as a timeout when the deadline has passed before `what`. Returns true if so. */
static bool phase_expired(struct phase_ctx *pc, const char *what)
{
	if (phase_left(pc) > 0)
		return false;
	phase_end(pc, OUTCOME_TIMEOUT, REASON_TIMEOUT, pc->stage,
	    "the attempt's deadline passed before %s", what);
	return true;
}

static void phase_heartbeat(void *ctx)
{
	struct phase_ctx *pc = ctx;

	if (pc->hooks != NULL && pc->hooks->heartbeat != NULL)
		pc->hooks->heartbeat(pc->hooks->ctx);
}

/* Announce one HTTP try before it is sent; nonzero (nothing sent) when the supervisor
 * cannot take the announcement. */
static int phase_on_send(void *ctx, int try_number)
{
	struct phase_ctx *pc = ctx;
	struct proto_event ev;

	ev_request_fill(&ev, pc->provider, pc->job->llm.model, pc->call_max_tokens, try_number);
	phase_emit(pc, &ev);
	return pc->link_lost ? -1 : 0;
}

/* Report one HTTP try: a usage event, and a warning for a failed one. */
static void phase_on_try(void *ctx, const struct llm_try *t)
{
	struct phase_ctx *pc = ctx;
	struct proto_event ev;

	ev_usage_fill(&ev, pc->provider, pc->job->llm.model, t);
	phase_emit(pc, &ev);
	if (t->error_class != NULL)
		phase_log(pc, "warn", "LLM try %d failed (%s): %s", t->try_number, t->error_class,
		    t->error != NULL ? t->error : "");
}

/* The coefficients built for the last job, with what they were built from: the jobs of
 * a session carry the same set, which is then built once, not for every attempt. */
static struct {
	bool valid;
	uint64_t version;
	struct proto_coef *rows; /* copies */
	size_t n;
	char *fit_json;
	struct est_coefs coefs;
} phase_coefs;

/* Whether two nullable strings are equal. */
static bool phase_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether phase_coefs were built from the job's coefficient set. */
static bool phase_coefs_match(const struct proto_job *job)
{
	if (!phase_coefs.valid || phase_coefs.version != job->coef_version ||
	    phase_coefs.n != job->ncoefs || !phase_same(phase_coefs.fit_json, job->fit_json))
		return false;
	for (size_t i = 0; i < job->ncoefs; i++)
		if (!phase_same(phase_coefs.rows[i].category, job->coefs[i].category) ||
		    !phase_same(phase_coefs.rows[i].complexity, job->coefs[i].complexity) ||
		    phase_coefs.rows[i].overhead != job->coefs[i].overhead)
			return false;
	return true;
}

/* Forget what phase_coefs were built from. */
static void phase_coefs_forget(void)
{
	for (size_t i = 0; i < phase_coefs.n; i++) {
		free(phase_coefs.rows[i].category);
		free(phase_coefs.rows[i].complexity);
	}
	free(phase_coefs.rows);
	free(phase_coefs.fit_json);
	phase_coefs.rows = NULL;
	phase_coefs.fit_json = NULL;
	phase_coefs.n = 0;
	phase_coefs.valid = false;
}

/* Build phase_coefs from the job's set (the defaults, its rows, its fit) unless they
 * already are. Returns 0, or -1 with `err` saying what in the set is wrong. */
static int phase_coefs_build(const struct proto_job *job, char *err, size_t errlen)
{
	struct est_coefs *c = &phase_coefs.coefs;

	if (phase_coefs_match(job))
		return 0;
	phase_coefs_forget();
	est_coefs_default(c);
	if (job->ncoefs > 0 || job->coef_version > 0) {
		struct est_coef_row *rows = xcalloc(job->ncoefs + 1, sizeof *rows);
		int rc;

		for (size_t i = 0; i < job->ncoefs; i++)
			rows[i] = (struct est_coef_row){ job->coefs[i].category,
				job->coefs[i].complexity, job->coefs[i].overhead };
		rc = est_coefs_apply(c, rows, job->ncoefs,
		    job->coef_version > 0 ? job->coef_version : 1, err, errlen);
		free(rows);
		if (rc < 0)
			return -1;
	}
	if (job->fit_json != NULL && est_fit_from_json(job->fit_json, &c->fit, err, errlen) != 0)
		return -1;
	phase_coefs.rows = xcalloc(job->ncoefs + 1, sizeof *phase_coefs.rows);
	for (size_t i = 0; i < job->ncoefs; i++) {
		phase_coefs.rows[i] = job->coefs[i];
		phase_coefs.rows[i].category = job->coefs[i].category != NULL ?
		    xstrdup(job->coefs[i].category) :
		    NULL;
		phase_coefs.rows[i].complexity = job->coefs[i].complexity != NULL ?
		    xstrdup(job->coefs[i].complexity) :
		    NULL;
	}
	phase_coefs.n = job->ncoefs;
	phase_coefs.version = job->coef_version;
	phase_coefs.fit_json = job->fit_json != NULL ? xstrdup(job->fit_json) : NULL;
	phase_coefs.valid = true;
	return 0;
}

/* Set up coefficients, estimate and budget. Returns false (attempt ended) on a bad job. */
static bool phase_estimate(struct phase_ctx *pc)
{
	const struct proto_job *job = pc->job;
	struct est_input in = {
		.deliverables = job->phase.deliverables.items,
		.n_deliverables = job->phase.deliverables.n,
		.category = job->phase.task_category,
		.complexity = job->phase.complexity,
		.scope_paths = job->phase.paths.items,
		.n_scope_paths = job->phase.paths.n,
		.description = job->phase.description,
	};
	char err[256];

	if (phase_coefs_build(job, err, sizeof err) != 0) {
		phase_end(pc, OUTCOME_FAILED, REASON_INVALID_JOB, FP_STAGE_BEFORE_LLM, "%s", err);
		return false;
	}
	pc->coefs = &phase_coefs.coefs;
	est_estimate(pc->coefs, &in, job->workspace, &pc->est);
	pc->budget = est_select_budget(pc->coefs, &pc->est);
	return true;
}

/* Directories known by their identity (device and inode) to be fit, or not, for a
 * workspace (phase_dir_unfit): the runs' workspaces, and the directories that hold them.
 * Resolving a path costs a system call for each of its components; the phases of a run
 * share its workspace, and the runs of a plan mostly share the directory their workspaces
 * are in. The oldest is forgotten first. */
#define PHASE_DIRS_KNOWN 64
static struct {
	dev_t dev;
	ino_t ino;
	bool clean; /* fit */
} phase_dirs[PHASE_DIRS_KNOWN];
static size_t phase_ndirs, phase_dirs_next;

/* What is known of the directory `st`: 1 fit, 0 unfit, -1 unknown. */
static int phase_dir_known(const struct stat *st)
{
	for (size_t i = 0; i < phase_ndirs; i++)
		if (phase_dirs[i].dev == st->st_dev && phase_dirs[i].ino == st->st_ino)
			return phase_dirs[i].clean ? 1 : 0;
	return -1;
}

/* Note whether the directory `st` is fit. */
static void phase_dir_note(const struct stat *st, bool clean)
{
	size_t i;

	for (i = 0; i < phase_ndirs; i++)
		if (phase_dirs[i].dev == st->st_dev && phase_dirs[i].ino == st->st_ino)
			break;
	if (i == phase_ndirs) {
		i = phase_dirs_next;
		phase_dirs_next = (phase_dirs_next + 1) % PHASE_DIRS_KNOWN;
		if (phase_ndirs < PHASE_DIRS_KNOWN)
			phase_ndirs++;
	}
	phase_dirs[i].dev = st->st_dev;
	phase_dirs[i].ino = st->st_ino;
	phase_dirs[i].clean = clean;
}

/* The directory holding the workspace `ws` into `parent` (PATH_MAX bytes), when `ws` is
 * an absolute path whose last component is a directory's own name: `own` (ws's lstat) a
 * directory, not a symbolic link, and that name neither "." nor "..". Its real path is
 * then the parent's followed by that name, so a parent that is fit (phase_dir_unfit) has
 * a workspace that is fit too. False otherwise. */
static bool phase_ws_parent(const char *ws, const struct stat *own, char *parent)
{
	const char *slash = strrchr(ws, '/'), *name;
	size_t n;

	if (ws[0] != '/' || !S_ISDIR(own->st_mode) || slash == NULL)
		return false;
	name = slash + 1;
	if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	n = slash == ws ? 1 : (size_t)(slash - ws);
	if (n >= PATH_MAX)
		return false;
	memcpy(parent, ws, n);
	parent[n] = '\0';
	return true;
}

/* Whether the directory `dir` (a path) is unfit for a workspace: it is or holds the
 * worker's binary or a system directory (sysdirs_held), or it is, holds or lies
 * in a runtime directory (check_dir_at_runtime). Fills `why` (n bytes) with what is wrong. */
static bool phase_dir_unfit(const char *dir, char *why, size_t n)
{
	char what[PATH_MAX + 16];
	bool system = sysdirs_held(dir, true, what, sizeof what);

	if (!system && !check_dir_at_runtime(dir, what, sizeof what))
		return false;
	snprintf(why, n, "%s%s%s", system ? "holds " : "", what,
	    system ? ": the model's files and the check command could replace a program "
	             "the workers run with the API keys" :
	             ", where supervisors keep their control sockets: a check command "
	             "there could connect to any of them and stop or steer it");
	return true;
}

/* Whether the workspace `ws` (its stat `st`, its lstat `own`) is unfit (phase_dir_unfit),
 * filling `why`. A workspace, or the directory holding it (phase_ws_parent), known to be
 * fit settles it without resolving a path: a directory that neither is, holds nor lies in
 * any of those holds a workspace that does not either. */
static bool phase_workspace_holds_system(
    const char *ws, const struct stat *st, const struct stat *own, char *why, size_t n)
{
	char parent[PATH_MAX], held[PATH_MAX + 256];
	struct stat pst;

	if (phase_dir_known(st) == 1)
		return false;
	if (phase_ws_parent(ws, own, parent) && stat(parent, &pst) == 0 && S_ISDIR(pst.st_mode)) {
		int k = phase_dir_known(&pst);

		if (k < 0) {
			k = phase_dir_unfit(parent, held, sizeof held) ? 0 : 1;
			phase_dir_note(&pst, k == 1);
		}
		if (k == 1) {
			phase_dir_note(st, true);
			return false;
		}
	}
	if (phase_dir_unfit(ws, why, n))
		return true;
	phase_dir_note(st, true);
	return false;
}

/* Open the job's workspace for the looks made before the call (the estimate's, the
 * workspace's own, the deliverables' paths), which then walk from it instead of from its
 * path each: a directory, not a symbolic link (O_NOFOLLOW), that the worker may read. One
 * that cannot be opened so is looked at by its path, each look as before. */
static void phase_ws_open(struct phase_ctx *pc)
{
	pc->ws_fd = pc->job->workspace != NULL ?
	    open(pc->job->workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) :
	    -1;
	est_workspace_lend(pc->job->workspace, pc->ws_fd);
}

/* Close what phase_ws_open opened: the deliverables are written later through the
 * workspace's path, opened again then. */
static void phase_ws_close(struct phase_ctx *pc)
{
	est_workspace_lend(NULL, -1);
	if (pc->ws_fd >= 0)
		close(pc->ws_fd);
	pc->ws_fd = -1;
}

/* Look at the workspace `ws` (open as `fd`, a directory and no symbolic link, or -1): its
 * lstat into `own` and what it names (a symbolic link followed) into `st`. False when
 * either fails. */
static bool phase_ws_stat(const char *ws, int fd, struct stat *st, struct stat *own)
{
	if (fd >= 0) {
		if (fstat(fd, own) != 0)
			return false;
		*st = *own;
		return true;
	}
	if (lstat(ws, own) != 0)
		return false;
	if (S_ISLNK(own->st_mode))
		return stat(ws, st) == 0;
	*st = *own;
	return true;
}

/* Check the job's LLM settings and find the key. Returns false (attempt ended) if unusable. */
static bool phase_llm_ready(struct phase_ctx *pc, struct llm_config *cfg)
{
	const struct proto_job *job = pc->job;
	int p = llm_provider_parse(job->llm.provider);
	struct stat st, own;
	const char *key;
	char held[PATH_MAX + 256];

	if (p < 0) {
		phase_end(pc, OUTCOME_FAILED, REASON_INVALID_JOB, FP_STAGE_BEFORE_LLM,
		    "unknown LLM provider \"%s\" (expected anthropic or openai)",
		    job->llm.provider != NULL ? job->llm.provider : "");
		return false;
	}
	if (job->llm.base_url == NULL || job->llm.base_url[0] == '\0' || job->llm.model == NULL ||
	    job->llm.model[0] == '\0') {
		phase_end(pc, OUTCOME_FAILED, REASON_INVALID_JOB, FP_STAGE_BEFORE_LLM,
		    "the job names no LLM base URL or model");
		return false;
	}
	if (job->workspace == NULL || !phase_ws_stat(job->workspace, pc->ws_fd, &st, &own) ||
	    !S_ISDIR(st.st_mode)) {
		phase_end(pc, OUTCOME_FAILED, REASON_INVALID_JOB, FP_STAGE_BEFORE_LLM,
		    "workspace %s is not a directory",
		    job->workspace != NULL ? job->workspace : "(none)");
		return false;
	}
	if (sysdirs_kernel_fs(job->workspace, held, sizeof held)) {
		phase_end(pc, OUTCOME_FAILED, REASON_INVALID_JOB, FP_STAGE_BEFORE_LLM,
		    "workspace %s lies in %s, the kernel's file system, where no file can be "
		    "written; give the run a workspace of its own; not sent to the LLM",
		    job->workspace, held);
		return false;
	}
	if (phase_workspace_holds_system(job->workspace, &st, &own, held, sizeof held)) {
		phase_end(pc, OUTCOME_FAILED, REASON_INVALID_JOB, FP_STAGE_BEFORE_LLM,
		    "workspace %s %s; give the run a workspace of its own; not sent to the LLM",
		    job->workspace, held);
		return false;
	}
	key = keys_get(llm_key_variable((enum llm_provider)p));
	if (key == NULL || key[0] == '\0') {
		phase_end(pc, OUTCOME_FAILED, REASON_NO_API_KEY, FP_STAGE_BEFORE_LLM,
		    "%s is not set: the worker takes provider keys only from the supervisor's environment",
		    llm_key_variable((enum llm_provider)p));
		return false;
	}
	pc->api_key = key;
	pc->provider = llm_provider_name((enum llm_provider)p);
	memset(cfg, 0, sizeof *cfg);
	cfg->provider = (enum llm_provider)p;
	cfg->base_url = job->llm.base_url;
	cfg->model = job->llm.model;
	cfg->api_key = key;
	cfg->timeout_ms = job->llm.timeout_ms > 0 ? job->llm.timeout_ms : 120000;
	cfg->max_retries = job->llm.max_retries >= 0 ? (int)job->llm.max_retries : 3;
	cfg->deadline_mono_ms = pc->deadline;
	cfg->temperature = 0.2;
	return true;
}

/*
 * Call the builder, once more with a ×1.25 budget after a truncated answer that does not
 * parse. Emits a v2 event per call whose output tokens are known. Returns true with `set`
 * filled, or false with the attempt ended.
 */
static bool phase_build(struct phase_ctx *pc, const struct llm_config *cfg, const struct prompt *pr,
    struct dlv_set *set)
{
	struct llm_hooks hooks = { .ctx = pc,
		.on_send = phase_on_send,
		.on_try = phase_on_try,
		.heartbeat = phase_heartbeat };
	char *dl_json = ev_deliverables_json(&pc->job->phase.deliverables);
	char *dlx_json = ev_deliverables_detail_json(
	    &pc->job->phase.deliverables, &pc->est, pc->job->workspace);
	int max_tokens = est_max_tokens(
	    pc->coefs, &pc->est, pc->budget, 0, (int)pc->job->max_tokens_cap);
	bool done = false;
	int call;

	for (call = 1; call <= 2 && !done; call++) {
		struct llm_request req = { pr->system, pr->user, max_tokens };
		struct llm_response resp;
		char perr[256] = "";
		bool parsed;
		int next;

		if (phase_expired(pc, "the LLM call"))
			break;
		pc->call_max_tokens = max_tokens;
		if (llm_call(cfg, &req, &hooks, &resp) != 0) {
			if (pc->link_lost) {
				llm_response_free(&resp);
				break;
			}
			pc->boundary = fp_llm_boundary(resp.error);
			if (strcmp(resp.error_class, LLM_E_TIMEOUT) == 0 && phase_left(pc) <= 1000)
				phase_end(pc, OUTCOME_TIMEOUT, REASON_TIMEOUT, FP_STAGE_PROVIDER,
				    "LLM call timed out at the attempt's deadline: %s", resp.error);
			else
				phase_end(pc, OUTCOME_FAILED, REASON_PROVIDER_ERROR,
				    FP_STAGE_PROVIDER, "%s after %d tr%s: %s", resp.error_class,
				    resp.tries, resp.tries == 1 ? "y" : "ies", resp.error);
			llm_response_free(&resp);
			break;
		}
		parsed = dlv_parse(resp.text, set, perr, sizeof perr) == DLV_OK;
		if (resp.completion_tokens >= 0) {
			struct ev_builder_call bc = { &pc->est, pc->coefs->version, pc->budget,
				max_tokens, cfg->model, &resp, parsed, dl_json, dlx_json };
			struct proto_event ev;
			ev_estimation_fill(&ev, &bc);
			phase_emit(pc, &ev);
			if (parsed && !resp.truncated)
				pc->samples++;
		}
		next = est_escalate(pc->coefs, max_tokens, (int)pc->job->max_tokens_cap);
		if (parsed) {
			done = true;
		} else if (resp.truncated && !resp.at_window && call == 1 && next > max_tokens) {
			phase_log(pc, "warn",
			    "output truncated at max_tokens %d (%s); retrying once with %d",
			    max_tokens, resp.stop_reason, next);
			max_tokens = next;
		} else if (resp.at_window) {
			/* The prompt and the answer fill the model's context: a larger budget
			 * gives no more, so no second call is paid for. */
			phase_end(pc, OUTCOME_FAILED, REASON_OUTPUT_TRUNCATED, FP_STAGE_PARSE,
			    "output truncated at the model's context window (%s; max_tokens %d): %s",
			    resp.stop_reason, max_tokens, perr);
		} else if (resp.truncated) {
			phase_end(pc, OUTCOME_FAILED, REASON_OUTPUT_TRUNCATED, FP_STAGE_PARSE,
			    "output truncated at max_tokens %d (%s): %s", max_tokens,
			    resp.stop_reason, perr);
		} else if (resp.text[0] == '\0') {
			/* A refusal, tool calls, blocks of other kinds: said as such, not as a
			 * document missing from 0 bytes. */
			const char *field = cfg->provider == LLM_ANTHROPIC ? "stop_reason" :
			                                                     "finish_reason";

			phase_end(pc, OUTCOME_FAILED, REASON_PARSE_FAILED, FP_STAGE_PARSE,
			    "the answer holds no text (%s %s%s%s)%s%s", field,
			    resp.stop_reason != NULL ? "\"" : "",
			    resp.stop_reason != NULL ? resp.stop_reason : "none",
			    resp.stop_reason != NULL ? "\"" : "", resp.no_text != NULL ? ": " : "",
			    resp.no_text != NULL ? resp.no_text : "");
		} else {
			phase_end(
			    pc, OUTCOME_FAILED, REASON_PARSE_FAILED, FP_STAGE_PARSE, "%s", perr);
		}
		llm_response_free(&resp);
		if (pc->outcome != OUTCOME_NONE || pc->link_lost)
			break;
	}
	free(dl_json);
	free(dlx_json);
	if (!done)
		dlv_set_free(set);
	return done && !pc->link_lost;
}

/* Check the phase's deliverables under the rules of an import (common/relpath.h) before
 * any call is paid for. Returns false if it ended (INVALID_JOB). */
static bool phase_deliverables_ok(struct phase_ctx *pc)
{
	const struct proto_strlist *d = &pc->job->phase.deliverables;
	char why[512];

	if (relpath_files_check(
	        "scope.deliverables", (const char *const *)d->items, d->n, why, sizeof why) == 0)
		return true;
	phase_end(pc, OUTCOME_FAILED, REASON_INVALID_JOB, FP_STAGE_BEFORE_LLM,
	    "%s; not sent to the LLM", why);
	return false;
}

/* Check that nothing in the workspace is in the way of the phase's deliverables (a file
 * where one needs a directory, a directory at one's path: an earlier phase of the run
 * delivered an overlapping path; a directory on one's path, or the workspace, that the
 * worker may not open; a symbolic link at one's path or on it that leads out of the
 * workspace or the scope, or into a reserved directory, which a check may have left)
 * before any call is paid for: no answer can write them. Returns false if it ended
 * (WRITE_FAILED, naming the paths or the directory). */
static bool phase_deliverables_free(struct phase_ctx *pc)
{
	const struct proto_phase *ph = &pc->job->phase;
	struct dlv_scope scope = { ph->paths.items, ph->paths.n, ph->deliverables.items,
		ph->deliverables.n, NULL, NULL, NULL, NULL };
	char err[PATH_MAX + 1024];

	for (size_t i = 0; i < ph->deliverables.n; i++) {
		int rc = dlv_check_path(pc->job->workspace, pc->ws_fd, &scope,
		    ph->deliverables.items[i], err, sizeof err);

		if (rc == DLV_OK)
			continue;
		phase_end(pc, OUTCOME_FAILED, REASON_WRITE_FAILED, FP_STAGE_BEFORE_LLM,
		    "%s; not sent to the LLM", err);
		return false;
	}
	return true;
}

/* The SQLite database's path in the job's canonical URL (sqlite:////abs/path.db), or NULL
 * for another database. */
static const char *phase_db_path(const struct proto_job *job)
{
	static const char scheme[] = "sqlite:///";

	return strncmp(job->db_url, scheme, sizeof scheme - 1) == 0 ?
	    job->db_url + sizeof scheme - 1 :
	    NULL;
}

/* Write the deliverables and check that every one exists. Returns false if it ended. */
static bool phase_apply(struct phase_ctx *pc, const struct dlv_set *set)
{
	const struct proto_phase *ph = &pc->job->phase;
	/* The database may lie in the workspace: its files are never written. */
	struct dlv_scope scope = { ph->paths.items, ph->paths.n, ph->deliverables.items,
		ph->deliverables.n, phase_db_path(pc->job), phase_heartbeat, pc, log_file_path() };
	char err[PATH_MAX + 1024], names[PHASE_MESSAGE_MAX - 64];
	size_t missing;
	int rc;

	if (phase_expired(pc, "writing the deliverables"))
		return false;
	/* Nothing is written for a supervisor that is gone: it could not record it. */
	if (pc->hooks != NULL && pc->hooks->supervisor_present != NULL &&
	    !pc->hooks->supervisor_present(pc->hooks->ctx)) {
		pc->link_lost = true;
		return false;
	}
	if (dlv_count_written(set, ph->deliverables.items, ph->deliverables.n) == 0) {
		phase_end(pc, OUTCOME_FAILED, REASON_NO_DELIVERABLES_WRITTEN, FP_STAGE_APPLY,
		    "the builder's output (%zu file%s) writes none of the phase's %zu deliverable%s; "
		    "nothing was written",
		    set->n, set->n == 1 ? "" : "s", ph->deliverables.n,
		    ph->deliverables.n == 1 ? "" : "s");
		return false;
	}
	rc = dlv_apply(pc->job->workspace, &scope, set, err, sizeof err);
	if (rc != DLV_OK) {
		phase_end(pc, OUTCOME_FAILED,
		    rc == DLV_ESCOPE ? REASON_SCOPE_VIOLATION : REASON_WRITE_FAILED, FP_STAGE_APPLY,
		    "%s", err);
		return false;
	}
	missing = dlv_missing(pc->job->workspace, ph->deliverables.items, ph->deliverables.n, set,
	    names, sizeof names);
	if (missing > 0) {
		phase_end(pc, OUTCOME_FAILED, REASON_DELIVERABLES_MISSING, FP_STAGE_APPLY,
		    "%zu deliverable%s missing after the builder call: %s", missing,
		    missing == 1 ? "" : "s", names);
		return false;
	}
	phase_log(
	    pc, "info", "wrote %zu file%s into the workspace", set->n, set->n == 1 ? "" : "s");
	return !pc->link_lost;
}

/* Say where the check's logs are (heap): stderr's (with `stderr_always`, or when it lost
 * bytes), then stdout's when it lost bytes, each log that lost bytes with why and how many
 * of the stream's it holds: "stderr: P, not all written: No space left on device (ENOSPC);
 * it holds 0 of the 15 bytes sent; stdout: P2, ...". "" when neither is said. */
static char *phase_check_logs(const struct check_result *r, bool stderr_always)
{
	const int e[2] = { r->stdout_log_errno, r->stderr_log_errno };
	const char *path[2] = { r->stdout_path, r->stderr_path };
	char *out = xstrdup(""), *more;

	for (int i = 1; i >= 0; i--) {
		const char *name = e[i] != 0 ? strerrorname_np(e[i]) : NULL;
		char why[160] = "";

		if (e[i] == 0 && !(i == 1 && stderr_always))
			continue;
		if (e[i] != 0)
			snprintf(why, sizeof why,
			    ", not all written: %s (%s); it holds %llu of the %llu bytes sent",
			    strerror(e[i]), name != NULL ? name : "?",
			    (unsigned long long)r->kept[i], (unsigned long long)r->sent[i]);
		more = xasprintf("%s%s%s: %s%s", out, out[0] != '\0' ? "; " : "",
		    i == 0 ? "stdout" : "stderr", path[i], why);
		free(out);
		out = more;
	}
	return out;
}

/* Run the check command, if any. Returns false if the attempt ended. */
static bool phase_check(struct phase_ctx *pc)
{
	const struct proto_job *job = pc->job;
	/* The database may lie in the workspace: the check cannot write or move its files. */
	struct check_spec spec = { job->phase.check_command, job->workspace, job->run_id,
		job->phase_id, job->attempt_number, 0, pc, phase_heartbeat, phase_db_path(job),
		job->db_url };
	struct check_result r;
	char err[512], *logs;

	if (job->phase.check_command == NULL || job->phase.check_command[0] == '\0')
		return true;
	if (phase_expired(pc, "the check command"))
		return false;
	spec.deadline_mono_ms = pc->deadline != 0 ? pc->deadline : UINT64_MAX;
	phase_heartbeat(pc); /* the events so far leave before the command runs */
	if (check_run(&spec, &r, err, sizeof err) < 0) {
		pc->interrupted = r.stopped_from_outside;
		phase_end(pc, OUTCOME_FAILED, REASON_CHECK_NOT_RUN, FP_STAGE_CHECK, "%s", err);
		check_result_free(&r);
		return false;
	}
	/* Whatever the check's end, a log the disk refused is said in the attempt's message,
	 * and the ends of both streams kept there from memory. */
	logs = phase_check_logs(&r, false);
	if (r.git[0] != '\0')
		phase_end(pc, OUTCOME_FAILED, REASON_SCOPE_VIOLATION, FP_STAGE_CHECK, "%s%s%s%s",
		    r.git, logs[0] != '\0' ? " (" : "", logs, logs[0] != '\0' ? ")" : "");
	else if (r.timed_out) {
		if (logs[0] != '\0') {
			free(logs);
			logs = phase_check_logs(&r, true);
		}
		phase_end(pc, OUTCOME_TIMEOUT, REASON_TIMEOUT, FP_STAGE_CHECK,
		    "check command killed at the attempt's deadline after %lld ms (see %s)",
		    (long long)r.duration_ms, logs[0] != '\0' ? logs : r.stderr_path);
	} else if (r.stopped_from_outside) {
		pc->interrupted = true;
		phase_end(pc, OUTCOME_FAILED, REASON_CHECK_FAILED, FP_STAGE_CHECK,
		    "check command killed by signal %d (%s), which the worker did not send%s%s%s",
		    r.term_signal, strsignal(r.term_signal), logs[0] != '\0' ? " (" : "", logs,
		    logs[0] != '\0' ? ")" : "");
	} else if (r.exit_code != 0) {
		free(logs);
		logs = phase_check_logs(&r, true);
		phase_end(pc, OUTCOME_FAILED, REASON_CHECK_FAILED, FP_STAGE_CHECK,
		    "check command %s %d (%s)%s%s: %s%s%s",
		    r.exit_code < 0 ? "killed by signal" : "exited",
		    r.exit_code < 0 ? r.term_signal : r.exit_code, logs,
		    r.limit[0] != '\0' ? "; " : "", r.limit, r.excerpt,
		    r.sent[1] > 0 && r.stdout_end[0] != '\0' ? "; stdout ended: " : "",
		    r.sent[1] > 0 ? r.stdout_end : "");
	} else {
		phase_log(pc, "info", "check command passed in %lld ms", (long long)r.duration_ms);
		if (logs[0] != '\0')
			phase_note(pc,
			    "check command passed in %lld ms; its output is not all in its logs "
			    "(%s)%s%s%s%s",
			    (long long)r.duration_ms, logs,
			    r.stderr_log_errno != 0 && r.sent[1] > 0 ? "; stderr ended: " : "",
			    r.stderr_log_errno != 0 && r.sent[1] > 0 ? r.excerpt : "",
			    r.stdout_end[0] != '\0' ? "; stdout ended: " : "", r.stdout_end);
	}
	free(logs);
	check_result_free(&r);
	return pc->outcome == OUTCOME_NONE && !pc->link_lost;
}

/* Fill the result from the finished attempt. */
static void phase_result(struct phase_ctx *pc, struct proto_result *out)
{
	struct fp_yield y = { 0 };
	enum zero_yield zy;
	char fp[512];

	memset(out, 0, sizeof *out);
	if (pc->link_lost && pc->outcome == OUTCOME_NONE)
		phase_end(pc, OUTCOME_FAILED, REASON_SUPERVISOR_LINK_LOST, pc->stage,
		    "the supervisor stopped taking events");
	out->outcome = xstrdup(outcome_name(pc->outcome));
	if (pc->reason != REASON_NONE)
		out->failure_reason = xstrdup(reason_name(pc->reason));
	if (pc->message[0] != '\0')
		out->message = xstrdup(pc->message);
	if (fp_attempt(pc->outcome, pc->reason, pc->message, fp, sizeof fp) > 0)
		out->fingerprint = xstrdup(fp);
	y.samples = pc->samples;
	y.success = pc->outcome == OUTCOME_SUCCESS;
	y.timed_out = pc->outcome == OUTCOME_TIMEOUT;
	y.dry_run = pc->outcome == OUTCOME_DRY_RUN;
	y.boundary = pc->boundary;
	y.stage = pc->stage;
	zy = fp_zero_yield_reason(&y);
	if (zy != ZERO_YIELD_NONE)
		out->zero_yield_reason = xstrdup(zero_yield_name(zy));
	out->reached_llm_boundary = pc->boundary;
	out->duration_ms = (int64_t)(clock_mono_ms() - pc->start);
}

int phase_run(
    const struct proto_job *job, const struct phase_hooks *hooks, struct proto_result *out)
{
	struct phase_ctx pc = { .job = job, .hooks = hooks, .start = clock_mono_ms(), .ws_fd = -1 };
	struct llm_config cfg;
	struct prompt pr = { 0 };
	struct dlv_set set = { 0 };

	if (job->deadline_ms > 0) {
		int64_t left = job->deadline_ms - clock_wall_ms();
		pc.deadline = pc.start + (uint64_t)(left > 1 ? left : 1);
	}
#ifdef AUTOPACK_MUTANT_worker_opens_database
	(void)fopen(job->db_url + strlen("sqlite:///"), "r");
#endif
	pc.stage = FP_STAGE_BEFORE_LLM;
	if (!job->dry_run)
		phase_ws_open(&pc);
	if (!phase_estimate(&pc))
		goto done;
	if (job->dry_run) {
		phase_log(&pc, "info",
		    "dry run: estimate %d tokens (%s/%s, confidence %.2f, estimator v%llu), "
		    "selected budget %d, max_tokens %d; no LLM call, nothing written",
		    pc.est.estimate, pc.est.category, pc.est.complexity, pc.est.confidence,
		    (unsigned long long)pc.coefs->version, pc.budget,
		    est_max_tokens(pc.coefs, &pc.est, pc.budget, 0, (int)job->max_tokens_cap));
		pc.outcome = OUTCOME_DRY_RUN;
		goto done;
	}
	if (job->phase.deliverables.n == 0) {
		phase_end(&pc, OUTCOME_FAILED, REASON_NO_DELIVERABLES, FP_STAGE_BEFORE_LLM,
		    "the phase names no deliverables (its scope lists none, or cannot be read); "
		    "not sent to the LLM");
		goto done;
	}
	if (!phase_deliverables_ok(&pc))
		goto done;
	if (!phase_llm_ready(&pc, &cfg) || !phase_deliverables_free(&pc))
		goto done;
	phase_ws_close(&pc);
	prompt_build(job, &pc.est, &pr);
	pc.stage = FP_STAGE_PROVIDER;
	if (!phase_build(&pc, &cfg, &pr, &set))
		goto done;
	pc.stage = FP_STAGE_APPLY;
	if (!phase_apply(&pc, &set))
		goto done;
	pc.stage = FP_STAGE_CHECK;
	if (!phase_check(&pc))
		goto done;
	if (pc.outcome == OUTCOME_NONE && !pc.link_lost) {
		pc.outcome = OUTCOME_SUCCESS;
		pc.stage = FP_STAGE_DONE;
	}
done:
	phase_ws_close(&pc);
	prompt_free(&pr);
	dlv_set_free(&set);
	phase_result(&pc, out);
	return pc.link_lost ? -1 : pc.interrupted ? PHASE_INTERRUPTED : 0;
}

void phase_result_clear(struct proto_result *r)
{
	free(r->outcome);
	free(r->failure_reason);
	free(r->message);
	free(r->fingerprint);
	free(r->zero_yield_reason);
	r->outcome = r->failure_reason = r->message = r->fingerprint = r->zero_yield_reason = NULL;
}
