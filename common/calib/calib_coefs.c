/* Coefficient sets as the database stores them: the full overhead table as a JSON array
 * of [category, complexity, overhead] triples on top of the built-in defaults. */
#include "common/calib/calib.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse overhead_json onto the defaults. */
int calib_coefs_from_json(
    const char *overhead_json, uint64_t version, struct est_coefs *c, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *arr = json_loads(overhead_json, 0, &jerr), *row;
	struct proto_coef *rows;
	size_t i, n = 0;
	int rc = 0;

	est_coefs_default(c);
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "overhead_json of set %llu is not a JSON array%s%s",
		    (unsigned long long)version, arr == NULL ? ": " : "",
		    arr == NULL ? jerr.text : "");
		json_decref(arr);
		return -1;
	}
	rows = xcalloc(json_array_size(arr) + 1, sizeof *rows);
	json_array_foreach(arr, i, row)
	{
		const char *cat = json_string_value(json_array_get(row, 0));
		const char *cplx = json_string_value(json_array_get(row, 1));
		json_t *v = json_array_get(row, 2);

		if (json_array_size(row) != 3 || cat == NULL || cplx == NULL ||
		    !json_is_integer(v)) {
			snprintf(err, errlen,
			    "overhead_json of set %llu: element %zu is not "
			    "[category, complexity, overhead]",
			    (unsigned long long)version, i);
			rc = -1;
			break;
		}
		rows[n].category = (char *)cat;
		rows[n].complexity = (char *)cplx;
		rows[n].overhead = json_integer_value(v);
		n++;
	}
	if (rc == 0)
		rc = est_coefs_apply(c, rows, n, version, err, errlen);
	free(rows);
	json_decref(arr);
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
