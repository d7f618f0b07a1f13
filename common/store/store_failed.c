/* Failed and stopped phases with their last attempt, and retrying them. */
#include "common/store/store_failed.h"
#include "common/store/store_fleet.h"
#include "common/store/dialect.h"
#include "common/store/store_internal.h"
#include "common/fingerprint/fingerprint.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/util.h"
#include "common/vocab.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The time a phase's listing is ordered and filtered by. */
#define FAILED_ENDED "coalesce(a.ended_at, p.last_attempt_timestamp, p.updated_at)"
/* Its failure reason. */
#define FAILED_REASON "coalesce(a.failure_reason, p.last_failure_reason)"

static const char failed_sql[] =
    "SELECT p.run_id, p.phase_id, p.state, a.attempt_id, a.attempt_number, a.outcome,"
    " " FAILED_REASON ", a.message, a.fingerprint, " FAILED_ENDED ", a.session_id, r.workspace,"
    " CASE WHEN r.id IS NULL THEN 1 ELSE 0 END"
    " FROM phases p LEFT JOIN runs r ON r.id = p.run_id"
    " LEFT JOIN attempts a ON a.attempt_id = (SELECT max(x.attempt_id) FROM attempts x"
    "   WHERE x.run_id = p.run_id AND x.phase_id = p.phase_id AND x.ended_at IS NOT NULL"
    "   AND x.dry_run = 0)"
    " WHERE (p.state = ?6"
    "   OR (NOT ?5 AND p.state IN (?7, ?8) AND a.outcome IS NOT NULL"
    "     AND a.outcome NOT IN (?9, ?10) AND p.updated_at <= a.ended_at)"
    "   OR (?5 AND CAST(?2 AS TEXT) IS NOT NULL AND p.state = ?8))"
    " AND (NOT ?5 OR r.id IS NOT NULL)"
    " AND (CAST(?1 AS TEXT) IS NULL OR p.run_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR p.phase_id = ?2)"
    " AND (CAST(?11 AS TEXT) IS NULL OR " FAILED_ENDED " >= ?3)"
    " AND (CAST(?4 AS TEXT) IS NULL OR upper(" FAILED_REASON ") = upper(?4))"
    " ORDER BY " FAILED_ENDED " DESC, p.run_id, p.phase_id";

/* Fill a listed phase from the current row (a store_rows fill). */
static void failed_row(struct db_stmt *q, void *item)
{
	struct store_failed *f = item;

	f->run_id = store_col_text(q, 0, "");
	f->phase_id = store_col_text(q, 1, "");
	f->state = store_col_text(q, 2, "");
	f->attempt_id = db_column_int64(q, 3);
	f->attempt_number = db_column_int64(q, 4);
	f->outcome = store_col_text(q, 5, NULL);
	f->reason = store_col_textn(q, 6, &f->reason_len);
	f->message = store_col_text(q, 7, NULL);
	f->fingerprint = store_col_text(q, 8, NULL);
	f->ended_at = store_col_text(q, 9, NULL);
	f->session_id = store_col_text(q, 10, NULL);
	f->workspace = store_col_text(q, 11, NULL);
	f->run_missing = db_column_int64(q, 12) != 0;
}

/* Free one listed phase's strings. */
static void failed_item_free(void *item)
{
	struct store_failed *f = item;

	free(f->run_id);
	free(f->phase_id);
	free(f->state);
	free(f->outcome);
	free(f->reason);
	free(f->message);
	free(f->fingerprint);
	free(f->ended_at);
	free(f->session_id);
	free(f->workspace);
}

/* Free a list of failed phases. */
void store_failed_free(struct store_failed *v, size_t n)
{
	store_rows_free(v, n, sizeof *v, failed_item_free);
}

