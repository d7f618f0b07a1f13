#include "common/envsecret.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

const char *const env_key_names[] = { "ANTHROPIC_API_KEY", "OPENAI_API_KEY", NULL };

char *env_secret_take(const char *name)
{
	size_t k = strlen(name);
	char *value = NULL, **e;

	for (e = environ; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, name, k) != 0 || (*e)[k] != '=')
			continue;
		if (value == NULL)
			value = xstrdup(*e + k + 1);
		explicit_bzero(*e + k + 1, strlen(*e + k + 1));
	}
	unsetenv(name);
	return value;
}
