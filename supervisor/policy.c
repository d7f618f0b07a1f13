/* Drain policies (docs/drain-rules.md): failure-reason buckets, sample-first triage, and
 * the stop and skip rules, applied as results arrive. With several workers, results are
 * judged in the order the supervisor receives them; the state is saved with the commit
 * that records each result, so a restarted drain (--resume) continues with the same
 * counters. The rules only judge: a verdict says what follows (a run skipped, the
 * session stopped), and lease.c carries it out. Several supervisors draining one session
 * share its saved state: each keeps what it decided since its last save as news, merges
 * them into the saved state under the session row's lock in its group commit, and reads
 * what the others decided at every queue refresh (docs/drain-rules.md, "Several
 * supervisors"). */
#include "supervisor/sup.h"
#include "common/jsonload.h"
#include "common/log.h"
#include "common/store/db.h"
#include "common/store/store_fleet.h"
#include "common/store/store_session.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Whether a set holds a name. */
bool nameset_has(const struct nameset *ns, const char *name)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return true;
	return false;
}

/* Add a name once; false when the set held it already. */
static bool nameset_add(struct nameset *ns, const char *name)
{
	if (nameset_has(ns, name))
		return false;
	ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof *ns->v);
	ns->v[ns->n++] = xstrdup(name);
	return true;
}

/* Remove a name; false when the set did not hold it. */
static bool nameset_remove(struct nameset *ns, const char *name)
{
	size_t i;

	for (i = 0; i < ns->n; i++) {
		if (strcmp(ns->v[i], name) == 0) {
			free(ns->v[i]);
			ns->v[i] = ns->v[--ns->n];
			return true;
		}
	}
	return false;
}

/* Free a set's names. */
static void nameset_free(struct nameset *ns)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	ns->v = NULL;
	ns->n = 0;
}

/* Record a decision in a set (the state is then to be saved), and in the news when
 * several supervisors share the session. */
static void policy_add(struct sup *s, struct nameset *set, struct nameset *news, const char *name)
{
	if (nameset_add(set, name))
		s->pol.dirty = true;
	if (s->fleet_id > 0)
		nameset_add(news, name);
}

/* Does the lowercased `hay` contain `needle`? */
static bool has_ci(const char *hay, const char *needle)
{
	return strcasestr(hay, needle) != NULL;
}

/* Bucket a failure reason by the words in it. */
enum bucket policy_bucket(const char *r)
{
	if (r == NULL || *r == '\0')
		return BUCKET_UNKNOWN;
	if (has_ci(r, "collection") || has_ci(r, "import"))
		return BUCKET_COLLECTION;
	if (has_ci(r, "deliverable") || has_ci(r, "missing"))
		return BUCKET_DELIVERABLE;
	if (has_ci(r, "patch") || has_ci(r, "no-op") || has_ci(r, "manifest"))
		return BUCKET_PATCH;
	if (has_ci(r, "timeout") || has_ci(r, "timed out"))
		return BUCKET_TIMEOUT;
	return BUCKET_OTHER;
}

/* The count of a fingerprint, creating it at 0. */
static int64_t *fp_slot(struct policy *p, const char *fp)
{
	size_t i;

	for (i = 0; i < p->nfps; i++)
		if (strcmp(p->fps[i].fp, fp) == 0)
			return &p->fps[i].n;
	p->fps = xrealloc(p->fps, (p->nfps + 1) * sizeof *p->fps);
	p->fps[p->nfps].fp = xstrdup(fp);
	p->fps[p->nfps].n = 0;
	return &p->fps[p->nfps++].n;
}

/* Has this fingerprint been counted in the session? */
static bool fp_seen(struct policy *p, const char *fp)
{
	size_t i;

	for (i = 0; i < p->nfps; i++)
		if (strcmp(p->fps[i].fp, fp) == 0 && p->fps[i].n > 0)
			return true;
	return false;
}

/* Record that a run is stopped for the rest of the session. */
static void run_stop(struct sup *s, struct run_q *r, const char *why, struct policy_verdict *v)
{
	if (nameset_has(&s->pol.stopped_runs, r->run_id))
		return;
	policy_add(s, &s->pol.stopped_runs, &s->pol.news.stopped_runs, r->run_id);
	log_about(LOG_WARN, &(struct log_about){ .session = s->session_id, .run = r->run_id },
	    "[STOP] run %s: %s", r->run_id, why);
	v->skip_run = true;
	snprintf(v->run_why, sizeof v->run_why, "run stopped: %s", why);
}

