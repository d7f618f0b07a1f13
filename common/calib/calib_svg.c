/* The calibration plot, plain SVG: estimated against actual output tokens on log-log
 * axes, and truncation against waste over budget factors. */
#include "common/calib/calib.h"
#include "common/strtab.h"
#include "common/utf8.h"
#include "common/util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SVG_LEFT 90.0 /* plot area origin and size, in pixels */
#define SVG_TOP 78.0
#define SVG_SIZE 560.0
#define SVG_LEGEND_W 260.0
#define SVG_BOTTOM 72.0
#define SVG_WIDTH (SVG_LEFT + SVG_SIZE + SVG_LEGEND_W)
#define SVG_HEIGHT (SVG_TOP + SVG_SIZE + SVG_BOTTOM)
#define SVG_CURVE_LEFT (SVG_WIDTH + 70.0) /* the truncation-against-waste panel */
#define SVG_CURVE_W 440.0
#define SVG_CURVE_WIDTH (SVG_CURVE_LEFT + SVG_CURVE_W + 40.0)
#define SVG_CURRENT_COLOUR "#e15759"
#define SVG_OTHER_COLOUR "#9a9a9a" /* the categories past the palette */
#define SVG_PROPOSED_COLOUR "#4e79a7"

/* Tableau 10: distinct, colour-blind friendly hues. */
static const char *const svg_palette[] = {
	"#4e79a7",
	"#f28e2b",
	"#e15759",
	"#76b7b2",
	"#59a14f",
	"#edc948",
	"#b07aa1",
	"#ff9da7",
	"#9c755f",
	"#bab0ac",
};

/* The plot's log10 range: whole decades around every value. */
struct svg_axes {
	double lo, hi; /* log10 of the ends */
};

/* A category with its colour and sample count. */
struct svg_cat {
	const char *name;
	size_t n;
	size_t seen; /* its place in the order the samples name it */
};

/* Write `s` with XML's special characters escaped, and what XML cannot hold (bytes that
 * are not UTF-8, control characters but tab and line ends: a category another program
 * wrote) as U+FFFD. */
static void svg_text(FILE *f, const char *s)
{
	char *clean = utf8_clean(s, SIZE_MAX);

	for (const char *c = clean; *c != '\0'; c++) {
		switch (*c) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\t':
		case '\n':
		case '\r': fputc(*c, f); break;
		default:
			if ((unsigned char)*c < 0x20)
				fputs("\xEF\xBF\xBD", f);
			else
				fputc(*c, f);
		}
	}
	free(clean);
}

