/* A drain session's saved state (drain_sessions.state_json) read and checked: what a
 * supervisor resuming the session restores, and what `session show` summarises. */
#include "common/jsonload.h"
#include "common/store/store_session.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>

const char *const store_session_state_lists[STORE_SESSION_STATE_LISTS] = { "stopped_fingerprints",
	"stopped_runs", "sampled_runs", "promising_runs", "deprioritized_runs" };

/* 0 when the count `v` saved under `key` is absent or an integer from 0 to
 * STORE_SESSION_COUNT_MAX; else -1 with `why` naming the key and the value. */
static int state_count(const json_t *v, const char *key, char *why, size_t whylen)
{
	char *text;

	if (v == NULL ||
	    (json_is_integer(v) && json_integer_value(v) >= 0 &&
	        json_integer_value(v) <= STORE_SESSION_COUNT_MAX))
		return 0;
	text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	snprintf(why, whylen, "%s: %.40s is not a count from 0 to %d", key,
	    text != NULL ? text : "?", STORE_SESSION_COUNT_MAX);
	free(text);
	return -1;
}

/* 0 when the list `a` saved under `key` is absent or a JSON array of strings; else -1
 * with `why` naming the key (and the index of the first value that is not a name): the
 * state autopack saves holds names only, so another program's value, read as none, would
 * drop what it holds back (a stopped run drained again). */
static int state_names(const json_t *a, const char *key, char *why, size_t whylen)
{
	size_t i;
	json_t *v;

	if (a == NULL)
		return 0;
	if (!json_is_array(a)) {
		snprintf(why, whylen, "%s: a JSON %s, not a list of names", key, json_kind_name(a));
		return -1;
	}
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v)) {
			snprintf(why, whylen, "%s[%zu]: a JSON %s, not a name", key, i,
			    json_kind_name(v));
			return -1;
		}
	}
	return 0;
}

json_t *store_session_state_parse(const char *state_json, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *j = json_loads_bounded(
	           state_json != NULL ? state_json : "{}", JSON_REJECT_DUPLICATES, &jerr),
	       *fps, *v;
	const char *k;
	int rc = 0;

	if (j == NULL) {
		snprintf(why, whylen, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
		    jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(why, whylen, "a JSON %s, not an object", json_kind_name(j));
		json_decref(j);
		return NULL;
	}
	fps = json_object_get(j, "fingerprint_counts");
	if (fps != NULL && !json_is_object(fps)) {
		snprintf(why, whylen, "fingerprint_counts: a JSON %s, not an object of counts",
		    json_kind_name(fps));
		rc = -1;
	}
	json_object_foreach(fps, k, v)
	{
		char key[96];

		snprintf(key, sizeof key, "fingerprint_counts[\"%.60s\"]", k);
		if (rc == 0)
			rc = state_count(v, key, why, whylen);
	}
	for (size_t i = 0; rc == 0 && i < STORE_SESSION_STATE_LISTS; i++)
		rc = state_names(json_object_get(j, store_session_state_lists[i]),
		    store_session_state_lists[i], why, whylen);
	if (rc == 0)
		rc = state_count(json_object_get(j, "consecutive_zero_yield"),
		    "consecutive_zero_yield", why, whylen);
	if (rc != 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}
