/* Secrets out of the environment: a process that was given an API key in its environment
 * takes it into memory and wipes it from the environment, including the initial
 * environment block that /proc/<pid>/environ shows to other processes of the same user. */
#ifndef AUTOPACK_ENVSECRET_H
#define AUTOPACK_ENVSECRET_H

/* The environment variables that hold provider API keys, NULL-terminated. */
extern const char *const env_key_names[];

/* Return a heap copy of variable `name`'s value (NULL when unset), remove the variable,
 * and overwrite the value of every "name=" entry in place with NUL bytes. Children
 * spawned afterwards do not inherit it. */
char *env_secret_take(const char *name);

#endif
