/*
 * The fitted model as JSON, the one reader and writer of its stored form (model_json of
 * a coefficient set, and the job's est.fit; docs/calibration.md):
 *
 *   {"model": "ridge_log", "lambda": 1, "coverage": 0.95, "factor": 2.87,
 *    "samples": 51, "intercept": 7.9, "deliverables": 0.41,
 *    "complexity": {"low": -0.2, "medium": 0.1, "high": 0.1},
 *    "categories": {"docs": 0.4, "implementation": -0.1, ...}}
 */
#include "common/estimate/estimator.h"
#include "common/jsonload.h"
#include "common/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EST_FIT_MODEL_NAME "ridge_log"
#define EST_FIT_FACTOR_MAX 1000.0
#define EST_FIT_WEIGHT_MAX 100.0

static const char *const est_cplx_names[EST_CPLX_COUNT] = { "low", "medium", "high" };

/* Read the finite number `key` of o into *v within [lo, hi]; -1 with err if not. */
static int est_json_number(
    json_t *o, const char *key, double lo, double hi, double *v, char *err, size_t errlen)
{
	json_t *j = json_object_get(o, key);

	if (!json_is_number(j) || !isfinite(json_number_value(j)) || json_number_value(j) < lo ||
	    json_number_value(j) > hi) {
		snprintf(
		    err, errlen, "fitted model: \"%s\" is not a number from %g to %g", key, lo, hi);
		return -1;
	}
	*v = json_number_value(j);
	return 0;
}

/* Read the category weights of the object `cats` into f, sorted by name. */
static int est_fit_cats_from_json(json_t *cats, struct est_fit *f, char *err, size_t errlen)
{
	const char *name;
	json_t *v;
	size_t k;

	if (!json_is_object(cats) || json_object_size(cats) > EST_FIT_CATS_MAX) {
		snprintf(err, errlen,
		    "fitted model: \"categories\" is not an object of at most %d weights",
		    EST_FIT_CATS_MAX);
		return -1;
	}
	json_object_foreach(cats, name, v)
	{
		char norm[EST_NAME_MAX];

		est_name_normalise(name, norm, sizeof norm);
		if (strlen(name) >= EST_NAME_MAX || norm[0] == '\0' || strcmp(norm, name) != 0) {
			snprintf(err, errlen,
			    "fitted model: category \"%.40s\" is not a lowercase name of 1 to %d "
			    "bytes",
			    name, EST_NAME_MAX - 1);
			return -1;
		}
		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    fabs(json_number_value(v)) > EST_FIT_WEIGHT_MAX) {
			snprintf(err, errlen,
			    "fitted model: the weight of category \"%s\" is not a "
			    "number from -100 to 100",
			    name);
			return -1;
		}
		k = f->n_cats++;
		for (; k > 0 && strcmp(f->cats[k - 1], name) > 0; k--) {
			memcpy(f->cats[k], f->cats[k - 1], EST_NAME_MAX);
			f->w_cat[k] = f->w_cat[k - 1];
		}
		strlcpy_ap(f->cats[k], name, EST_NAME_MAX);
		f->w_cat[k] = json_number_value(v);
	}
	return 0;
}

int est_fit_from_json(const char *text, struct est_fit *f, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o = json_loads_bounded(text, 0, &jerr), *cplx, *n;
	const char *model = json_string_value(json_object_get(o, "model"));
	double w = EST_FIT_WEIGHT_MAX;
	int rc = -1;

	memset(f, 0, sizeof *f);
	n = json_object_get(o, "samples");
	cplx = json_object_get(o, "complexity");
	if (!json_is_object(o))
		snprintf(err, errlen, "fitted model: not a JSON object%s%s", o == NULL ? ": " : "",
		    o == NULL ? jerr.text : "");
	else if (model == NULL || strcmp(model, EST_FIT_MODEL_NAME) != 0)
		snprintf(err, errlen, "fitted model: \"model\" is not \"%s\"", EST_FIT_MODEL_NAME);
	else if (!json_is_integer(n) || json_integer_value(n) < 0)
		snprintf(err, errlen, "fitted model: \"samples\" is not a non-negative integer");
	else if (!json_is_object(cplx))
		snprintf(err, errlen, "fitted model: \"complexity\" is not an object");
	else if (est_json_number(o, "lambda", 0, 1e6, &f->lambda, err, errlen) == 0 &&
	    est_json_number(o, "coverage", 0, 1, &f->coverage, err, errlen) == 0 &&
	    est_json_number(o, "factor", 1e-3, EST_FIT_FACTOR_MAX, &f->factor, err, errlen) == 0 &&
	    est_json_number(o, "intercept", -w, w, &f->intercept, err, errlen) == 0 &&
	    est_json_number(o, "deliverables", -w, w, &f->w_deliverables, err, errlen) == 0 &&
	    est_json_number(cplx, "low", -w, w, &f->w_cplx[EST_LOW], err, errlen) == 0 &&
	    est_json_number(cplx, "medium", -w, w, &f->w_cplx[EST_MEDIUM], err, errlen) == 0 &&
	    est_json_number(cplx, "high", -w, w, &f->w_cplx[EST_HIGH], err, errlen) == 0 &&
	    est_fit_cats_from_json(json_object_get(o, "categories"), f, err, errlen) == 0)
		rc = 0;
	if (rc == 0) {
		f->n_samples = (size_t)json_integer_value(n);
		f->active = true;
	} else {
		memset(f, 0, sizeof *f);
	}
	json_decref(o);
	return rc;
}

/* Serialise a JSON value compactly, keys in insertion order; aborts when out of memory. */
static char *est_json_text(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));

	json_decref(j);
	if (text == NULL) {
		fprintf(stderr, "autopack: out of memory serialising a fitted model\n");
		abort();
	}
	return text;
}

/* Serialise a fitted model. */
char *est_fit_to_json(const struct est_fit *f)
{
	json_t *cats = json_object(), *cplx = json_object();

	for (size_t k = 0; k < EST_CPLX_COUNT; k++)
		json_object_set_new(cplx, est_cplx_names[k], json_real(f->w_cplx[k]));
	for (size_t k = 0; k < f->n_cats; k++)
		json_object_set_new(cats, f->cats[k], json_real(f->w_cat[k]));
	return est_json_text(json_pack("{s:s, s:f, s:f, s:f, s:I, s:f, s:f, s:o, s:o}", "model",
	    EST_FIT_MODEL_NAME, "lambda", f->lambda, "coverage", f->coverage, "factor", f->factor,
	    "samples", (json_int_t)f->n_samples, "intercept", f->intercept, "deliverables",
	    f->w_deliverables, "complexity", cplx, "categories", cats));
}
