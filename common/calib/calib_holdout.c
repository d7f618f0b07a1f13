/*
 * Held-out evaluation (docs/calibration.md): the proposal is refitted on each training
 * part and scored on the samples it did not see, by leave-one-out, by k folds repeated
 * with fixed seeds, and by leaving one run out; the active set, which nothing here
 * refits, is scored on the same samples. Recorded truncated events are never trained on:
 * each is scored once per repeat, by the fold it is dealt to.
 */
#include "common/calib/calib.h"
#include "common/strtab.h"
#include "common/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Held-out predictions pooled for one method. */
struct calib_pool {
	const struct telem_sample **s;
	int64_t *est, *budget;
	size_t n, cap;
};

/* Append one held-out prediction. */
static void calib_pool_add(
    struct calib_pool *p, const struct telem_sample *s, int64_t est, int64_t budget)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		p->s = xrealloc(p->s, p->cap * sizeof *p->s);
		p->est = xrealloc(p->est, p->cap * sizeof *p->est);
		p->budget = xrealloc(p->budget, p->cap * sizeof *p->budget);
	}
	p->s[p->n] = s;
	p->est[p->n] = est;
	p->budget[p->n++] = budget;
}

/* Free a pool. */
static void calib_pool_free(struct calib_pool *p)
{
	free(p->s);
	free(p->est);
	free(p->budget);
	memset(p, 0, sizeof *p);
}

/* Name a method. */
const char *calib_method_name(enum calib_method m)
{
	static const char *const names[CALIB_METHOD_COUNT] = { "loo", "kfold", "lorun" };

	return (size_t)m < CALIB_METHOD_COUNT ? names[m] : "?";
}

/* Score pooled predictions. */
void calib_score_compute(const struct telem_sample *const *s, const int64_t *estimate,
    const int64_t *budget, size_t n, struct calib_score *out)
{
	double *smape = xcalloc(n + 1, sizeof *smape), *waste = xcalloc(n + 1, sizeof *waste);
	size_t k = 0;

	memset(out, 0, sizeof *out);
	out->available = true;
	out->predictions = n;
	for (size_t i = 0; i < n; i++) {
		if (s[i]->truncated) {
			out->truncations += budget[i] <= s[i]->actual;
			continue;
		}
		out->truncations += s[i]->actual > budget[i];
		smape[k] = telem_smape(estimate[i], s[i]->actual);
		waste[k++] = (double)budget[i] / (double)(s[i]->actual > 0 ? s[i]->actual : 1);
	}
	out->truncation_rate = n > 0 ? (double)out->truncations / (double)n : 0.0;
	out->smape_mean = telem_mean(smape, k);
	telem_sort(smape, k);
	telem_sort(waste, k);
	out->smape_median = telem_median(smape, k);
	out->waste_p50 = telem_median(waste, k);
	out->waste_p90 = telem_p90_index(waste, k);
	free(smape);
	free(waste);
}

/* The evaluation's JSON object of one score. */
json_t *calib_json_score(const struct calib_score *s)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I}", "smape_median", s->smape_median,
	    "smape_mean", s->smape_mean, "truncation_rate", s->truncation_rate, "waste_p50",
	    s->waste_p50, "waste_p90", s->waste_p90, "n", (json_int_t)s->n);
}

/* splitmix64: the fixed-seed generator of the fold shuffles. */
static uint64_t calib_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* One evaluation in progress. */
struct calib_run {
	const struct calib_fitset *fs;
	const struct est_coefs *current;
	const struct calib_eval_opts *o;
	char *err;
	size_t errlen;
	const struct telem_sample **train;
	bool *held; /* per clean sample: in the current test part */
};

/* Add sample s predicted by f to the pool; its estimate is set in *pred when not NULL. */
static void calib_score_one(struct calib_run *r, const struct est_fit *f,
    const struct telem_sample *s, struct calib_pool *pool, int64_t *pred)
{
	int e = est_fit_estimate(f, s->category, s->complexity, s->deliverable_count);

	calib_pool_add(pool, s, e, est_fit_budget(f, e, r->current->cap));
	if (pred != NULL)
		*pred = e;
}

