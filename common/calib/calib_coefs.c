/* Coefficient sets as the database stores them: the full overhead table as a JSON array
 * of [category, complexity, overhead] triples on top of the built-in defaults, and the
 * fitted model (estimator_json.c); and a catalogue of sets by version. */
#include "common/calib/calib.h"
#include "common/store/store_coef.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse overhead_json onto the defaults, then the fitted model. */
int calib_coefs_from_json(const char *overhead_json, const char *model_json, uint64_t version,
    struct est_coefs *c, char *err, size_t errlen)
{
	struct store_coef_row *rows;
	struct est_coef_row *est;
	struct store_err serr;
	size_t n;
	int rc;

	est_coefs_default(c);
	if (store_coef_rows(overhead_json, (int64_t)version, &rows, &n, &serr) != 0) {
		snprintf(err, errlen, "%s", serr.text);
		return -1;
	}
	est = xcalloc(n + 1, sizeof *est);
	for (size_t i = 0; i < n; i++)
		est[i] = (struct est_coef_row){ rows[i].category, rows[i].complexity,
			rows[i].overhead };
	rc = est_coefs_apply(c, est, n, version, err, errlen);
	if (rc == 0 && model_json != NULL)
		rc = est_fit_from_json(model_json, &c->fit, err, errlen);
	free(est);
	store_coef_rows_free(rows, n);
	if (rc != 0)
		est_coefs_default(c);
	return rc;
}

/* Serialise every overhead row. */
char *calib_coefs_to_json(const struct est_coefs *c)
{
	json_t *arr = json_array();
	char *text;

	for (size_t i = 0; i < c->n_overhead; i++)
		json_array_append_new(arr,
		    json_pack("[s, s, i]", c->overhead[i].category, c->overhead[i].complexity,
		        c->overhead[i].overhead));
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (text == NULL) {
		fprintf(stderr, "autopack: out of memory serialising coefficients\n");
		abort();
	}
	return text;
}

/* Append a copy of a set. */
void calib_coef_sets_add(struct calib_coef_sets *cs, const struct est_coefs *c)
{
	cs->sets = xrealloc(cs->sets, (cs->n + 1) * sizeof *cs->sets);
	cs->sets[cs->n++] = *c;
}

/* Find a set by version. */
const struct est_coefs *calib_coef_sets_find(const struct calib_coef_sets *cs, int64_t version)
{
	for (size_t i = 0; i < cs->n; i++)
		if (version > 0 && cs->sets[i].version == (uint64_t)version)
			return &cs->sets[i];
	return NULL;
}

/* Free the catalogue. */
void calib_coef_sets_free(struct calib_coef_sets *cs)
{
	free(cs->sets);
	cs->sets = NULL;
	cs->n = 0;
}
