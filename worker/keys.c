#include "worker/keys.h"
#include "common/envsecret.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEYS_N 2 /* the entries of env_key_names */
static char *keys_values[KEYS_N];
static bool keys_loaded;

/* The slot of a variable name given as the first `n` bytes of `name`, or -1. */
static int keys_slot(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < KEYS_N; i++)
		if (strlen(env_key_names[i]) == n && memcmp(env_key_names[i], name, n) == 0)
			return (int)i;
	return -1;
}

/* Keep `value` for slot i, wiping what was held before. */
static void keys_set(int i, char *value)
{
	if (keys_values[i] != NULL) {
		explicit_bzero(keys_values[i], strlen(keys_values[i]));
		free(keys_values[i]);
	}
	keys_values[i] = value;
}

/* Read the whole of fd into buf (size n). Returns the length, or -1 (a read failed, or
 * the descriptor holds n bytes or more). */
static ssize_t keys_read_all(int fd, char *buf, size_t n)
{
	size_t len = 0;

	while (len < n) {
		ssize_t k = read(fd, buf + len, n - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			return (ssize_t)len;
		len += (size_t)k;
	}
	return -1; /* n bytes or more */
}

int keys_load(int fd, char *err, size_t errlen)
{
	/* One byte more than is taken: a descriptor that fills it holds too much. */
	static char buf[KEYS_BYTES_MAX + 1];
	ssize_t len;
	size_t i, at;
	int rc = 0;

	assert(env_key_names[KEYS_N] == NULL);
	for (i = 0; i < KEYS_N; i++)
		keys_set((int)i, env_secret_take(env_key_names[i]));
	keys_loaded = true;
	if (fd < 0)
		return 0;
	len = keys_read_all(fd, buf, sizeof buf);
	close(fd);
	if (len < 0) {
		snprintf(err, errlen,
		    "cannot read the keys descriptor %d (or it holds over %d bytes)", fd,
		    KEYS_BYTES_MAX);
		return -1;
	}
	for (at = 0; at < (size_t)len && rc == 0;) {
		char *entry = buf + at, *eq;
		size_t n = strnlen(entry, (size_t)len - at);
		bool terminated = at + n < (size_t)len;
		int slot;

		at += n + 1;
		if (n == 0)
			continue;
		eq = memchr(entry, '=', n);
		slot = eq != NULL ? keys_slot(entry, (size_t)(eq - entry)) : -1;
		if (slot < 0 || !terminated) {
			snprintf(err, errlen,
			    "the keys descriptor holds an entry that is not NAME=value of a provider"
			    " key");
			rc = -1;
			continue;
		}
		keys_set(slot, xstrndup(eq + 1, n - (size_t)(eq + 1 - entry)));
	}
	explicit_bzero(buf, sizeof buf);
	return rc;
}

const char *keys_get(const char *variable)
{
	int slot = keys_slot(variable, strlen(variable));

	if (slot < 0)
		return NULL;
	if (!keys_loaded)
		return getenv(variable);
	return keys_values[slot];
}
