/* Rows the writer commits besides attempt ends: telemetry events (keyed by (attempt, seq),
 * so a repeat is ignored; an llm_request, llm_usage or token_estimation_v2 event also gets
 * its typed row) and control_log rows. An HTTP try is announced by an llm_request event
 * before it is sent: its llm_usage_events row is written then, status 'sent', and the
 * try's llm_usage event completes that row (store_drain_attempt.c turns the rows still
 * 'sent' when the attempt ends into 'lost'). The first try of an attempt's first call has
 * its row reserved with the attempt (store_drain_attempt.c, seq NULL): its llm_request
 * event confirms that row (its seq, max_tokens, provider, model and role) instead of
 * inserting one. */
#include "common/store/store_drain_internal.h"
#include "common/store/store_estimation.h"
#include "common/util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

const struct drain_sql drain_sql_event[] = {
	/* Only a repeated key is ignored: any other constraint failure is an error. */
	{ DS_EV_KEY,
	    "INSERT INTO events (attempt_id, seq, kind, created_at, level, message)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (attempt_id, seq) DO NOTHING" },
	/* The kind of the event that holds (attempt, seq): read when DS_EV_KEY wrote nothing,
	 * to tell a repeat from an insert something else skipped. */
	{ DS_EV_HELD, "SELECT kind FROM events WHERE attempt_id = ?1 AND seq = ?2" },
	/* is_doctor_call in both inserts (false, bound as 0): the original's value (common/store/store_original.c);
	 * an adopted table has no SQL default for it. */
	{ DS_EV_USAGE,
	    "INSERT INTO llm_usage_events (provider, model, run_id, phase_id, role, total_tokens,"
	    " prompt_tokens, completion_tokens, created_at, attempt_id, seq, status, http_status,"
	    " error_class, latency_ms, try_number, is_doctor_call)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)" },
	{ DS_EV_SENT,
	    "INSERT INTO llm_usage_events (provider, model, run_id, phase_id, role, total_tokens,"
	    " created_at, attempt_id, seq, status, max_tokens, try_number, is_doctor_call)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?12)" },
	/* The try's own row, announced last: the newest 'sent' row of the attempt with a seq
	 * (announced, or reserved and confirmed). Its seq, an indexed column, is not written:
	 * an UPDATE that sets it rewrites its entry in the index on (attempt_id, seq), even
	 * to the same value. */
	{ DS_EV_DONE,
	    "UPDATE llm_usage_events SET total_tokens = ?2, prompt_tokens = ?3,"
	    " completion_tokens = ?4, status = ?5, http_status = ?6, error_class = ?7,"
	    " latency_ms = ?8, provider = ?11, model = ?12, role = ?13"
	    " WHERE id = (SELECT id FROM llm_usage_events WHERE attempt_id = ?1 AND status = ?9"
	    "   AND try_number = ?10 AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1)" },
	/* The same when DS_EV_DONE found no row: a reserved row the try never announced (seq
	 * NULL) takes the report's seq (?14). */
	{ DS_EV_DONE_RESERVED,
	    "UPDATE llm_usage_events SET total_tokens = ?2, prompt_tokens = ?3,"
	    " completion_tokens = ?4, status = ?5, http_status = ?6, error_class = ?7,"
	    " latency_ms = ?8, provider = ?11, model = ?12, role = ?13, seq = COALESCE(seq, ?14)"
	    " WHERE id = (SELECT id FROM llm_usage_events WHERE attempt_id = ?1 AND status = ?9"
	    "   AND try_number = ?10 ORDER BY seq DESC LIMIT 1)" },
	/* The reserved row of the attempt's first try, not yet confirmed (seq NULL: an attempt
	 * has at most one); a NULL value keeps the reserved one. Found by its id: an UPDATE
	 * that found its row through the (attempt_id, seq) index it rewrites would gather the
	 * rows in a temporary table first. */
	{ DS_EV_CONFIRM,
	    "UPDATE llm_usage_events SET seq = ?2, provider = COALESCE(?4, provider),"
	    " model = COALESCE(?5, model), role = COALESCE(?6, role),"
	    " max_tokens = COALESCE(?7, max_tokens)"
	    " WHERE id = (SELECT id FROM llm_usage_events WHERE attempt_id = ?1 AND status = ?3"
	    "   AND try_number = 1 AND seq IS NULL LIMIT 1)" },
	/* The same found by the id the row was inserted with (drain_try.reserved_id), which
	 * the rest of the WHERE checks is still that row: one look-up by the row id, not a
	 * search of the attempt's rows. */
	{ DS_EV_CONFIRM_ID,
	    "UPDATE llm_usage_events SET seq = ?2, provider = COALESCE(?4, provider),"
	    " model = COALESCE(?5, model), role = COALESCE(?6, role),"
	    " max_tokens = COALESCE(?7, max_tokens)"
	    " WHERE id = ?8 AND attempt_id = ?1 AND status = ?3 AND try_number = 1"
	    " AND seq IS NULL" },
	{ DS_CTL_LOG,
	    "INSERT INTO control_log (at, peer_pid, peer_uid, command, args, ok, result)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)" },
};
const size_t drain_sql_event_n = ARRAY_SIZE(drain_sql_event);

