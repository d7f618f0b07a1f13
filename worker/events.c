/* Telemetry and log events of a phase attempt. */
#include "worker/events.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "common/utf8.h"
#include "worker/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EV_DELIVERABLES_KEPT 20
#define EV_DELIVERABLE_CHARS 200

/* Cut `s` to at most `max` UTF-8 characters, ending in "..." when cut. Heap. */
static char *ev_cut_chars(const char *s, size_t max)
{
	size_t i = 0, chars = 0, cut = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xC0) == 0x80)
			continue;
		if (chars == max - 3)
			cut = i;
		chars++;
	}
	if (chars <= max)
		return xstrdup(s);
	return xasprintf("%.*s...", (int)cut, s);
}

/* Encode the deliverables as the v2 table keeps them (heap), written directly: the
 * bytes jansson's compact dump gives, an item that is not valid UTF-8 written as "?". */
char *ev_deliverables_json(const struct proto_strlist *d)
{
	size_t n = d->n < EV_DELIVERABLES_KEPT ? d->n : EV_DELIVERABLES_KEPT, cap = 3, i;
	char **cut = xcalloc(n + 1, sizeof *cut), *out, *o;

	for (i = 0; i < n; i++) {
		cut[i] = ev_cut_chars(d->items[i], EV_DELIVERABLE_CHARS);
		cap += 6 * strlen(cut[i]) + 3;
	}
	o = out = xmalloc(cap);
	*o++ = '[';
	for (i = 0; i < n; i++) {
		size_t len = strlen(cut[i]);

		if (i > 0)
			*o++ = ',';
		o = llm_json_put_str(o, utf8_check(cut[i], len) == len ? cut[i] : "?");
		free(cut[i]);
	}
	*o++ = ']';
	*o = '\0';
	free(cut);
	return out;
}

char *ev_deliverables_detail_json(
    const struct proto_strlist *d, const struct est_output *est, const char *workspace)
{
	struct strbuf b = { 0 };
	size_t i;

	strbuf_put(&b, "[", 1);
	for (i = 0; i < d->n && i < EV_DELIVERABLES_KEPT; i++) {
		const struct est_seen *seen = i < EST_SEEN_MAX ? &est->seen[i] : NULL;
		int64_t bytes;
		enum est_dlv_kind k = seen != NULL && seen->state != EST_SEEN_NOT_LOOKED ?
		    est_deliverable_kind_seen(d->items[i], est->category, seen, &bytes) :
		    est_deliverable_kind(d->items[i], est->category, workspace, &bytes);
		char item[96];
		int len = bytes >= 0 ?
		    snprintf(item, sizeof item, "%s{\"kind\":\"%s\",\"bytes\":%lld}",
		        i > 0 ? "," : "", est_dlv_kind_name(k), (long long)bytes) :
		    snprintf(item, sizeof item, "%s{\"kind\":\"%s\",\"bytes\":null}",
		        i > 0 ? "," : "", est_dlv_kind_name(k));

		strbuf_put(&b, item, (size_t)len);
	}
	strbuf_put(&b, "]", 1);
	return b.s;
}

void ev_request_fill(struct proto_event *ev, const char *provider, const char *model,
    int64_t max_tokens, int try_number)
{
	struct proto_llm_request *q = &ev->body.request;

	memset(ev, 0, sizeof *ev);
	ev->kind = PROTO_EV_LLM_REQUEST;
	q->provider = (char *)provider;
	q->model = (char *)model;
	q->role = (char *)LLM_ROLE_BUILDER;
	q->max_tokens = max_tokens;
	q->try_number = try_number;
}

/* Fill an llm_usage event for one try. */
void ev_usage_fill(
    struct proto_event *ev, const char *provider, const char *model, const struct llm_try *t)
{
	struct proto_usage *u = &ev->body.usage;

	memset(ev, 0, sizeof *ev);
	ev->kind = PROTO_EV_LLM_USAGE;
	u->provider = (char *)provider;
	u->model = (char *)model;
	u->role = (char *)LLM_ROLE_BUILDER;
	u->prompt_tokens = t->prompt_tokens;
	u->completion_tokens = t->completion_tokens;
	u->total_tokens = t->total_tokens >= 0 ? t->total_tokens : 0;
	u->latency_ms = t->latency_ms;
	u->http_status = t->http_status;
	u->error_class = (char *)t->error_class;
	u->try_number = t->try_number;
}

_Static_assert(LLM_STOP_REASON_MAX <= PROTO_NAME_MAX, "a stop reason fits an event's name");

/* Fill a token_estimation_v2 event from a builder call. */
void ev_estimation_fill(struct proto_event *ev, const struct ev_builder_call *c)
{
	struct proto_estimation *e = &ev->body.est;
	const struct est_output *est = c->est;

	memset(ev, 0, sizeof *ev);
	ev->kind = PROTO_EV_TOKEN_ESTIMATION;
	e->category = (char *)est->category;
	e->complexity = (char *)est->complexity;
	e->deliverable_count = est->deliverable_count;
	e->deliverables_json = c->deliverables_json;
	e->predicted_output_tokens = est->estimate;
	e->actual_output_tokens = c->resp->completion_tokens;
	e->selected_budget = c->selected_budget;
	e->actual_max_tokens = c->max_tokens;
	e->success = c->parsed;
	e->truncated = c->resp->truncated;
	e->stop_reason = c->resp->stop_reason;
	e->model = (char *)c->model;
	e->estimator_version = c->estimator_version;
	e->doc_features = est->doc_features;
	e->context_quality = (char *)est->context_quality;
	e->sot_file_name = est->sot_file_name[0] != '\0' ? (char *)est->sot_file_name : NULL;
	e->sot_entry_count_hint = est->sot_entry_count_hint;
	e->input_tokens = c->resp->prompt_tokens >= 0 ? c->resp->prompt_tokens : -1;
	e->deliverables_detail_json = c->deliverables_detail_json;
}

/* Fill a log event. */
void ev_log_fill(struct proto_event *ev, const char *level, char *message)
{
	memset(ev, 0, sizeof *ev);
	ev->kind = PROTO_EV_LOG;
	ev->body.log.level = (char *)level;
	ev->body.log.message = message;
}