/* Add the held-out clean samples and the truncated events `tr` (n_tr), each predicted
 * by f, to the pool. */
static void calib_score_held(struct calib_run *r, const struct est_fit *f,
    const struct telem_sample *const *tr, size_t n_tr, struct calib_pool *pool, int64_t *loo_pred)
{
	const struct calib_fitset *fs = r->fs;

	for (size_t i = 0; i < fs->n_clean; i++)
		if (r->held[i])
			calib_score_one(r, f, fs->clean[i], pool, loo_pred ? &loo_pred[i] : NULL);
	for (size_t j = 0; j < n_tr; j++)
		calib_score_one(r, f, tr[j], pool, NULL);
}

/* The observations of the clean samples not held out (all when held is NULL) into obs;
 * returns their number. */
static size_t calib_obs(const struct calib_fitset *fs, const bool *held, struct est_fit_obs *obs)
{
	size_t k = 0;

	for (size_t i = 0; i < fs->n_clean; i++)
		if (held == NULL || !held[i])
			obs[k++] = (struct est_fit_obs){ fs->clean[i]->category,
				fs->clean[i]->complexity, fs->clean[i]->deliverable_count,
				fs->clean[i]->actual };
	return k;
}

/* Fit on the clean samples not held out and add the held-out clean samples and the
 * truncated events `tr` (n_tr) to the pool; -1 with err when the fit fails. */
static int calib_fold(struct calib_run *r, const struct telem_sample *const *tr, size_t n_tr,
    struct calib_pool *pool, int64_t *loo_pred)
{
	struct est_fit *f = xmalloc(sizeof *f);
	struct est_fit_obs *obs = xcalloc(r->fs->n_clean + 1, sizeof *obs);
	size_t k = calib_obs(r->fs, r->held, obs);
	int rc = est_fit_train(obs, k, EST_FIT_LAMBDA, r->o->coverage, f, r->err, r->errlen);

	if (rc == 0)
		calib_score_held(r, f, tr, n_tr, pool, loo_pred);
	free(obs);
	free(f);
	return rc;
}

/* Leave one out: truncated event j is scored by the fold of clean sample j mod n. Each
 * fit without one sample comes from the fit on all (est_loo_without); one that only a
 * fit of its own gives is made so. */
static int calib_loo(struct calib_run *r, struct calib_pool *pool, int64_t *loo_pred)
{
	const struct calib_fitset *fs = r->fs;
	const struct telem_sample **tr = xcalloc(fs->n_truncated + 1, sizeof *tr);
	struct est_fit_obs *obs = xcalloc(fs->n_clean + 1, sizeof *obs);
	struct est_fit *f = xmalloc(sizeof *f);
	struct est_loo *all;
	char ignored[8];
	int rc = 0;

	all = est_loo_new(
	    obs, calib_obs(fs, NULL, obs), EST_FIT_LAMBDA, r->o->coverage, ignored, sizeof ignored);
	memset(r->held, 0, fs->n_clean * sizeof *r->held);
	for (size_t i = 0; i < fs->n_clean && rc == 0; i++) {
		size_t n_tr = 0;

		for (size_t j = i; j < fs->n_truncated; j += fs->n_clean)
			tr[n_tr++] = fs->truncated[j];
		r->held[i] = true;
		if (all != NULL && est_loo_without(all, i, f) == 0) {
			calib_score_one(r, f, fs->clean[i], pool, &loo_pred[i]);
			for (size_t j = 0; j < n_tr; j++)
				calib_score_one(r, f, tr[j], pool, NULL);
		} else {
			rc = calib_fold(r, tr, n_tr, pool, loo_pred);
		}
		r->held[i] = false;
	}
	est_loo_free(all);
	free(f);
	free(obs);
	free(tr);
	return rc;
}