/* Parse a retry's selectors and note; -1 with err naming what is wrong. */
int store_retry_args_parse(
    char *const *args, size_t n, struct store_retry_args *out, char *err, size_t errlen)
{
	struct store_failed_filter *f = &out->filter;
	const char *pos[2] = { NULL, NULL };
	size_t i, npos = 0, len = 0;
	bool all = false;

	memset(out, 0, sizeof *out);
	f->failed_only = true;
	for (i = 0; i < n; i++) {
		const char *a = args[i], **slot = NULL;

		if (strcmp(a, "--all-failed") == 0) {
			all = true;
		} else if (strcmp(a, "--stopped") == 0) {
			out->stopped = true;
		} else if (strcmp(a, "--run") == 0) {
			slot = &f->run_id;
		} else if (strcmp(a, "--fingerprint") == 0) {
			slot = &f->fingerprint;
		} else if (strcmp(a, "--reason") == 0) {
			slot = &f->reason;
		} else if (strcmp(a, "--note") == 0) {
			slot = &out->note;
		} else if (a[0] == '-' && a[1] == '-') {
			snprintf(err, errlen, "retry: unknown option \"%s\"", a);
			return -1;
		} else if (npos < 2) {
			pos[npos++] = a;
			continue;
		} else {
			snprintf(err, errlen, "retry: unexpected argument \"%s\"", a);
			return -1;
		}
		if (slot != NULL && (i + 1 == n || args[i + 1][0] == '\0')) {
			snprintf(err, errlen, "retry: %s needs a value", a);
			return -1;
		}
		if (slot != NULL && *slot != NULL && strcmp(*slot, args[i + 1]) == 0) {
			i++; /* the same value again: taken once */
			continue;
		}
		if (slot != NULL && *slot != NULL) {
			snprintf(err, errlen, "retry: %s given twice", a);
			return -1;
		}
		if (slot != NULL)
			*slot = args[++i];
		if (slot != &out->note)
			len += (size_t)snprintf(out->selector + len,
			    len < sizeof out->selector ? sizeof out->selector - len : 0, "%s%s%s%s",
			    len > 0 ? " " : "", a, slot != NULL ? " " : "",
			    slot != NULL ? *slot : "");
	}
	if (npos == 1) {
		snprintf(err, errlen, "retry: give RUN and PHASE, not only \"%s\"", pos[0]);
		return -1;
	}
	if (npos == 2 &&
	    (all || f->run_id != NULL || f->fingerprint != NULL || f->reason != NULL)) {
		snprintf(err, errlen, "retry: RUN PHASE names one phase; drop the other selectors");
		return -1;
	}
	if (out->stopped && (all || npos == 2)) {
		snprintf(err, errlen,
		    "retry: --stopped takes the stopped QUEUED phases (with --run, --fingerprint or"
		    " --reason, those they select); drop %s",
		    all ? "--all-failed" : "RUN PHASE");
		return -1;
	}
	if (out->stopped) {
		f->failed_only = false;
		f->stopped_only = true;
		return 0;
	}
	if (all && (f->run_id != NULL || f->fingerprint != NULL || f->reason != NULL)) {
		snprintf(err, errlen,
		    "retry: --all-failed takes every FAILED phase; drop it or the other selectors");
		return -1;
	}
	if (npos == 0 && !all && f->run_id == NULL && f->fingerprint == NULL && f->reason == NULL) {
		snprintf(err, errlen,
		    "retry: say what to retry: RUN PHASE, --run R, --fingerprint FP, --reason R,"
		    " --all-failed or --stopped");
		return -1;
	}
	if (npos == 2) {
		f->run_id = pos[0];
		f->phase_id = pos[1];
		snprintf(out->selector, sizeof out->selector, "%s %s", pos[0], pos[1]);
	}
	return 0;
}

/* Explain why phase (run, phase) cannot be retried: it does not exist, its state, or its
 * run has no row. */