/* Judge one result of run r; the verdict says what the caller must do. */
void policy_result(struct sup *s, struct run_q *r, enum outcome outcome, const char *fp, int64_t v2,
    struct policy_verdict *v)
{
	struct policy *p = &s->pol;
	bool timeout = outcome == OUTCOME_TIMEOUT;
	bool success = outcome == OUTCOME_SUCCESS;

	*v = (struct policy_verdict){ 0 };
	/* A dry run visits phases without judging them (docs/drain-rules.md, "Stop rules"). */
	if (outcome == OUTCOME_DRY_RUN)
		return;
	/* The saved state is written again only when it changes (a result that leaves it
	 * as it is, the steady state of a drain, rewrites nothing); with several
	 * supervisors every save also merges what the others decided. */
	if (s->fleet_id > 0)
		p->dirty = true;
	if (timeout && ++r->timeouts >= s->cfg.max_timeouts_per_run && !r->skipped) {
		char why[96];

		snprintf(why, sizeof why, "%lld timeout(s) (--max-timeouts-per-run %lld)",
		    (long long)r->timeouts, (long long)s->cfg.max_timeouts_per_run);
		run_stop(s, r, why, v);
	}
	if (!r->sampled) {
		r->sampled = true;
		policy_add(s, &p->sampled, &p->news.sampled, r->run_id);
		if (success || v2 > 0 || timeout || fp == NULL || !fp_seen(p, fp)) {
			r->promising = true;
			policy_add(s, &p->promising, &p->news.promising, r->run_id);
			log_about(LOG_INFO,
			    &(struct log_about){ .session = s->session_id, .run = r->run_id },
			    "[SAMPLE-OK] %s: promising", r->run_id);
		} else {
			policy_add(s, &p->deprioritized, &p->news.deprioritized, r->run_id);
			log_about(LOG_INFO,
			    &(struct log_about){ .session = s->session_id, .run = r->run_id },
			    "[SAMPLE-SKIP] %s: deprioritised (repeating fingerprint: %.80s)",
			    r->run_id, fp);
			v->skip_run = true;
			snprintf(v->run_why, sizeof v->run_why,
			    "run deprioritised by sample-first triage: its first result repeated"
			    " fingerprint %.300s",
			    fp);
		}
	}
	if (v2 <= 0 || p->consecutive_zero != 0)
		p->dirty = true;
	p->consecutive_zero = v2 > 0 ? 0 : p->consecutive_zero + 1;
	if (s->cfg.max_consecutive_zero_yield > 0 &&
	    p->consecutive_zero >= s->cfg.max_consecutive_zero_yield) {
		v->stop_session = true;
		snprintf(v->why, sizeof v->why,
		    "%lld consecutive attempts yielded no telemetry"
		    " (--max-consecutive-zero-yield %lld)",
		    (long long)p->consecutive_zero, (long long)s->cfg.max_consecutive_zero_yield);
		return;
	}
	if (fp != NULL && !success) {
		int64_t *n = fp_slot(p, fp);

		p->dirty = true;
		if (s->fleet_id > 0) {
			struct policy_news *nw = &p->news;

			nw->fps = xrealloc(nw->fps, (nw->nfps + 1) * sizeof *nw->fps);
			nw->fps[nw->nfps].fp = xstrdup(fp);
			nw->fps[nw->nfps++].run_id = xstrdup(r->run_id);
		}
		if (++*n >= s->cfg.max_fingerprint_repeats) {
			char why[320];

			policy_add(s, &p->stopped_fps, &p->news.stopped_fps, fp);
			snprintf(why, sizeof why,
			    "fingerprint seen %lld times"
			    " (--max-fingerprint-repeats %lld): %.200s",
			    (long long)*n, (long long)s->cfg.max_fingerprint_repeats, fp);
			run_stop(s, r, why, v);
		}
	}
}

/* A JSON array of a name set. */
static json_t *nameset_json(const struct nameset *ns)
{
	json_t *a = json_array();
	size_t i;

	/* A run id another program wrote may not be UTF-8: it is kept with U+FFFD for each bad
	 * byte rather than left out (JSON holds only UTF-8). */
	for (i = 0; i < ns->n; i++) {
		json_t *name = json_string(ns->v[i]);

		if (name == NULL) {
			char *clean = utf8_clean(ns->v[i], SIZE_MAX);

			name = json_string(clean);
			free(clean);
		}
		json_array_append_new(a, name);
	}
	return a;
}

