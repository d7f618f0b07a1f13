/* autopack-worker entry point. */
#include "common/log.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		printf("usage: autopack-worker [--help]\n");
		return 0;
	}
	log_init("autopack-worker", LOG_INFO);
	log_error("not implemented yet");
	return 2;
}
