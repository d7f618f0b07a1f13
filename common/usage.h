/* The programs' usage errors: one line on standard error, whatever the value of a flag or
 * argument it quotes holds. */
#ifndef AUTOPACK_COMMON_USAGE_H
#define AUTOPACK_COMMON_USAGE_H

/* Write "PROG: MESSAGE\n" to standard error, MESSAGE formatted as printf does and shown as
 * a terminal shows text without obeying it (utf8_escape: a control character, a newline
 * too, as \e, \n, \t, \r or \xNN, and a byte that is not UTF-8 as \xNN), so that a value
 * it quotes can neither split the line nor send a terminal or a log its escape
 * sequences. */
void usage_say(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