static int failed_explain(
    struct store *st, const char *run_id, const char *phase_id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db,
	    "SELECT p.state, CASE WHEN r.id IS NULL THEN 1 ELSE 0 END FROM phases p"
	    " LEFT JOIN runs r ON r.id = p.run_id WHERE p.run_id = ?1 AND p.phase_id = ?2",
	    &q);
	const char *state;
	/* The ids as an argument or another program's row gave them: shown escaped. */
	char run[256], phase[256], shown_state[64];

	utf8_one_line(run, run_id, sizeof run);
	utf8_one_line(phase, phase_id, sizeof phase);
	if (rc == DB_OK) {
		store_bind_text(q, 1, run_id);
		store_bind_text(q, 2, phase_id);
		rc = db_step(q);
	}
	state = rc == DB_ROW ? db_column_text(q, 0) : NULL;
	if (rc == DB_ROW && db_column_int64(q, 1) != 0 && state != NULL &&
	    (phase_state_parse(state) == PHASE_FAILED || phase_state_parse(state) == PHASE_SKIPPED))
		rc = store_fail(err, STORE_EINVAL,
		    "phase %s/%s: no row of runs has the id %s (another program's rows); a drain "
		    "never dispatches a phase without its run, so it is not retried: give it its "
		    "run back, or delete it",
		    run, phase, run);
	else if (rc == DB_ROW)
		rc = store_fail(err, STORE_EINVAL, "phase %s/%s is %s, not FAILED or SKIPPED", run,
		    phase,
		    utf8_one_line(shown_state, state != NULL ? state : "NULL", sizeof shown_state));
	else if (rc == DB_DONE)
		rc = store_fail(err, STORE_EINVAL, "no phase '%s' in run '%s'", phase, run);
	else
		rc = store_fail(err, STORE_EIO, "%s: reading phase %s/%s: %s", st->path, run, phase,
		    db_errmsg(st->db));
	db_finalize(q);
	return rc;
}

int store_run_exists(struct store *st, const char *run_id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db, "SELECT 1 FROM runs WHERE id = ?1", &q);
	char run[256];

	utf8_one_line(run, run_id, sizeof run);
	if (rc == DB_OK) {
		store_bind_text(q, 1, run_id);
		rc = db_step(q);
	}
	if (rc == DB_ROW)
		rc = 0;
	else if (rc == DB_DONE)
		rc = store_fail(err, STORE_EINVAL, "no run '%s' in the database", run);
	else
		rc = store_fail(
		    err, STORE_EIO, "%s: reading run %s: %s", st->path, run, db_errmsg(st->db));
	db_finalize(q);
	return rc;
}

/* Keep only the items whose fingerprint `name` names. */
static void failed_keep_fingerprint(struct store_failed *v, size_t *n, const char *name)
{
	size_t i, k = 0;

	for (i = 0; i < *n; i++) {
		if (v[i].fingerprint != NULL && fp_id_matches(v[i].fingerprint, name))
			v[k++] = v[i];
		else
			failed_item_free(&v[i]);
	}
	*n = k;
}