/* The policy state as a JSON object. */
static json_t *policy_state(struct sup *s)
{
	struct policy *p = &s->pol;
	json_t *fps = json_object();
	size_t i;

	for (i = 0; i < p->nfps; i++)
		json_object_set_new(fps, p->fps[i].fp, json_integer(p->fps[i].n));
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I}", "fingerprint_counts", fps,
	    "stopped_fingerprints", nameset_json(&p->stopped_fps), "stopped_runs",
	    nameset_json(&p->stopped_runs), "sampled_runs", nameset_json(&p->sampled),
	    "promising_runs", nameset_json(&p->promising), "deprioritized_runs",
	    nameset_json(&p->deprioritized), "consecutive_zero_yield",
	    (json_int_t)p->consecutive_zero);
}

/* Read a saved policy state into p (empty on entry); -1 with `why` saying what is wrong
 * when store_session_state_parse refuses it (not JSON, not an object, a list that is not
 * one of names or a count that is none). */
static int policy_parse(struct policy *p, const char *state_json, char *why, size_t whylen)
{
	struct nameset *sets[STORE_SESSION_STATE_LISTS] = { &p->stopped_fps, &p->stopped_runs,
		&p->sampled, &p->promising, &p->deprioritized };
	json_t *j = store_session_state_parse(state_json, why, whylen), *v;
	const char *k;
	size_t i;

	if (j == NULL)
		return -1;
#ifdef AUTOPACK_MUTANT_resume_forgets_state
	json_object_clear(j);
#endif
	json_object_foreach(json_object_get(j, "fingerprint_counts"), k, v) *
	    fp_slot(p, k) = json_integer_value(v);
	for (size_t l = 0; l < STORE_SESSION_STATE_LISTS; l++)
		json_array_foreach(json_object_get(j, store_session_state_lists[l]), i, v)
		    nameset_add(sets[l], json_string_value(v));
	p->consecutive_zero = json_integer_value(json_object_get(j, "consecutive_zero_yield"));
	json_decref(j);
	return 0;
}

/* Restore a saved policy state; -1 (logged, naming the session and what is wrong) when
 * policy_parse refuses it. */
int policy_load(struct sup *s, const char *state_json)
{
	char why[200];

	if (policy_parse(&s->pol, state_json, why, sizeof why) == 0)
		return 0;
	log_error("session %s: drain_sessions.state_json (the saved state of its drain rules): "
	          "%s; not resuming it",
	    s->session_id, why);
	return -1;
}

/* Whether run_id is stopped or deprioritised in p. */
static bool policy_holds_back(const struct policy *p, const char *run_id)
{
	return nameset_has(&p->stopped_runs, run_id) || nameset_has(&p->deprioritized, run_id);
}

/* Why the session's policy holds run_id back (stopped or deprioritised, here or by
 * another supervisor of the session), or NULL when it does not. */
const char *policy_held_back_why(const struct sup *s, const char *run_id)
{
	if (nameset_has(&s->pol.stopped_runs, run_id))
		return "run stopped earlier in this session";
	if (nameset_has(&s->pol.deprioritized, run_id))
		return "run deprioritised earlier in this session";
	return NULL;
}

/* Free the news. */
static void policy_news_free(struct policy_news *nw)
{
	for (size_t i = 0; i < nw->nfps; i++) {
		free(nw->fps[i].fp);
		free(nw->fps[i].run_id);
	}
	free(nw->fps);
	nw->fps = NULL;
	nw->nfps = 0;
	nameset_free(&nw->stopped_fps);
	nameset_free(&nw->sampled);
	nameset_free(&nw->promising);
	nameset_free(&nw->deprioritized);
	nameset_free(&nw->stopped_runs);
}

/* Count this supervisor's fingerprints on top of the saved counts in `to`; when saving
 * (`judge`), a count that reaches --max-fingerprint-repeats without this supervisor
 * having seen it reach it (the others' results counted meanwhile) stops the run that
 * produced it, as policy_result would have. */
