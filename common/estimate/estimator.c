/* The estimator's models: flat, overhead + marginal, doc synthesis, SOT ledger update. */
#include "common/estimate/estimator.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const est_ctx_names[EST_CTX_COUNT] = { "none", "some", "strong" };

/* Lowercased copy of `s` (NULL → ""). */
static char *est_lower(const char *s)
{
	char *p = xstrdup(s != NULL ? s : "");
	size_t k;

	for (k = 0; p[k] != '\0'; k++)
		p[k] = (char)tolower((unsigned char)p[k]);
	return p;
}

/* True when the deliverable text holds only whitespace. */
static bool est_blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

/* True when the lowercased text contains any of the words. */
static bool est_has_any(const char *low, const char *const *words, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strstr(low, words[i]) != NULL)
			return true;
	return false;
}

/* Normalise the complexity: low, medium or high; anything else is medium. */
enum est_cplx est_cplx_of(const char *s)
{
	char name[EST_NAME_MAX];

	est_name_normalise(s != NULL ? s : "", name, sizeof name);
	if (strcmp(name, "low") == 0)
		return EST_LOW;
	if (strcmp(name, "high") == 0)
		return EST_HIGH;
	return EST_MEDIUM;
}

/* Look at the deliverable's path under the workspace once, filling `seen`; `path` gets
 * the path the text names. Paths that could leave the workspace (absolute, "..") are not
 * looked at; a symbolic link on the way that leads out of it is not followed
 * (est_open_under), and counts as an error: nothing there is new or sized. */