/* Whether the n bytes at a are the text b, ignoring the case of ASCII letters. */
static bool failed_same_text(const char *a, size_t n, const char *b)
{
	if (n != strlen(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
			return false;
	return true;
}

/* Keep only the items whose reason is `name` in any case, as it is or as a terminal shows
 * it (utf8_escape: "CHECK\x00FAILED" for a reason holding a NUL byte, which no argument
 * can). */
static void failed_keep_reason(struct store_failed *v, size_t *n, const char *name)
{
	size_t i, k = 0;

	for (i = 0; i < *n; i++) {
		struct strbuf shown = { 0 };
		bool keep = false;

		if (v[i].reason != NULL) {
			utf8_escape(&shown, v[i].reason, v[i].reason_len);
			keep = failed_same_text(v[i].reason, v[i].reason_len, name) ||
			    failed_same_text(shown.s, shown.len, name);
			free(shown.s);
		}
		if (keep)
			v[k++] = v[i];
		else
			failed_item_free(&v[i]);
	}
	*n = k;
}

/* Keep only the stopped QUEUED items whose run has a row. */
static void failed_keep_stopped(struct store_failed *v, size_t *n)
{
	size_t i, k = 0;

	for (i = 0; i < *n; i++) {
		if (phase_state_parse(v[i].state) == PHASE_QUEUED && !v[i].run_missing)
			v[k++] = v[i];
		else
			failed_item_free(&v[i]);
	}
	*n = k;
}

/* List the failed and stopped phases a filter selects; STORE_EIO, or STORE_EINVAL for a named
 * phase that cannot be retried or a run the database does not hold. */
int store_failed_list(struct store *st, const struct store_failed_filter *f,
    struct store_failed **out, size_t *n, struct store_err *err)
{
	struct store_rows l = {
		.size = sizeof **out, .fill = failed_row, .item_free = failed_item_free
	};
	struct db_stmt *q = NULL;
	bool escaped = f->reason != NULL && strchr(f->reason, '\\') != NULL;
	int rc = db_prepare(st->db, failed_sql, &q);

	if (rc == DB_OK) {
		store_bind_text(q, 1, f->run_id);
		store_bind_text(q, 2, f->phase_id);
		store_bind_text(q, 3, f->since);
		/* a reason with a backslash may be one shown escaped: matched below */
		store_bind_text(q, 4, escaped ? NULL : f->reason);
		db_bind_int64(q, 5, f->failed_only);
		store_bind_text(q, 6, phase_state_name(PHASE_FAILED));
		store_bind_text(q, 7, phase_state_name(PHASE_QUEUED));
		store_bind_text(q, 8, phase_state_name(PHASE_SKIPPED));
		store_bind_text(q, 9, outcome_name(OUTCOME_SUCCESS));
		store_bind_text(q, 10, outcome_name(OUTCOME_DRY_RUN));
		/* ?3 again, tested for NULL as text: ?3 itself is a time on PostgreSQL. */
		store_bind_text(q, 11, f->since);
	}
	rc = store_rows_read(st->db, q, rc, &l, err, "%s: reading failed phases", st->path);
	*out = l.v;
	*n = l.n;
	if (rc == 0 && f->fingerprint != NULL)
		failed_keep_fingerprint(*out, n, f->fingerprint);
	if (rc == 0 && escaped)
		failed_keep_reason(*out, n, f->reason);
	if (rc == 0 && f->stopped_only)
		failed_keep_stopped(*out, n);
	if (rc == 0 && *n == 0 && f->phase_id != NULL && f->failed_only)
		rc = failed_explain(st, f->run_id, f->phase_id, err);
	else if (rc == 0 && *n == 0 && f->run_id != NULL)
		rc = store_run_exists(st, f->run_id, err);
	return rc;
}

/* Inside a retry's transaction, record in control_log that phase f was retried, with
 * result as its text. */
static int failed_log(struct store *st, const struct store_failed *f,
    const struct store_retry_who *who, const char *now, const char *result, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *args = xasprintf("%s %s", f->run_id, f->phase_id);
	int rc = db_prepare(st->db,
	    "INSERT INTO control_log (at, peer_pid, peer_uid, command, args, ok, result)"
	    " VALUES (?1, ?2, ?3, 'retry', ?4, 1, ?5)",
	    &q);

	if (rc == DB_OK) {
		store_bind_text(q, 1, now);
		db_bind_int64(q, 2, who->pid);
		db_bind_int64(q, 3, who->uid);
		store_bind_text(q, 4, args);
		store_bind_text(q, 5, result);
	}
	rc = store_step_done(
	    st->db, q, rc, err, "%s: recording the retry in control_log", st->path);
	free(args);
	return rc;
}

/* Inside the retry's transaction, move one phase from its listed state to QUEUED and log
 * it; f->retried says whether it moved. */
static int failed_retry_one(struct store *st, struct store_failed *f,
    const struct store_retry_who *who, const char *now, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *result;
	int rc;

	rc = db_prepare(st->db,
	    "UPDATE phases SET state = ?3, updated_at = ?4"
	    " WHERE run_id = ?1 AND phase_id = ?2 AND state = ?5 AND state IN (?6, ?7)",
	    &q);
	if (rc == DB_OK) {
		store_bind_text(q, 1, f->run_id);
		store_bind_text(q, 2, f->phase_id);
		store_bind_text(q, 3, phase_state_name(PHASE_QUEUED));
		store_bind_text(q, 4, now);
		store_bind_text(q, 5, f->state);
		store_bind_text(q, 6, phase_state_name(PHASE_FAILED));
		store_bind_text(q, 7, phase_state_name(PHASE_SKIPPED));
	}
	rc = store_step_done(
	    st->db, q, rc, err, "%s: queueing %s/%s again", st->path, f->run_id, f->phase_id);
	f->retried = false;
	if (rc != 0 || db_changes(st->db) != 1)
		return rc;
	if ((rc = store_tier_follow_phase(st->db, f->run_id, f->phase_id, now, err)) != 0)
		return rc;
	result = xasprintf("%s -> %s; selected by: %s%s%s; via %s", f->state,
	    phase_state_name(PHASE_QUEUED), who->selector, who->note != NULL ? "; note: " : "",
	    who->note != NULL ? who->note : "", who->via);
	rc = failed_log(st, f, who, now, result, err);
	free(result);
	f->retried = rc == 0;
	return rc;
}

/* Inside the retry's transaction: drain the retried phases' runs again in every unfinished
 * session (no longer stopped or deprioritised, so a --resume drains them too), and on
 * PostgreSQL wake every supervisor when the retry commits. */
static int failed_retry_release(
    struct store *st, const struct store_failed *v, size_t n, struct store_err *err)
{
	struct db_stmt *q;
	size_t i, j;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		if (!v[i].retried)
			continue;
		for (j = 0; j < i && !(v[j].retried && strcmp(v[j].run_id, v[i].run_id) == 0); j++)
			;
		if (j < i)
			continue;
		q = NULL;
		rc = db_prepare(st->db, st->db->dialect->release_run, &q);
		if (rc == DB_OK)
			store_bind_text(q, 1, v[i].run_id);
		rc = store_step_done(st->db, q, rc, err,
		    "%s: releasing run %s in the drain sessions", st->url, v[i].run_id);
	}
	return rc == 0 && store_fleet(st) ? store_fleet_wake(st, err) : rc;
}

/* One phase's change inside the transaction of failed_apply. */
typedef int (*failed_one_fn)(struct store *st, struct store_failed *f,
    const struct store_retry_who *who, const char *now, struct store_err *err);

/* Apply one to each listed phase, then release their runs, in one transaction; on failure
 * nothing is written and no phase counts as moved. */
static int failed_apply(struct store *st, struct store_failed *v, size_t n,
    const struct store_retry_who *who, size_t *moved, struct store_err *err, failed_one_fn one)
{
	char now[32];
	size_t i;
	int rc;

	*moved = 0;
	db_now(st->db, now);
	if ((rc = store_begin(st->db, "starting the retry", err)) != 0)
		return rc;
	for (i = 0; i < n && rc == 0; i++)
		rc = one(st, &v[i], who, now, err);
	if (rc == 0)
		rc = failed_retry_release(st, v, n, err);
	if (rc == 0)
		rc = store_commit(st->db, "committing the retry", err);
	if (rc != 0)
		db_rollback(st->db);
	for (i = 0; i < n; i++) {
		v[i].retried = v[i].retried && rc == 0;
		*moved += v[i].retried;
	}
	return rc;
}

/* Queue the listed phases again in one transaction; on failure nothing is written. */
int store_failed_retry(struct store *st, struct store_failed *v, size_t n,
    const struct store_retry_who *who, size_t *moved, struct store_err *err)
{
	return failed_apply(st, v, n, who, moved, err, failed_retry_one);
}

/* Inside the release's transaction: mark one stopped phase as changed now, if it is still
 * QUEUED, and log it; f->retried says whether it was. */
static int failed_release_one(struct store *st, struct store_failed *f,
    const struct store_retry_who *who, const char *now, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *result;
	int rc;

	f->retried = false;
	rc = db_prepare(st->db,
	    "UPDATE phases SET updated_at = ?3 WHERE run_id = ?1 AND phase_id = ?2 AND state = ?4",
	    &q);
	if (rc == DB_OK) {
		store_bind_text(q, 1, f->run_id);
		store_bind_text(q, 2, f->phase_id);
		store_bind_text(q, 3, now);
		store_bind_text(q, 4, phase_state_name(PHASE_QUEUED));
	}
	rc = store_step_done(st->db, q, rc, err, "%s: putting %s/%s back in the drain", st->path,
	    f->run_id, f->phase_id);
	if (rc != 0 || db_changes(st->db) != 1)
		return rc;
	result = xasprintf("%s (stopped) -> back in the drain; selected by: %s%s%s; via %s",
	    f->state, who->selector, who->note != NULL ? "; note: " : "",
	    who->note != NULL ? who->note : "", who->via);
	rc = failed_log(st, f, who, now, result, err);
	free(result);
	f->retried = rc == 0;
	return rc;
}

/* Put the listed stopped phases back in the drain in one transaction; on failure nothing is
 * written. */
int store_failed_release(struct store *st, struct store_failed *v, size_t n,
    const struct store_retry_who *who, size_t *moved, struct store_err *err)
{
	return failed_apply(st, v, n, who, moved, err, failed_release_one);
}