/* Bind a count, or NULL when it is negative (unknown). */
static void bind_count(struct db_stmt *s, int i, int64_t v)
{
	if (v >= 0)
		db_bind_int64(s, i, v);
	else
		db_bind_null(s, i);
}

/* Bind a count through `k`, or NULL when it is negative (unknown). */
static void keep_count(struct db_stmt *s, struct bind_keep *k, int i, int64_t v)
{
	if (v >= 0)
		bind_keep_int64(s, k, i, v);
	else
		bind_keep_text(s, k, i, NULL);
}

/* Statement `i` for the next event: left reset by its last drain_exec, with its old
 * bindings kept. The caller binds every parameter whose value differs from what it holds
 * (bind_keep: d->keep_key, d->keep_usage) and `now` always; texts are bound without a
 * copy: the event and its op live until their group has ended (the writer frees them
 * after the commit), which forgets what the parameters hold (store_drain.c). */
static struct db_stmt *event_stmt(struct store_drain *d, enum drain_stmt i)
{
	assert(i < DS_COUNT && d->stmt[i] != NULL);
	return d->stmt[i];
}

/* Whether `id` is in the set. */
static bool ids_has(const struct drain_ids *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return true;
	return false;
}

/* Add `id` to the set unless it is there. */
static void ids_add(struct drain_ids *s, uint64_t id)
{
	if (ids_has(s, id))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap != 0 ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = id;
}

/* The tries attempt `att` announced, or NULL. */
static struct drain_try *tries_find(struct drain_tries *t, uint64_t att)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].attempt_id == att)
			return &t->v[i];
	return NULL;
}

/* The tries of attempt `att`, added when it has none yet. */
static struct drain_try *tries_get(struct drain_tries *t, uint64_t att)
{
	struct drain_try *y = tries_find(t, att);

	if (y != NULL)
		return y;
	if (t->n == t->cap) {
		t->cap = t->cap != 0 ? t->cap * 2 : 16;
		t->v = xrealloc(t->v, t->cap * sizeof *t->v);
	}
	t->v[t->n] = (struct drain_try){ .attempt_id = att };
	return &t->v[t->n++];
}

void drain_announced_reserve(struct store_drain *d, uint64_t att, int64_t id)
{
	struct drain_try *y = tries_get(&d->announced, att);

	/* Set, not added to: an id a rolled-back round had used may be given again. */
	*y = (struct drain_try){
		.attempt_id = att, .sent = 1, .reserved_id = id, .reserved = true
	};
#ifdef AUTOPACK_MUTANT_reserved_row_never_lost
	y->sent = 0;
#endif
}

