/* Strict parsing of the numbers given as option values on command lines (and in control
 * requests): the whole text is the number, nothing around it. */
#ifndef AUTOPACK_NUMARG_H
#define AUTOPACK_NUMARG_H

/* Parse `s` whole as a decimal integer: an optional '-', then digits and nothing else.
 * strtoll alone would let leading white space and a '+' through. Returns 0 with *out,
 * or -1 (empty, any other character, beyond the range of long long); *out is then left
 * unchanged. */
int numarg_ll(const char *s, long long *out);

/* Parse `s` whole as a decimal number: an optional '-', digits with an optional fraction
 * ("8", "0.5", ".5", "2.") and an optional exponent ("1e3"), nothing else: no white space,
 * '+', hexadecimal, inf or nan, which strtod would let through. Returns 0 with *out, or -1
 * (also when it overflows); *out is then left unchanged. */
int numarg_double(const char *s, double *out);

#endif