static void est_look(
    const char *text, const char *workspace, char *path, size_t n_path, struct est_seen *seen)
{
	struct stat st;
	int fd;

	seen->state = EST_SEEN_NOT_LOOKED;
	seen->bytes = -1;
	seen->cls = -1;
	est_deliverable_path(text, path, n_path);
	seen->verbatim = strcmp(path, text) == 0;
	if (workspace == NULL || path[0] == '\0' || path[0] == '/' || strstr(path, "..") != NULL)
		return;
	if ((fd = est_open_under(workspace, path, O_PATH)) < 0 || fstat(fd, &st) != 0) {
		seen->state = errno == ENOENT || errno == ENOTDIR ? EST_SEEN_ABSENT :
		                                                    EST_SEEN_ERROR;
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	seen->state = EST_SEEN_PRESENT;
	if (S_ISREG(st.st_mode))
		seen->bytes = (int64_t)st.st_size;
}

/* Whether the deliverable is new: a creating verb, or nothing at its path. */
static bool est_is_new(const char *text, const struct est_seen *seen)
{
	static const char *const verbs[] = { "create", "new", "add" };
	char *low;
	bool is_new;

	if (seen->state != EST_SEEN_PRESENT)
		return true;
	low = est_lower(text);
	is_new = est_has_any(low, verbs, ARRAY_SIZE(verbs));
	free(low);
	return is_new;
}

/* Marginal cost of one deliverable; what was found at its path goes to `seen`. */
static int est_marginal(const struct est_coefs *c, const char *text, const char *category,
    const char *workspace, struct est_seen *seen)
{
	char path[4096];
	enum est_class cls;

	est_look(text, workspace, path, sizeof path, seen);
	cls = est_classify(path, category);
	seen->cls = (int)cls;
	if (est_is_new(text, seen))
		return c->marginal_new[cls];
	return (int)(c->marginal_existing[cls] * est_file_multiplier(c, workspace, path));
}

/* The kind of a deliverable of class `cls` whose path was looked at. */
static enum est_dlv_kind est_kind_of(
    const char *text, enum est_class cls, const struct est_seen *seen)
{
	if (cls == EST_CLASS_TEST)
		return EST_DLV_TEST;
	if (cls == EST_CLASS_DOC)
		return EST_DLV_DOC;
	return est_is_new(text, seen) ? EST_DLV_NEW : EST_DLV_MODIFY;
}

/* The kind and existing size of a deliverable. */
enum est_dlv_kind est_deliverable_kind(
    const char *text, const char *category, const char *workspace, int64_t *bytes)
{
	char path[4096];
	struct est_seen seen;

	est_look(text, workspace, path, sizeof path, &seen);
	*bytes = seen.bytes;
	return est_kind_of(text, est_classify(path, category), &seen);
}

enum est_dlv_kind est_deliverable_kind_seen(
    const char *text, const char *category, const struct est_seen *seen, int64_t *bytes)
{
	char path[4096];

	*bytes = seen->bytes;
	/* The class the estimate found, the kind's test and doc not resting on the category. */
	if (seen->cls >= 0)
		return est_kind_of(text, (enum est_class)seen->cls, seen);
	est_deliverable_path(text, path, sizeof path);
	return est_kind_of(text, est_classify(path, category), seen);
}

/* Name a deliverable kind. */
const char *est_dlv_kind_name(enum est_dlv_kind k)
{
	static const char *const names[] = { "new", "modify", "test", "doc" };

	return (size_t)k < ARRAY_SIZE(names) ? names[k] : "?";
}

/* Confidence from how specific the deliverables are. */
static double est_confidence(const struct est_coefs *c, char *const *d, size_t n)
{
	static const char *const verbs[] = { "create", "modify", "update", "add", "new" };
	size_t i, counted = 0, ext = 0, verb = 0;
	double conf;

	for (i = 0; i < n; i++) {
		const char *s = d[i], *dot;
		char *low;

		if (est_blank(s))
			continue;
		counted++;
		for (dot = strchr(s, '.'); dot != NULL; dot = strchr(dot + 1, '.'))
			if (isalnum((unsigned char)dot[1]) && isalnum((unsigned char)dot[2])) {
				ext++;
				break;
			}
		low = est_lower(s);
		if (est_has_any(low, verbs, ARRAY_SIZE(verbs)))
			verb++;
		free(low);
	}
	if (counted == 0)
		return 0.0;
	conf = c->confidence_base + c->confidence_extension * (double)ext / (double)counted +
	    c->confidence_verb * (double)verb / (double)counted;
	return conf > 1.0 ? 1.0 : conf;
}

/* Documentation features from the deliverables and the description (enum doc_feature bits). */
static int est_doc_features(char *const *d, size_t n, const char *description)
{
	static const char *const api[] = { "api_reference", "api reference", "api.md", "endpoints",
		"rest api" };
	static const char *const examples[] = { "examples.md", "example", "snippets", "sample code",
		"usage example" };
	static const char *const research[] = { "from scratch", "create documentation for",
		"document the", "comprehensive", "investigate" };
	static const char *const guide[] = { "usage_guide", "user guide", "getting started",
		"tutorial" };
	char *task = est_lower(description);
	size_t i, len = strlen(task) + 2;
	char *all;
	int f = 0;

	for (i = 0; i < n; i++)
		len += strlen(d[i]) + 1;
	all = xmalloc(len);
	all[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(all, " ");
		strcat(all, d[i]);
	}
	strcat(all, " ");
	strcat(all, task);
	for (i = 0; all[i] != '\0'; i++)
		all[i] = (char)tolower((unsigned char)all[i]);
	if (est_has_any(all, api, ARRAY_SIZE(api)))
		f |= DOC_API_REFERENCE;
	if (est_has_any(all, examples, ARRAY_SIZE(examples)))
		f |= DOC_EXAMPLES;
	if (est_has_any(task, research, ARRAY_SIZE(research)))
		f |= DOC_RESEARCH;
	if (est_has_any(all, guide, ARRAY_SIZE(guide)))
		f |= DOC_USAGE_GUIDE;
	free(all);
	free(task);
	return f;
}

/* True when the features call for the doc-synthesis model. */
static bool est_is_synthesis(int f)
{
	bool examples = (f & DOC_EXAMPLES) != 0;

	return (f & DOC_API_REFERENCE) != 0 || (examples && (f & DOC_RESEARCH) != 0) ||
	    (examples && (f & DOC_USAGE_GUIDE) != 0);
}

/* The SOT ledger basename (lowercased) of a deliverable, or NULL. */
static const char *est_sot_name(const struct est_coefs *c, const char *text)
{
	char *low = est_lower(text);
	const char *base;
	size_t i, k;

	for (k = 0; low[k] != '\0'; k++)
		if (low[k] == '\\')
			low[k] = '/';
	base = strrchr(low, '/');
	base = base != NULL ? base + 1 : low;
	for (i = 0; i < c->n_sot_names; i++) {
		if (strcmp(base, c->sot_names[i]) == 0) {
			free(low);
			return c->sot_names[i];
		}
	}
	free(low);
	return NULL;
}

/* Context quality from the number of scope paths. */
static enum est_ctx est_context(const struct est_coefs *c, size_t n_scope)
{
	if (n_scope == 0)
		return EST_CTX_NONE;
	return (long)n_scope > c->context_strong_above ? EST_CTX_STRONG : EST_CTX_SOME;
}

/* Whether a category is one of the documentation names. */
static bool est_doc_category(const char *cat)
{
	return strcmp(cat, "documentation") == 0 || strcmp(cat, "docs") == 0 ||
	    strcmp(cat, "doc_synthesis") == 0 || strcmp(cat, "doc_sot_update") == 0;
}

/* The original's models: flat, SOT ledger, doc synthesis, overhead + marginal. */
static void est_estimate_original(const struct est_coefs *c, const struct est_input *in,
    const char *workspace, struct est_output *out)
{
	static const char *const cplx_names[EST_CPLX_COUNT] = { "low", "medium", "high" };
	size_t i, n = 0, docs = 0;
	bool pure_doc;
	char *cat;

	memset(out, 0, sizeof *out);
	out->doc_features = -1;
	out->sot_entry_count_hint = -1;
	out->cplx = est_cplx_of(in->complexity);
	strlcpy_ap(out->complexity, cplx_names[out->cplx], sizeof out->complexity);

	for (i = 0; i < in->n_deliverables; i++) {
		if (est_blank(in->deliverables[i]))
			continue;
		n++;
		if (est_is_doc(in->deliverables[i]))
			docs++;
	}
	pure_doc = n > 0 && docs == n;
	out->deliverable_count = (int)n;

	cat = est_lower(in->category);
	if (est_blank(cat)) {
		free(cat);
		cat = xstrdup(pure_doc ? "documentation" : "implementation");
	}
	if (pure_doc && !est_doc_category(cat)) {
		free(cat);
		cat = xstrdup("documentation");
	}
	est_name_copy(out->category, cat, sizeof out->category);
	free(cat);

	if (n == 0) {
		out->model = EST_MODEL_FLAT;
		out->estimate = c->flat[out->cplx];
		out->confidence = c->flat_confidence;
		return;
	}

	if (pure_doc) {
		enum est_ctx q = est_context(c, in->n_scope_paths);
		const char *sot = NULL;

		out->doc_features = est_doc_features(
		    in->deliverables, in->n_deliverables, in->description);
		out->context_quality = est_ctx_names[q];
		for (i = 0; i < in->n_deliverables && sot == NULL; i++)
			sot = est_sot_name(c, in->deliverables[i]);
		if (sot != NULL) {
			int write = c->sot_write_per_entry * (int)n;
			int sum = c->sot_context[q] + write + (int)(c->sot_consistency * write);

			out->model = EST_MODEL_DOC_SOT_UPDATE;
			out->estimate = (int)(sum * c->safety_margin);
			out->confidence = c->sot_confidence;
			strlcpy_ap(out->category, "doc_sot_update", sizeof out->category);
			strlcpy_ap(out->sot_file_name, sot, sizeof out->sot_file_name);
			out->sot_entry_count_hint = (int)n;
			return;
		}
		if ((strcmp(out->category, "documentation") == 0 ||
		        strcmp(out->category, "docs") == 0) &&
		    est_is_synthesis(out->doc_features)) {
			int f = out->doc_features;
			int write = c->syn_write_per_doc * (int)n;
			int sum = c->syn_investigate[q] + write;

			if (f & DOC_API_REFERENCE)
				sum += c->syn_api;
			if (f & DOC_EXAMPLES)
				sum += c->syn_examples;
			if ((int)n >= c->syn_coordination_min_docs)
				sum += (int)(c->syn_coordination * write);
			out->model = EST_MODEL_DOC_SYNTHESIS;
			out->estimate = (int)(sum * c->safety_margin);
			out->confidence = c->syn_confidence;
			strlcpy_ap(out->category, "doc_synthesis", sizeof out->category);
			return;
		}
	}

	out->model = EST_MODEL_OVERHEAD;
	out->overhead = est_overhead_lookup(c, out->category, out->complexity);
	for (i = 0; i < in->n_deliverables; i++) {
		struct est_seen scratch;

		if (!est_blank(in->deliverables[i]))
			out->marginal += est_marginal(c, in->deliverables[i], out->category,
			    workspace, i < EST_SEEN_MAX ? &out->seen[i] : &scratch);
	}
	out->estimate = (int)((out->overhead + out->marginal) * c->safety_margin);
	out->confidence = est_confidence(c, in->deliverables, in->n_deliverables);
}

/* Estimate with the set's fitted model when it has one, else with the original's models. */
void est_estimate(const struct est_coefs *c, const struct est_input *in, const char *workspace,
    struct est_output *out)
{
	est_estimate_original(c, in, workspace, out);
	if (!c->fit.active)
		return;
	out->model = EST_MODEL_FITTED;
	out->overhead = 0;
	out->marginal = 0;
	out->estimate = est_fit_estimate(
	    &c->fit, out->category, out->complexity, out->deliverable_count);
}