bool drain_announced_close(struct store_drain *d, uint64_t att, bool *reserved)
{
	struct drain_try *y = tries_find(&d->announced, att);

	*reserved = y != NULL && y->reserved;
	if (y == NULL)
		return false;
	ids_add(&d->closing, att);
	/* Every 'sent' row inserted was completed since (sent over-counts, done does not). */
	return y->sent != y->done + y->done_open;
}

void drain_announced_end(struct store_drain *d, bool committed)
{
	for (size_t j = 0; j < d->announced.n; j++) {
		struct drain_try *y = &d->announced.v[j];

		y->done += committed ? y->done_open : 0;
		y->done_open = 0;
	}
	for (size_t i = 0; committed && i < d->closing.n; i++) {
		struct drain_try *y = tries_find(&d->announced, d->closing.v[i]);

		if (y != NULL)
			*y = d->announced.v[--d->announced.n];
	}
	d->closing.n = 0;
}

/* Step confirmation statement `i` (DS_EV_CONFIRM or DS_EV_CONFIRM_ID) on the reserved row
 * of attempt y's first try; *done when it changed that row. */
static int confirm_step(struct store_drain *d, enum drain_stmt i, const struct drain_try *y,
    uint64_t seq, const struct drain_request *q, bool *done, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, i);
	int rc;

	db_bind_int64(s, 1, (int64_t)y->attempt_id);
	db_bind_int64(s, 2, (int64_t)seq);
	store_bind_text(s, 3, usage_status_name(USAGE_SENT));
	store_bind_text(s, 4, q != NULL ? q->provider : NULL);
	store_bind_text(s, 5, q != NULL ? q->model : NULL);
	store_bind_text(s, 6, q != NULL ? q->role : NULL);
	if (q != NULL)
		db_bind_int64(s, 7, q->max_tokens);
	else
		db_bind_null(s, 7);
	if (i == DS_EV_CONFIRM_ID)
		db_bind_int64(s, 8, y->reserved_id);
	rc = drain_exec(d, i, err);
	*done = rc == 0 && db_changes(d->st->db) == 1;
	return rc;
}

/* Confirm the reserved row of attempt y's first try with the try's seq and, when `q` is
 * not NULL, its values (else the reserved ones stay); *done when there was such a row
 * (counted when it was reserved). The row is looked up by the id it was inserted with when
 * known, and searched for among the attempt's rows when not, or when that id no longer
 * names it (a rolled-back group may have given the id to another row). */
static int event_confirm(struct store_drain *d, const struct drain_try *y, uint64_t seq,
    const struct drain_request *q, bool *done, struct store_err *err)
{
	int rc = 0;

	*done = false;
	if (y->reserved_id > 0)
		rc = confirm_step(d, DS_EV_CONFIRM_ID, y, seq, q, done, err);
	if (rc == 0 && !*done)
		rc = confirm_step(d, DS_EV_CONFIRM, y, seq, q, done, err);
	return rc;
}

/* Insert the 'sent' row of an announced try, or confirm the reserved one of the
 * attempt's first try. */
static int event_request(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct drain_event *ev, const char *now, struct store_err *err)
{
	const struct drain_request *q = &ev->u.request;
	struct drain_try *y = tries_find(&d->announced, ev->attempt_id);
	struct db_stmt *s;
	bool done = false;
	int rc;

	/* A try 1 of a later call finds the row confirmed already, and inserts its own. */
	if (q->try_number == 1 && y != NULL && y->reserved &&
	    ((rc = event_confirm(d, y, ev->seq, q, &done, err)) != 0 || done))
		return rc;
	s = drain_stmt(d, DS_EV_SENT);

	store_bind_text(s, 1, q->provider);
	store_bind_text(s, 2, q->model);
	store_bind_text(s, 3, run_id);
	store_bind_text(s, 4, phase_id);
	store_bind_text(s, 5, q->role);
	store_bind_text(s, 6, now);
	db_bind_int64(s, 7, (int64_t)ev->attempt_id);
	db_bind_int64(s, 8, (int64_t)ev->seq);
	store_bind_text(s, 9, usage_status_name(USAGE_SENT));
	db_bind_int64(s, 10, q->max_tokens);
	db_bind_int64(s, 11, q->try_number);
	db_bind_int64(s, 12, 0);
	/* Counted even if the transaction rolls back: a count too high only makes the
	 * attempt's end look for 'sent' rows. */
	tries_get(&d->announced, ev->attempt_id)->sent++;
	return drain_exec(d, DS_EV_SENT, err);
}