/* k folds × repeats: repeat q shuffles with seed q + 1; fold k holds the shuffled
 * positions k, k + folds, ...; truncated event j goes to fold j mod folds. */
static int calib_kfold(struct calib_run *r, struct calib_pool *pool)
{
	const struct calib_fitset *fs = r->fs;
	size_t n = fs->n_clean, folds = (size_t)r->o->folds;
	size_t *perm = xcalloc(n + 1, sizeof *perm);
	const struct telem_sample **tr = xcalloc(fs->n_truncated + 1, sizeof *tr);
	int rc = 0;

	for (int q = 0; q < r->o->repeats && rc == 0; q++) {
		uint64_t state = (uint64_t)q + 1;

		for (size_t i = 0; i < n; i++)
			perm[i] = i;
		for (size_t i = n; i > 1; i--) {
			size_t j = (size_t)(calib_rand(&state) % i), t = perm[i - 1];

			perm[i - 1] = perm[j];
			perm[j] = t;
		}
		for (size_t k = 0; k < folds && rc == 0; k++) {
			size_t n_tr = 0;

			memset(r->held, 0, n * sizeof *r->held);
			for (size_t i = k; i < n; i += folds)
				r->held[perm[i]] = true;
			for (size_t j = k; j < fs->n_truncated; j += folds)
				tr[n_tr++] = fs->truncated[j];
			rc = calib_fold(r, tr, n_tr, pool, NULL);
		}
	}
	free(perm);
	free(tr);
	return rc;
}

/* The runs leave-one-run-out holds out, those with at least CALIB_LORUN_MIN clean
 * samples, in the order their first clean sample comes, and each sample's among them. */
struct calib_runs {
	const char **name; /* the runs' ids (the samples' own strings) */
	size_t n;
	size_t *clean, *truncated; /* per sample: its run's index in name, or SIZE_MAX */
};

/* Find fs's runs through a table of their ids: each sample's run, the clean samples each
 * has, then those with enough. Frees nothing of fs; calib_runs_free frees what it
 * made. */
static void calib_runs_find(const struct calib_fitset *fs, struct calib_runs *out)
{
	size_t n_all = fs->n_clean + fs->n_truncated;
	size_t *count = xcalloc(n_all + 1, sizeof *count), *rank;
	struct strtab ids;

	strtab_init(&ids, n_all, false);
	out->name = xcalloc(fs->n_clean + 1, sizeof *out->name);
	out->clean = xcalloc(n_all + 1, sizeof *out->clean);
	out->truncated = out->clean + fs->n_clean;
	out->n = 0;
	for (size_t i = 0; i < n_all; i++) {
		const struct telem_sample *s = i < fs->n_clean ? fs->clean[i] :
		                                                 fs->truncated[i - fs->n_clean];

		out->clean[i] = s->run_id != NULL ? strtab_add(&ids, s->run_id, NULL) : SIZE_MAX;
		if (i < fs->n_clean && s->run_id != NULL)
			count[out->clean[i]]++;
	}
	rank = xcalloc(ids.n + 1, sizeof *rank);
	for (size_t k = 0; k < ids.n; k++) {
		rank[k] = count[k] >= CALIB_LORUN_MIN ? out->n : SIZE_MAX;
		if (count[k] >= CALIB_LORUN_MIN)
			out->name[out->n++] = strtab_key(&ids, k);
	}
	for (size_t i = 0; i < n_all; i++)
		if (out->clean[i] != SIZE_MAX)
			out->clean[i] = rank[out->clean[i]];
	free(rank);
	free(count);
	strtab_free(&ids);
}

/* Free what calib_runs_find made. */
static void calib_runs_free(struct calib_runs *runs)
{
	free(runs->name);
	free(runs->clean);
	memset(runs, 0, sizeof *runs);
}

/* Leave one run out, over the runs of CALIB_LORUN_MIN samples; their truncated events
 * are scored with them. */