/* Label a tick value: 50, 500, 2k, 10k, 1M. */
static void svg_tick_label(double v, char *buf, size_t len)
{
	if (v >= 1e6)
		snprintf(buf, len, "%gM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, len, "%gk", v / 1e3);
	else
		snprintf(buf, len, "%g", v);
}

/* Pixel x of a token count. */
static double svg_x(const struct svg_axes *a, double v)
{
	return SVG_LEFT + (log10(v < 1 ? 1 : v) - a->lo) / (a->hi - a->lo) * SVG_SIZE;
}

/* Pixel y of a token count. */
static double svg_y(const struct svg_axes *a, double v)
{
	return SVG_TOP + SVG_SIZE - (log10(v < 1 ? 1 : v) - a->lo) / (a->hi - a->lo) * SVG_SIZE;
}

/* Round log10(v) down (dir < 0) or up (dir > 0) to the log of a whole multiple of a
 * power of ten: 370 -> 300, 20480 -> 30000. */
static double svg_snap(double v, int dir)
{
	double p = pow(10.0, floor(log10(v)));
	double m = dir < 0 ? floor(v / p + 1e-9) : ceil(v / p - 1e-9);

	return log10(m * p);
}

/* Find a range that holds every value with a little room, snapped to whole multiples
 * of powers of ten. */
static void svg_range(
    const struct telem_sample *const *s, const int64_t *after, size_t n, struct svg_axes *a)
{
	double mn = 1e18, mx = 1.0;

	for (size_t i = 0; i < n; i++) {
		double v[3] = { (double)s[i]->predicted, (double)s[i]->actual,
			after != NULL ? (double)after[i] : (double)s[i]->predicted };

		for (int k = 0; k < 3; k++) {
			double x = v[k] < 1 ? 1 : v[k];

			mn = x < mn ? x : mn;
			mx = x > mx ? x : mx;
		}
	}
	if (n == 0)
		mn = 100.0, mx = 10000.0;
	a->lo = svg_snap(mn / 1.25 < 1.0 ? 1.0 : mn / 1.25, -1);
	a->hi = svg_snap(mx * 1.25, 1);
	if (a->hi - a->lo < 1.0)
		a->hi = a->lo + 1.0;
}

/* Draw the grid, the ticks and their labels on both axes: every whole multiple of a
 * power of ten in range; labels on 1, 2 and 5 multiples (1 only over wide ranges). */
static void svg_grid(FILE *f, const struct svg_axes *a)
{
	bool label_minor = a->hi - a->lo <= 2.6;
	char lab[32];

	for (int d = (int)floor(a->lo); d <= (int)ceil(a->hi); d++) {
		for (int m = 1; m <= 9; m++) {
			double v = m * pow(10.0, d), x = svg_x(a, v), y = svg_y(a, v);
			bool major = m == 1;

			if (log10(v) < a->lo - 1e-9 || log10(v) > a->hi + 1e-9)
				continue;
			fprintf(f,
			    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			    "stroke=\"%s\" stroke-width=\"1\"/>\n",
			    x, SVG_TOP, x, SVG_TOP + SVG_SIZE, major ? "#c8c8c8" : "#ececec");
			fprintf(f,
			    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			    "stroke=\"%s\" stroke-width=\"1\"/>\n",
			    SVG_LEFT, y, SVG_LEFT + SVG_SIZE, y, major ? "#c8c8c8" : "#ececec");
			fprintf(f,
			    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			    "stroke=\"#333\"/>\n<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			    "stroke=\"#333\"/>\n",
			    x, SVG_TOP + SVG_SIZE, x, SVG_TOP + SVG_SIZE + (major ? 7 : 4),
			    SVG_LEFT - (major ? 7 : 4), y, SVG_LEFT, y);
			if (!major && !(label_minor && (m == 2 || m == 5)))
				continue;
			svg_tick_label(v, lab, sizeof lab);
			fprintf(f,
			    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
			    "font-size=\"%d\">%s</text>\n",
			    x, SVG_TOP + SVG_SIZE + 22, major ? 13 : 11, lab);
			fprintf(f,
			    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
			    "font-size=\"%d\">%s</text>\n",
			    SVG_LEFT - 11, y + 4, major ? 13 : 11, lab);
		}
	}
}

/* Draw the frame, the y = x line, the region notes and the axis titles. */
static void svg_frame(FILE *f, const struct svg_axes *a)
{
	double lo = pow(10.0, a->lo), hi = pow(10.0, a->hi);

	fprintf(f,
	    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
	    "stroke=\"#333\"/>\n",
	    SVG_LEFT, SVG_TOP, SVG_SIZE, SVG_SIZE);
	fprintf(f,
	    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
	    "stroke-width=\"1.5\" stroke-dasharray=\"7 5\"/>\n",
	    svg_x(a, lo), svg_y(a, lo), svg_x(a, hi), svg_y(a, hi));
	fprintf(f,
	    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#777\" "
	    "font-style=\"italic\">underestimated: actual &gt; predicted</text>\n",
	    SVG_LEFT + 10, SVG_TOP + 20);
	fprintf(f,
	    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#777\" "
	    "font-style=\"italic\" text-anchor=\"end\">overestimated: predicted &gt; "
	    "actual</text>\n",
	    SVG_LEFT + SVG_SIZE - 10, SVG_TOP + SVG_SIZE - 12);
	fprintf(f,
	    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\">"
	    "predicted output tokens (log scale)</text>\n",
	    SVG_LEFT + SVG_SIZE / 2, SVG_TOP + SVG_SIZE + 50);
	fprintf(f,
	    "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" "
	    "font-size=\"14\">actual output tokens (log scale)</text>\n",
	    SVG_LEFT - 60, SVG_TOP + SVG_SIZE / 2);
}

/* Order categories by samples, most first, then by name, for qsort. */
static int svg_cat_cmp(const void *x, const void *y)
{
	const struct svg_cat *a = x, *b = y;

	if (a->n != b->n)
		return a->n > b->n ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Collect the categories, most samples first, then by name, through a table of their
 * names; cat_of[i] receives sample i's category's place in that order. */
static size_t svg_categories(
    const struct telem_sample *const *s, size_t n, struct svg_cat *cats, size_t *cat_of)
{
	size_t nc = 0, *rank;
	struct strtab names; /* cats[c] has index c, in first-seen order */

	strtab_init(&names, n, false);
	for (size_t i = 0; i < n; i++) {
		bool added;

		cat_of[i] = strtab_add(&names, s[i]->category, &added);
		if (added) {
			cats[nc] = (struct svg_cat){ s[i]->category, 0, nc };
			nc++;
		}
		cats[cat_of[i]].n++;
	}
	strtab_free(&names);
	qsort(cats, nc, sizeof *cats, svg_cat_cmp);
	rank = xcalloc(nc + 1, sizeof *rank);
	for (size_t c = 0; c < nc; c++)
		rank[cats[c].seen] = c;
	for (size_t i = 0; i < n; i++)
		cat_of[i] = rank[cat_of[i]];
	free(rank);
	return nc;
}

/* The colour of the category in place c: a colour of its own for the first ones, one
 * grey for all those past the palette (the legend counts them together). */
static const char *svg_colour(size_t c)
{
	return c < ARRAY_SIZE(svg_palette) ? svg_palette[c] : SVG_OTHER_COLOUR;
}

/* Draw every sample: a line from before to after when they differ, the hollow before
 * marker, then the filled after marker, each with a tooltip. */
static void svg_points(FILE *f, const struct svg_axes *a, const struct telem_sample *const *s,
    const int64_t *after, size_t n, const size_t *cat_of)
{
	for (size_t i = 0; i < n; i++) {
		const char *col = svg_colour(cat_of[i]);
		double y = svg_y(a, (double)s[i]->actual);
		double xb = svg_x(a, (double)s[i]->predicted);

		if (after != NULL && after[i] != s[i]->predicted)
			fprintf(f,
			    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			    "stroke=\"%s\" stroke-width=\"1.2\" stroke-opacity=\"0.55\"/>\n",
			    xb, y, svg_x(a, (double)after[i]), y, col);
		fprintf(f,
		    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"white\" "
		    "fill-opacity=\"0.6\" stroke=\"%s\" stroke-width=\"2\"><title>",
		    xb, y, col);
		svg_text(f, s[i]->category);
		fputc('/', f);
		svg_text(f, s[i]->complexity);
		fprintf(f, ": predicted %lld, actual %lld</title></circle>\n",
		    (long long)s[i]->predicted, (long long)s[i]->actual);
	}
	for (size_t i = 0; i < n && after != NULL; i++) {
		fprintf(f,
		    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" "
		    "fill-opacity=\"0.9\"><title>",
		    svg_x(a, (double)after[i]), svg_y(a, (double)s[i]->actual),
		    svg_colour(cat_of[i]));
		svg_text(f, s[i]->category);
		fputc('/', f);
		svg_text(f, s[i]->complexity);
		fprintf(f, ": proposed %lld (recorded %lld), actual %lld</title></circle>\n",
		    (long long)after[i], (long long)s[i]->predicted, (long long)s[i]->actual);
	}
}

/* Draw the legend: categories with counts, then what the markers and the line mean. */
static void svg_legend(FILE *f, const struct svg_cat *cats, size_t nc, bool after)
{
	double x = SVG_LEFT + SVG_SIZE + 30, y = SVG_TOP + 10;

	fprintf(f,
	    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">"
	    "category (samples)</text>\n",
	    x, y);
	for (size_t c = 0; c < nc && c < ARRAY_SIZE(svg_palette); c++) {
		y += 24;
		fprintf(f,
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"%s\"/>\n"
		    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">",
		    x, y - 11, svg_colour(c), x + 22, y);
		svg_text(f, cats[c].name);
		fprintf(f, " (%zu)</text>\n", cats[c].n);
	}
	if (nc > ARRAY_SIZE(svg_palette)) {
		size_t others = 0;

		for (size_t c = ARRAY_SIZE(svg_palette); c < nc; c++)
			others += cats[c].n;
		y += 24;
		fprintf(f,
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"%s\"/>\n"
		    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">%zu other categor%s (%zu)"
		    "</text>\n",
		    x, y - 11, SVG_OTHER_COLOUR, x + 22, y, nc - ARRAY_SIZE(svg_palette),
		    nc - ARRAY_SIZE(svg_palette) == 1 ? "y" : "ies", others);
	}
	y += 44;
	fprintf(f,
	    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"white\" stroke=\"#333\" "
	    "stroke-width=\"2\"/>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">the active "
	    "set's estimate</text>\n",
	    x + 7, y - 4, x + 22, y);
	if (after) {
		y += 24;
		fprintf(f,
		    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"#333\"/>\n"
		    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">the proposal's "
		    "(held out)</text>\n",
		    x + 7, y - 4, x + 22, y);
		y += 24;
		fprintf(f,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
		    "stroke=\"#333\" stroke-width=\"1.2\" stroke-opacity=\"0.55\"/>\n"
		    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">moved by the proposal</text>\n",
		    x, y - 4, x + 16, y - 4, x + 22, y);
	}
	y += 24;
	fprintf(f,
	    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
	    "stroke-width=\"1.5\" stroke-dasharray=\"7 5\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
	    "font-size=\"13\">y = x: exact prediction</text>\n",
	    x, y - 4, x + 16, y - 4, x + 22, y);
}

/* The ranges of the curve panel: waste p90 from 0 and truncation % from 0, rounded up. */
static void svg_curve_range(const struct calib_eval *e, double *wmax, double *tmax)
{
	const struct calib_curve_point *pts[] = { e->curve_current, e->curve_proposed };

	*wmax = 4.0;
	*tmax = 0.05;
	for (int c = 0; c < 2; c++)
		for (int k = 0; k < CALIB_CURVE_POINTS; k++) {
			*wmax = pts[c][k].waste_p90 > *wmax ? pts[c][k].waste_p90 : *wmax;
			*tmax = pts[c][k].truncation_rate > *tmax ? pts[c][k].truncation_rate :
			                                            *tmax;
		}
	*wmax = e->chosen_current.waste_p90 > *wmax ? e->chosen_current.waste_p90 : *wmax;
	*wmax = ceil(*wmax / 2.0) * 2.0;
	*tmax = ceil(*tmax * 10.0) / 10.0;
}

/* Pixel position of a curve point. */
static void svg_curve_xy(
    const struct calib_curve_point *p, double wmax, double tmax, double *x, double *y)
{
	*x = SVG_CURVE_LEFT + p->waste_p90 / wmax * SVG_CURVE_W;
	*y = SVG_TOP + SVG_SIZE - p->truncation_rate / tmax * SVG_SIZE;
}

/* Draw the panel's frame, grid and axis titles. */
static void svg_curve_axes(FILE *f, double wmax, double tmax)
{
	fprintf(f,
	    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\" "
	    "font-weight=\"bold\">truncation against waste, by budget factor</text>\n",
	    SVG_CURVE_LEFT + SVG_CURVE_W / 2, SVG_TOP - 12);
	int step = wmax <= 10 ? 1 : wmax <= 20 ? 2 : wmax <= 50 ? 5 : 10;

	for (int k = 0; k <= (int)wmax; k += step) {
		double x = SVG_CURVE_LEFT + k / wmax * SVG_CURVE_W;

		fprintf(f,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ececec\"/>\n"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%dx</text>\n",
		    x, SVG_TOP, x, SVG_TOP + SVG_SIZE, x, SVG_TOP + SVG_SIZE + 20, k);
	}
	for (int k = 0; k <= 10; k++) {
		double y = SVG_TOP + SVG_SIZE - k / 10.0 * SVG_SIZE;

		fprintf(f,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ececec\"/>\n"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%g %%</text>\n",
		    SVG_CURVE_LEFT, y, SVG_CURVE_LEFT + SVG_CURVE_W, y, SVG_CURVE_LEFT - 8, y + 4,
		    round(tmax * k * 10.0 * 10.0) / 10.0);
	}
	fprintf(f,
	    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
	    "stroke=\"#333\"/>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
	    "font-size=\"14\">waste p90 (budget ÷ actual)</text>\n<text transform=\"translate(%.1f "
	    "%.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">truncation rate "
	    "(held out)</text>\n",
	    SVG_CURVE_LEFT, SVG_TOP, SVG_CURVE_W, SVG_SIZE, SVG_CURVE_LEFT + SVG_CURVE_W / 2,
	    SVG_TOP + SVG_SIZE + 50, SVG_CURVE_LEFT - 55, SVG_TOP + SVG_SIZE / 2);
}

/* Draw one set's curve, its chosen point and its legend line. */
static void svg_curve_line(FILE *f, const struct calib_curve_point *pts,
    const struct calib_curve_point *chosen, double wmax, double tmax, const char *colour,
    const char *label, int row)
{
	double x, y;

	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
	for (int k = 0; k < CALIB_CURVE_POINTS; k++) {
		svg_curve_xy(&pts[k], wmax, tmax, &x, &y);
		fprintf(f, "%s%.1f,%.1f", k > 0 ? " " : "", x, y);
	}
	fprintf(f, "\"/>\n");
	for (int k = 0; k < CALIB_CURVE_POINTS; k += 10) {
		svg_curve_xy(&pts[k], wmax, tmax, &x, &y);
		fprintf(f,
		    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/><text x=\"%.1f\" "
		    "y=\"%.1f\" font-size=\"11\" fill=\"%s\">×%.2g</text>\n",
		    x, y, colour, x + 5, y - 5, colour, pts[k].factor);
	}
	svg_curve_xy(chosen, wmax, tmax, &x, &y);
	fprintf(f,
	    "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\" stroke=\"#000\" "
	    "transform=\"rotate(45 %.1f %.1f)\"><title>%s: truncation %.1f %%, waste p90 "
	    "%.2fx</title></rect>\n",
	    x - 6, y - 6, colour, x, y, label, chosen->truncation_rate * 100.0, chosen->waste_p90);
	y = SVG_TOP + 24 + 22 * row;
	fprintf(f,
	    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
	    "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">",
	    SVG_CURVE_LEFT + SVG_CURVE_W - 250, y - 4, SVG_CURVE_LEFT + SVG_CURVE_W - 230, y - 4,
	    colour, SVG_CURVE_LEFT + SVG_CURVE_W - 224, y);
	svg_text(f, label);
	fprintf(f, " (◆ chosen: %.1f %%, %.2fx)</text>\n", chosen->truncation_rate * 100.0,
	    chosen->waste_p90);
}

/* Draw the truncation-against-waste panel. */
static void svg_curve(FILE *f, const struct calib_eval *e)
{
	double wmax, tmax;

	svg_curve_range(e, &wmax, &tmax);
	svg_curve_axes(f, wmax, tmax);
	svg_curve_line(f, e->curve_current, &e->chosen_current, wmax, tmax, SVG_CURRENT_COLOUR,
	    "active set", 0);
	svg_curve_line(f, e->curve_proposed, &e->chosen_proposed, wmax, tmax, SVG_PROPOSED_COLOUR,
	    "proposal", 1);
}

/* Write the whole plot. */
int calib_svg_write(FILE *f, const struct telem_sample *const *samples, const int64_t *after,
    size_t n, const struct calib_eval *e, const char *title)
{
	struct svg_cat *cats = xcalloc(n + 1, sizeof *cats);
	size_t *cat_of = xcalloc(n + 1, sizeof *cat_of);
	struct svg_axes a;
	size_t nc = svg_categories(samples, n, cats, cat_of);
	double width = e != NULL ? SVG_CURVE_WIDTH : SVG_WIDTH;

	svg_range(samples, after, n, &a);
	fprintf(f,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	    "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
	    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
	    width, SVG_HEIGHT, width, SVG_HEIGHT);
	fprintf(f,
	    "<text x=\"%.1f\" y=\"32\" text-anchor=\"middle\" font-size=\"18\" "
	    "font-weight=\"bold\">",
	    width / 2);
	svg_text(f, title);
	fprintf(f,
	    "</text>\n<text x=\"%.1f\" y=\"54\" text-anchor=\"middle\" font-size=\"13\" "
	    "fill=\"#555\">%zu samples; %s</text>\n",
	    width / 2, n,
	    after != NULL ? "hollow: the active set's estimate, filled: the proposal's, held out" :
	                    "recorded predictions");
	svg_grid(f, &a);
	svg_frame(f, &a);
	svg_points(f, &a, samples, after, n, cat_of);
	svg_legend(f, cats, nc, after != NULL);
	if (e != NULL)
		svg_curve(f, e);
	fputs("</svg>\n", f);
	free(cat_of);
	free(cats);
	return ferror(f) ? -1 : 0;
}
