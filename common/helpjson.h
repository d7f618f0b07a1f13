/* The JSON form of a program's --help and --version, read from the text --help prints, so
 * that the text and the JSON have one source: autopack-ctl (its commands too),
 * autopack-supervisor and autopack-worker. */
#ifndef AUTOPACK_COMMON_HELPJSON_H
#define AUTOPACK_COMMON_HELPJSON_H

#include <jansson.h>
#include <stdbool.h>

/* The options a help text names, in its order and each once (the first mention counts):
 * a JSON array of {"name": "--timeout", "value": "S"}, "value" the placeholder after the
 * name when the next word is one (it starts with a capital letter, "S", "PATH", or lists
 * choices, "full|normal"), else null. */
json_t *help_json_options(const char *text);

/* {"command": prog, "usage", "options", "help"}: the usage lines, the options both texts
 * name (help_json_options) and the text that follows the usage lines. */
json_t *help_json_program(const char *prog, const char *usage, const char *help);

/* help_json_program of a whole --help text: its usage lines are those before the first
 * empty line, its help the text after it. */
json_t *help_json_text(const char *prog, const char *text);

/* {"command": prog, "version"}. */
json_t *help_json_version(const char *prog);

/* Whether the command line argv (NULL-terminated, the program's name first) holds --json
 * before any "--": a --help or --version that ends the parse where it stands sees a
 * --json given before or after it. */
bool help_json_asked(char *const *argv);

/* Print j on stdout, indented, its reals in their shortest form (common/jsondump.h),
 * and free it; returns the exit status: 0, or 1 when standard output could not take it
 * (said on standard error as prog's). */
int help_json_print(const char *prog, json_t *j);

#endif