static int calib_lorun(struct calib_run *r, const struct calib_runs *runs, struct calib_pool *pool)
{
	const struct calib_fitset *fs = r->fs;
	const struct telem_sample **tr = xcalloc(fs->n_truncated + 1, sizeof *tr);
	int rc = 0;

	for (size_t k = 0; k < runs->n && rc == 0; k++) {
		size_t n_tr = 0;

		for (size_t i = 0; i < fs->n_clean; i++)
			r->held[i] = runs->clean[i] == k;
		for (size_t j = 0; j < fs->n_truncated; j++)
			if (runs->truncated[j] == k)
				tr[n_tr++] = fs->truncated[j];
		rc = calib_fold(r, tr, n_tr, pool, NULL);
	}
	free(tr);
	return rc;
}

/* Score a pool for the proposal, and the same samples under the current set. */
static void calib_score_both(const struct calib_pool *pool, const struct est_coefs *current,
    size_t distinct, struct calib_score *cur, struct calib_score *prop)
{
	int64_t *est = xcalloc(pool->n + 1, sizeof *est),
	        *budget = xcalloc(pool->n + 1, sizeof *budget);

	calib_score_compute(pool->s, pool->est, pool->budget, pool->n, prop);
	for (size_t i = 0; i < pool->n; i++)
		calib_set_budget(current, pool->s[i], &est[i], &budget[i]);
	calib_score_compute(pool->s, est, budget, pool->n, cur);
	prop->n = cur->n = distinct;
	free(est);
	free(budget);
}

/* The truncation and waste of budgets ⌈estimate × factor⌉, capped. */
static struct calib_curve_point calib_curve_at(
    const struct calib_pool *p, const int64_t *est, double factor, int cap)
{
	int64_t *budget = xcalloc(p->n + 1, sizeof *budget);
	struct calib_score sc;

	for (size_t i = 0; i < p->n; i++) {
		double b = ceil((double)est[i] * factor - 1e-9);

		budget[i] = b > cap ? cap : (int64_t)b;
	}
	calib_score_compute(p->s, est, budget, p->n, &sc);
	free(budget);
	return (struct calib_curve_point){ factor, sc.truncation_rate, sc.waste_p90 };
}

/* The curves of both sets over the leave-one-out pool, and their chosen points. */
static void calib_curves(const struct calib_pool *pool, const struct est_coefs *current,
    const struct est_fit *proposal, struct calib_eval *e)
{
	int64_t *est = xcalloc(pool->n + 1, sizeof *est),
	        *budget = xcalloc(pool->n + 1, sizeof *budget);
	struct calib_score sc;

	for (size_t i = 0; i < pool->n; i++)
		calib_set_budget(current, pool->s[i], &est[i], &budget[i]);
	for (int k = 0; k < CALIB_CURVE_POINTS; k++) {
		double factor = pow(8.0, (double)k / (CALIB_CURVE_POINTS - 1));

		e->curve_current[k] = calib_curve_at(pool, est, factor, current->cap);
		e->curve_proposed[k] = calib_curve_at(pool, pool->est, factor, current->cap);
	}
	calib_score_compute(pool->s, est, budget, pool->n, &sc);
	e->chosen_current = (struct calib_curve_point){
		current->fit.active ? current->fit.factor : 0, sc.truncation_rate, sc.waste_p90
	};
	e->chosen_proposed = calib_curve_at(pool, pool->est, proposal->factor, current->cap);
	free(est);
	free(budget);
}

/* The samples an evaluation reads, copied side by side with equal category and
 * complexity texts sharing one string: its thousands of fits read each sample's names
 * again and again, and so find them in the cache, not in the heap far apart. */
struct calib_compact {
	struct calib_fitset fs;
	struct telem_sample *v;
	struct strtab names; /* the distinct texts */
};

/* The copy of text s in the table: the first equal one met. */
static char *calib_intern(struct calib_compact *c, char *s)
{
	if (s == NULL)
		return NULL;
	return (char *)strtab_key(&c->names, strtab_add(&c->names, s, NULL));
}