/* Complete the announced row of a try with its usage; sets *done when there was one. */
static int event_usage_done(
    struct store_drain *d, const struct drain_event *ev, bool *done, struct store_err *err)
{
	const struct drain_usage *u = &ev->u.usage;
	struct drain_try *y;
	struct db_stmt *s;
	int rc;

	/* No try of the attempt was announced, or every row announced (or reserved) is
	 * completed: there is no row to complete, and looking would scan the attempt's rows
	 * (every usage event of an attempt: O(n²)). */
	*done = false;
	if ((y = tries_find(&d->announced, ev->attempt_id)) == NULL ||
	    y->sent <= y->done + y->done_open)
		return 0;
	for (enum drain_stmt i = DS_EV_DONE; i <= DS_EV_DONE_RESERVED && !*done; i++) {
		s = drain_stmt(d, i);
		db_bind_int64(s, 1, (int64_t)ev->attempt_id);
		db_bind_int64(s, 2, u->total_tokens < 0 ? 0 : u->total_tokens);
		bind_count(s, 3, u->prompt_tokens);
		bind_count(s, 4, u->completion_tokens);
		store_bind_text(
		    s, 5, usage_status_name(u->error_class == NULL ? USAGE_OK : USAGE_ERROR));
		bind_count(s, 6, u->http_status);
		store_bind_text(s, 7, u->error_class);
		bind_count(s, 8, u->latency_ms);
		store_bind_text(s, 9, usage_status_name(USAGE_SENT));
		db_bind_int64(s, 10, u->try_number);
		store_bind_text(s, 11, u->provider);
		store_bind_text(s, 12, u->model);
		store_bind_text(s, 13, u->role);
		if (i == DS_EV_DONE_RESERVED)
			db_bind_int64(s, 14, (int64_t)ev->seq);
		if ((rc = drain_exec(d, i, err)) != 0)
			return rc;
		*done = db_changes(d->st->db) == 1;
	}
	y->done_open += *done;
	return 0;
}

/* Record the typed row of an llm_usage event: complete its announced row, or insert one
 * (a try that was not announced). */
static int event_usage(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct drain_event *ev, const char *now, struct store_err *err)
{
	const struct drain_usage *u = &ev->u.usage;
	struct bind_keep *k;
	struct db_stmt *s;
	bool done = false;
	int rc = event_usage_done(d, ev, &done, err);

	if (rc != 0 || done)
		return rc;
	s = event_stmt(d, DS_EV_USAGE);
	k = &d->keep_usage;
	bind_keep_text(s, k, 1, u->provider);
	bind_keep_text(s, k, 2, u->model);
	bind_keep_text(s, k, 3, run_id);
	bind_keep_text(s, k, 4, phase_id);
	bind_keep_text(s, k, 5, u->role);
	bind_keep_int64(s, k, 6, u->total_tokens < 0 ? 0 : u->total_tokens);
	keep_count(s, k, 7, u->prompt_tokens);
	keep_count(s, k, 8, u->completion_tokens);
	db_bind_text_kept(s, 9, now);
	bind_keep_int64(s, k, 10, (int64_t)ev->attempt_id);
	bind_keep_int64(s, k, 11, (int64_t)ev->seq);
	bind_keep_text(
	    s, k, 12, usage_status_name(u->error_class == NULL ? USAGE_OK : USAGE_ERROR));
	keep_count(s, k, 13, u->http_status);
	bind_keep_text(s, k, 14, u->error_class);
	keep_count(s, k, 15, u->latency_ms);
	keep_count(s, k, 16, u->try_number);
	bind_keep_int64(s, k, 17, 0);
	return drain_exec(d, DS_EV_USAGE, err);
}

