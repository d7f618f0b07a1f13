/* A catalogue of coefficient sets by version, to find what a sample was estimated with. */
#include "common/calib/calib.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