/* Copy the samples sorted out in fs (clean, then truncated) into c; its strings stay
 * those of the samples. */
static void calib_compact_init(struct calib_compact *c, const struct calib_fitset *fs)
{
	size_t n = fs->n_clean + fs->n_truncated;
	const struct telem_sample **p;

	strtab_init(&c->names, 2 * n, false);
	c->v = xcalloc(n + 1, sizeof *c->v);
	c->fs = *fs;
	p = xcalloc(n + 1, sizeof *p);
	c->fs.clean = p;
	c->fs.truncated = p + fs->n_clean;
	for (size_t i = 0; i < n; i++) {
		const struct telem_sample *src = i < fs->n_clean ? fs->clean[i] :
		                                                   fs->truncated[i - fs->n_clean];

		c->v[i] = *src;
		c->v[i].category = calib_intern(c, src->category);
		c->v[i].complexity = calib_intern(c, src->complexity);
		p[i] = &c->v[i];
	}
}

/* Free what calib_compact_init made. */
static void calib_compact_free(struct calib_compact *c)
{
	free((void *)c->fs.clean);
	free(c->v);
	strtab_free(&c->names);
}

/* Run the three methods. */
int calib_evaluate(const struct calib_fitset *fs_in, const struct est_coefs *current,
    const struct est_fit *proposal, const struct calib_eval_opts *o, struct calib_eval *e,
    char *err, size_t errlen)
{
	struct calib_compact c;
	const struct calib_fitset *fs = &c.fs;
	struct calib_run r = { fs, current, o, err, errlen, NULL, NULL };
	struct calib_pool pool[CALIB_METHOD_COUNT] = { 0 };
	struct calib_runs runs;
	size_t distinct = fs_in->n_clean + fs_in->n_truncated;
	int rc;

	calib_compact_init(&c, fs_in);
	memset(e, 0, sizeof *e);
	e->loo_pred = xcalloc(fs->n_clean + 1, sizeof *e->loo_pred);
	r.held = xcalloc(fs->n_clean + 1, sizeof *r.held);
	rc = calib_loo(&r, &pool[CALIB_LOO], e->loo_pred);
	if (rc == 0 && (size_t)o->folds > fs->n_clean)
		snprintf(e->why[CALIB_KFOLD], sizeof e->why[0],
		    "%d folds need at least as many clean samples (%zu)", o->folds, fs->n_clean);
	else if (rc == 0)
		rc = calib_kfold(&r, &pool[CALIB_KFOLD]);
	calib_runs_find(fs, &runs);
	e->n_runs_eligible = runs.n;
	if (rc == 0 && e->n_runs_eligible < CALIB_LORUN_RUNS)
		snprintf(e->why[CALIB_LORUN], sizeof e->why[0],
		    "needs %d runs with at least %d clean samples; %zu ha%s", CALIB_LORUN_RUNS,
		    CALIB_LORUN_MIN, e->n_runs_eligible, e->n_runs_eligible == 1 ? "s" : "ve");
	else if (rc == 0)
		rc = calib_lorun(&r, &runs, &pool[CALIB_LORUN]);
	for (int m = 0; m < CALIB_METHOD_COUNT && rc == 0; m++) {
		size_t n = m == CALIB_LORUN ? pool[m].n : distinct;

		if (pool[m].n > 0)
			calib_score_both(&pool[m], current, n, &e->current[m], &e->proposed[m]);
	}
	if (rc == 0)
		calib_curves(&pool[CALIB_LOO], current, proposal, e);
	for (int m = 0; m < CALIB_METHOD_COUNT; m++)
		calib_pool_free(&pool[m]);
	calib_runs_free(&runs);
	free(r.held);
	calib_compact_free(&c);
	if (rc != 0)
		calib_eval_free(e);
	return rc;
}

/* Free the per-sample predictions. */
void calib_eval_free(struct calib_eval *e)
{
	free(e->loo_pred);
	memset(e, 0, sizeof *e);
}