/* Insert the typed row of a token_estimation_v2 event. */
static int event_estimation(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct drain_event *ev, const char *now, struct store_err *err)
{
	struct store_estimation e = ev->u.est;

	e.run_id = run_id;
	e.phase_id = phase_id;
	e.timestamp = e.created_at = now;
	e.attempt_id = ev->attempt_id;
	e.seq = ev->seq;
	return store_estimation_insert(d->st, d->estimation, &e, err);
}

/* Why DS_EV_KEY wrote no row for `ev`: *held is 1 when its key holds an event of its
 * kind (a repeat: the duplicate the conflict clause is for), 0 when it holds one of
 * another kind (a different event under its key, which another program wrote), -1 when
 * no row holds the key (a trigger or rule of another program's on events skipped the
 * insert). STORE_EIO when the key could not be read. */
static int event_held(
    struct store_drain *d, const struct drain_event *ev, int *held, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_EV_HELD);
	int rc;

	db_bind_int64(s, 1, (int64_t)ev->attempt_id);
	db_bind_int64(s, 2, (int64_t)ev->seq);
	rc = db_step(s);
	if (rc == DB_ROW) {
		const char *kind = db_column_text(s, 0);

		*held = kind != NULL && strcmp(kind, event_kind_name(ev->kind)) == 0 ? 1 : 0;
	} else
		*held = -1;
	db_reset(s);
	if (rc != DB_ROW && rc != DB_DONE)
		return drain_fail(d, err, "reading the key of an event");
	return 0;
}

/* Refuse event `ev`, which DS_EV_KEY did not write though no repeat of it holds its key
 * (held: as event_held says): STORE_EIO, with the reason kept as a refusal's
 * (store_drain_constraint_failed), so that the writer records it as a write the database
 * refused, not as a duplicate. */
static int event_skipped(
    struct store_drain *d, const struct drain_event *ev, int held, struct store_err *err)
{
	if (held < 0)
		snprintf(d->skipped, sizeof d->skipped,
		    "the insert of event %llu/%llu changed 0 rows of table events, and no row holds"
		    " its key (attempt_id, seq): a trigger or rule on events that is not autopack's"
		    " skipped it",
		    (unsigned long long)ev->attempt_id, (unsigned long long)ev->seq);
	else
		snprintf(d->skipped, sizeof d->skipped,
		    "the key (attempt_id %llu, seq %llu) of table events holds an event of another"
		    " kind than this %s event: not a repeat of it, but a row another program wrote",
		    (unsigned long long)ev->attempt_id, (unsigned long long)ev->seq,
		    event_kind_name(ev->kind));
	return store_fail(err, STORE_EIO, "%s: %s", d->st->path, d->skipped);
}

