#include "common/numarg.h"

#include <errno.h>
#include <stdlib.h>

/* Whether c is a decimal digit (not locale-dependent, unlike isdigit). */
static int numarg_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parse a whole decimal integer; 0, or -1 if s is anything else or out of range. */
int numarg_ll(const char *s, long long *out)
{
	const char *p = s;
	char *end;
	long long v;

	if (*p == '-')
		p++;
	if (!numarg_digit(*p))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Parse a whole decimal number; 0, or -1 if s is anything else or overflows. */
int numarg_double(const char *s, double *out)
{
	const char *p = s;
	char *end;
	int digits = 0;
	double v;

	if (*p == '-')
		p++;
	for (; numarg_digit(*p); p++)
		digits++;
	if (*p == '.')
		for (p++; numarg_digit(*p); p++)
			digits++;
	if (digits == 0)
		return -1;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!numarg_digit(*p))
			return -1;
		while (numarg_digit(*p))
			p++;
	}
	if (*p != '\0')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno == ERANGE && (v > 1.0 || v < -1.0))
		return -1;
	if (*end != '\0')
		return -1;
	*out = v;
	return 0;
}