static void policy_merge_fps(struct sup *s, struct policy *to, bool judge)
{
	struct policy_news *nw = &to->news;

	for (size_t i = 0; i < nw->nfps; i++) {
		int64_t *n = fp_slot(to, nw->fps[i].fp);
		struct run_q *r;
		char why[320];

		if (++*n < s->cfg.max_fingerprint_repeats || !judge ||
		    nameset_has(&to->stopped_runs, nw->fps[i].run_id))
			continue;
		policy_add(s, &to->stopped_fps, &nw->stopped_fps, nw->fps[i].fp);
		policy_add(s, &to->stopped_runs, &nw->stopped_runs, nw->fps[i].run_id);
		snprintf(why, sizeof why,
		    "run stopped: fingerprint seen %lld times by the supervisors of the session"
		    " (--max-fingerprint-repeats %lld): %.200s",
		    (long long)*n, (long long)s->cfg.max_fingerprint_repeats, nw->fps[i].fp);
		log_about(LOG_WARN,
		    &(struct log_about){ .session = s->session_id, .run = nw->fps[i].run_id },
		    "[STOP] %s: %s", nw->fps[i].run_id, why + strlen("run stopped: "));
		if ((r = sched_run_find(s, nw->fps[i].run_id)) != NULL && !r->skipped)
			sched_skip_run(s, r, why);
	}
}

/* Carry out on the queues what changed between the old view and the new one: runs
 * stopped or deprioritised by another supervisor are skipped, runs a retry released are
 * drained again, runs sampled elsewhere are not sampled again here. */
static void policy_apply(struct sup *s, const struct policy *old, const struct policy *now)
{
	struct run_q *r;

	for (r = s->runs; r != NULL; r = r->next) {
		bool was = policy_holds_back(old, r->run_id),
		     is = policy_holds_back(now, r->run_id), sampled = r->sampled,
		     promising = r->promising;

		r->sampled = r->sampled || nameset_has(&now->sampled, r->run_id);
		r->promising = r->promising || nameset_has(&now->promising, r->run_id);
		/* A run sampled elsewhere waits in its new place (the heap keeps ranks). */
		if (r->sampled != sampled || r->promising != promising)
			sched_rerank(s, r);
		if (is && !was && !r->skipped) {
			log_about(LOG_INFO,
			    &(struct log_about){ .session = s->session_id, .run = r->run_id },
			    "run %s was %s by another supervisor of the session: nothing more of it"
			    " starts here",
			    r->run_id,
			    nameset_has(&now->stopped_runs, r->run_id) ? "stopped" :
			                                                 "deprioritised");
			sched_skip_run(s, r,
			    nameset_has(&now->stopped_runs, r->run_id) ?
			        "run stopped by another supervisor of the session" :
			        "run deprioritised by another supervisor of the session");
		} else if (was && !is && r->skipped) {
			log_about(LOG_INFO,
			    &(struct log_about){ .session = s->session_id, .run = r->run_id },
			    "run %s was released by a retry: drained again", r->run_id);
			r->skipped = false;
			free(r->skip_why);
			r->skip_why = NULL;
		}
	}
	sched_assert_ready(s);
}

/* Make the view the saved state `stored` plus this supervisor's news (judging the merged
 * fingerprint counts when `judge`), and carry out what changed. */
static void policy_merge(struct sup *s, const char *stored, bool judge)
{
	struct policy *p = &s->pol, now = { 0 };
	struct policy_news *nw;
	char why[200];

	if (policy_parse(&now, stored, why, sizeof why) != 0) {
		policy_free(&now);
		log_error("session %s: drain_sessions.state_json (the saved state of its drain "
		          "rules): %s; keeping this supervisor's",
		    s->session_id, why);
		return;
	}
	now.consecutive_zero = p->consecutive_zero;
	now.dirty = p->dirty;
	now.news = p->news;
	memset(&p->news, 0, sizeof p->news);
	nw = &now.news;
	for (size_t i = 0; i < nw->stopped_fps.n; i++)
		nameset_add(&now.stopped_fps, nw->stopped_fps.v[i]);
	for (size_t i = 0; i < nw->stopped_runs.n; i++)
		nameset_add(&now.stopped_runs, nw->stopped_runs.v[i]);
	for (size_t i = 0; i < nw->sampled.n; i++)
		nameset_add(&now.sampled, nw->sampled.v[i]);
	for (size_t i = 0; i < nw->promising.n; i++)
		nameset_add(&now.promising, nw->promising.v[i]);
	for (size_t i = 0; i < nw->deprioritized.n; i++)
		nameset_add(&now.deprioritized, nw->deprioritized.v[i]);
	policy_merge_fps(s, &now, judge);
	policy_apply(s, p, &now);
	policy_free(p);
	*p = now;
}