/* Record an event that cannot be stored, as an error row under its key. */
int store_drain_event_refused(struct store_drain *d, const struct drain_event *ev, const char *why,
    bool *dup, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_EV_KEY);
	char now[32], *msg = xasprintf("not stored: %s", why);
	int rc, held = 1;

	bind_keep_forget(&d->keep_key); /* cleared and bound here with copies */

	assert(db_in_transaction(d->st->db));
	db_now(d->st->db, now);
	db_bind_int64(s, 1, (int64_t)ev->attempt_id);
	db_bind_int64(s, 2, (int64_t)ev->seq);
	store_bind_text(s, 3, event_kind_name(ev->kind));
	store_bind_text(s, 4, now);
	store_bind_text(s, 5, "error");
	store_bind_text(s, 6, msg);
	free(msg);
	if ((rc = drain_exec(d, DS_EV_KEY, err)) != 0)
		return rc;
	*dup = db_changes(d->st->db) == 0;
	/* An error row skipped as the event was (no row holds the key) is no duplicate: the
	 * refusal the writer logged and counted is all that is left of the event. */
	if (*dup && (rc = event_held(d, ev, &held, err)) != 0)
		return rc;
	if (*dup && held < 0)
		*dup = false;
	else if (!*dup)
		drain_lives_count(d, ev->attempt_id, 1, 0);
	/* An announcement that cannot be stored may still have been sent: a reserved row it
	 * may stand for is confirmed as it was reserved, so that it is not taken for a try
	 * never made (and becomes 'lost' at the attempt's end). */
	if (!*dup && ev->kind == EVENT_LLM_REQUEST) {
		struct drain_try *y = tries_find(&d->announced, ev->attempt_id);
		bool done;

		if (y != NULL && y->reserved)
			rc = event_confirm(d, y, ev->seq, NULL, &done, err);
	}
	return rc;
}

/* Insert an event inside the group; a repeated (attempt, seq) sets *dup. */
int store_drain_event_insert(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct drain_event *ev, bool *dup, struct store_err *err)
{
	struct db_stmt *s = event_stmt(d, DS_EV_KEY);
	char now[32];
	int rc, held;

	assert(db_in_transaction(d->st->db));
	assert(ev->kind > EVENT_KIND_NONE && ev->kind < EVENT_KIND_COUNT);
	db_now(d->st->db, now);
	bind_keep_int64(s, &d->keep_key, 1, (int64_t)ev->attempt_id);
	bind_keep_int64(s, &d->keep_key, 2, (int64_t)ev->seq);
	bind_keep_text(s, &d->keep_key, 3, event_kind_name(ev->kind));
	db_bind_text_kept(s, 4, now);
	bind_keep_text(s, &d->keep_key, 5, ev->kind == EVENT_LOG ? ev->u.log.level : NULL);
	bind_keep_text(s, &d->keep_key, 6, ev->kind == EVENT_LOG ? ev->u.log.message : NULL);
	if ((rc = drain_exec(d, DS_EV_KEY, err)) != 0)
		return rc;
	*dup = db_changes(d->st->db) == 0;
#ifdef AUTOPACK_MUTANT_duplicate_events_written
	*dup = false;
#endif
	/* Nothing written: a repeat of the event, or an insert skipped for another reason,
	 * which is refused, not counted as a duplicate. */
	if (*dup && (rc = event_held(d, ev, &held, err)) == 0 && held != 1)
		rc = event_skipped(d, ev, held, err);
	if (*dup)
		return rc;
	if (ev->kind == EVENT_LLM_USAGE)
		rc = event_usage(d, run_id, phase_id, ev, now, err);
	else if (ev->kind == EVENT_LLM_REQUEST)
		rc = event_request(d, run_id, phase_id, ev, now, err);
	else if (ev->kind == EVENT_TOKEN_ESTIMATION_V2 &&
	    (rc = event_estimation(d, run_id, phase_id, ev, now, err)) == 0) {
		drain_lives_count(d, ev->attempt_id, 1, db_changes(d->st->db));
		return 0;
	}
	if (rc == 0)
		drain_lives_count(d, ev->attempt_id, 1, 0);
	return rc;
}

/* Append a control_log row inside the group. */
int store_drain_control_log(struct store_drain *d, int64_t peer_pid, int64_t peer_uid,
    const char *command, const char *args, bool ok, const char *result, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_CTL_LOG);
	char now[32];

	assert(db_in_transaction(d->st->db));
	db_now(d->st->db, now);
	store_bind_text(s, 1, now);
	db_bind_int64(s, 2, peer_pid);
	db_bind_int64(s, 3, peer_uid);
	store_bind_text(s, 4, command);
	store_bind_text(s, 5, args);
	db_bind_int64(s, 6, ok);
	store_bind_text(s, 7, result);
	return drain_exec(d, DS_CTL_LOG, err);
}
