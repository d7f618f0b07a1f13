/* The drain's progress figures: their names, JSON form and one-line text. */
#include "common/progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const basis_names[PROGRESS_BASIS_COUNT] = {
	[PROGRESS_BASIS_NONE] = "none",
	[PROGRESS_BASIS_MEDIAN] = "median_duration_per_category",
	[PROGRESS_BASIS_RATE] = "rate",
	[PROGRESS_BASIS_FINISHED] = "finished",
};

/* Name a basis; "none" for a value outside the table. */
const char *progress_basis_name(enum progress_basis b)
{
	return (unsigned)b < PROGRESS_BASIS_COUNT ? basis_names[b] : basis_names[0];
}

/* Build the JSON object of the figures. */
json_t *progress_to_json(const struct progress *p)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o, s:s}", "done",
	    (json_int_t)p->done, "remaining", (json_int_t)p->remaining, "total",
	    (json_int_t)p->total, "failed", (json_int_t)p->failed, "handed_back",
	    (json_int_t)p->handed_back, "percent", p->percent, "phases_per_minute", p->per_minute,
	    "eta_seconds", p->eta_seconds < 0 ? json_null() : json_real(p->eta_seconds),
	    "eta_basis", progress_basis_name(p->basis));
}

/* A number member of o as a double, `dflt` when absent or not a number. */
static double member_number(json_t *o, const char *key, double dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : dflt;
}

/* A count member of o: an integer as it is, a real held within the range of an int64_t
 * (a number past it, which only another program's reply holds, has no such value, and
 * converting it was undefined: 1e308 read as -9223372036854775808), 0 when absent or not a
 * number. */
static int64_t member_count(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	double d = json_real_value(v);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (!json_is_real(v) || isnan(d))
		return 0;
	if (d >= 0x1p63)
		return INT64_MAX;
	if (d <= -0x1p63)
		return INT64_MIN;
	return (int64_t)d;
}

/* Fill p from a progress_to_json object. */
void progress_from_json(json_t *o, struct progress *p)
{
	const char *basis = json_string_value(json_object_get(o, "eta_basis"));

	p->done = member_count(o, "done");
	p->remaining = member_count(o, "remaining");
	p->total = member_count(o, "total");
	p->failed = member_count(o, "failed");
	p->handed_back = member_count(o, "handed_back");
	p->percent = member_number(o, "percent", 0);
	p->per_minute = member_number(o, "phases_per_minute", 0);
	p->eta_seconds = member_number(o, "eta_seconds", -1);
	p->basis = PROGRESS_BASIS_NONE;
	for (int i = 0; basis != NULL && i < PROGRESS_BASIS_COUNT; i++)
		if (strcmp(basis, basis_names[i]) == 0)
			p->basis = (enum progress_basis)i;
}

/* Format a duration the way a person reads a countdown. */
void progress_duration_text(double seconds, char *buf, size_t n)
{
	long long s;

	if (seconds < 0 || !isfinite(seconds)) {
		snprintf(buf, n, "?");
		return;
	}
	/* Past what llround returns (durations no phase took, summed): the days, in three
	 * digits and an exponent. */
	if (seconds >= 9e18) {
		snprintf(buf, n, "%.3gd", seconds / 86400);
		return;
	}
	s = llround(seconds);
	if (s < 60)
		snprintf(buf, n, "%llds", s);
	else if (s < 3600)
		snprintf(buf, n, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

/* Write the one-line text of the figures. */
int progress_line(const struct progress *p, char *buf, size_t n)
{
	char eta[32], back[48] = "";

	if (p->basis == PROGRESS_BASIS_FINISHED)
		snprintf(eta, sizeof eta, "done");
	else
		progress_duration_text(p->eta_seconds, eta, sizeof eta);
	if (p->handed_back > 0)
		snprintf(back, sizeof back, ", %lld handed back", (long long)p->handed_back);
	return snprintf(buf, n, "%lld/%lld phases (%.1f%%), %.1f/min, ETA %s, %lld failed%s",
	    (long long)p->done, (long long)p->total, p->percent, p->per_minute, eta,
	    (long long)p->failed, back);
}
