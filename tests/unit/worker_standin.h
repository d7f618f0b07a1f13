/* Starting tests/llm_standin.py from a unit test (in the test's temporary directory). */
#ifndef AUTOPACK_WORKER_STANDIN_H
#define AUTOPACK_WORKER_STANDIN_H

#include <jansson.h>
#include <sys/types.h>

struct standin {
	pid_t pid;
	int port;
	char base[64];    /* http://127.0.0.1:PORT */
	char base_v1[64]; /* http://127.0.0.1:PORT/v1, the OpenAI-style base */
};

/* Start the stand-in with `script` (JSON text) expecting `key`; blocks until it listens.
 * It is stopped by standin_stop or when the test process exits. */
void standin_start(struct standin *s, const char *script, const char *key);
void standin_stop(struct standin *s);
/* The request log so far, one array element per request (json_decref it). */
json_t *standin_log(void);
/* The raw bytes of the request log, for grepping (free it). */
char *standin_log_raw(void);
/* A port on 127.0.0.1 where nothing listens. */
int standin_dead_port(void);

#endif