/* Save the policy state in the group, with `end` (the drain's report; NULL: none) under
 * the key "end"; with several supervisors, merged first. */
int policy_save(struct sup *s, struct json_t *end, struct store_err *err)
{
	char *state, *stored = NULL;
	json_t *j;
	int rc = 0;

	if (s->fleet_id > 0) {
		rc = store_fleet_session_state(s->sd, s->session_id, true, &stored, err);
		if (rc == 0)
			policy_merge(s, stored, true);
		free(stored);
	}
	if (rc != 0)
		return rc;
	j = policy_state(s);
	if (end != NULL)
		json_object_set(j, "end", end);
	state = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	rc = store_drain_session_state(s->sd, s->session_id, state, err);
	free(state);
	return rc;
}

/* The state is committed: nothing is news any more. */
void policy_saved(struct sup *s)
{
	s->pol.dirty = false;
	policy_news_free(&s->pol.news);
}

/* Hold the news aside while the group that merged them is in doubt. */
void policy_hold(struct sup *s)
{
	struct policy *p = &s->pol;

	assert(p->held.nfps == 0 && p->held.stopped_runs.n == 0 && p->held.sampled.n == 0);
	p->held = p->news;
	memset(&p->news, 0, sizeof p->news);
}

/* Move the names of `from` into `to` (once each); `from` is emptied. */
static void nameset_move(struct nameset *to, struct nameset *from)
{
	for (size_t i = 0; i < from->n; i++)
		nameset_add(to, from->v[i]);
	nameset_free(from);
}

/* Settle the held news: forgotten once committed, else news again before the others. */
void policy_held(struct sup *s, bool committed)
{
	struct policy_news *h = &s->pol.held, *nw = &s->pol.news;

	if (!committed) {
		h->fps = xrealloc(h->fps, (h->nfps + nw->nfps + 1) * sizeof *h->fps);
		if (nw->nfps > 0)
			memcpy(h->fps + h->nfps, nw->fps, nw->nfps * sizeof *nw->fps);
		h->nfps += nw->nfps;
		free(nw->fps);
		nw->fps = NULL;
		nw->nfps = 0;
		nameset_move(&h->stopped_fps, &nw->stopped_fps);
		nameset_move(&h->sampled, &nw->sampled);
		nameset_move(&h->promising, &nw->promising);
		nameset_move(&h->deprioritized, &nw->deprioritized);
		nameset_move(&h->stopped_runs, &nw->stopped_runs);
		*nw = *h;
		memset(h, 0, sizeof *h);
		return;
	}
	policy_news_free(h);
}

/* Read what the other supervisors of the session decided and carry it out (not while a
 * group is in doubt: its news, held aside, would be missing from the view). */
void policy_sync(struct sup *s)
{
	struct store_err err;
	char *stored = NULL;

	if (s->fleet_id == 0 || s->cfg.dry_run || db_in_transaction(s->st->db) || s->commit_doubt)
		return;
	if (store_fleet_session_state(s->sd, s->session_id, false, &stored, &err) != 0) {
		log_error("%s", err.text);
		return;
	}
	policy_merge(s, stored, false);
	free(stored);
}

/* A retry queued phases of `run_id` again: the run is no longer stopped or deprioritised
 * (the saved state is changed in the retry's own transaction). */
void policy_release_run(struct sup *s, const char *run_id)
{
	bool was = nameset_remove(&s->pol.stopped_runs, run_id);

	was = nameset_remove(&s->pol.deprioritized, run_id) || was;
	/* Not yet saved decisions would put the run back in the saved state. */
	nameset_remove(&s->pol.news.stopped_runs, run_id);
	nameset_remove(&s->pol.news.deprioritized, run_id);
	nameset_remove(&s->pol.held.stopped_runs, run_id);
	nameset_remove(&s->pol.held.deprioritized, run_id);
	s->pol.dirty = s->pol.dirty || was;
}

/* Free the policy state. */
void policy_free(struct policy *p)
{
	size_t i;

	for (i = 0; i < p->nfps; i++)
		free(p->fps[i].fp);
	free(p->fps);
	nameset_free(&p->stopped_fps);
	nameset_free(&p->sampled);
	nameset_free(&p->promising);
	nameset_free(&p->deprioritized);
	nameset_free(&p->stopped_runs);
	policy_news_free(&p->news);
	policy_news_free(&p->held);
	p->fps = NULL;
	p->nfps = 0;
}
