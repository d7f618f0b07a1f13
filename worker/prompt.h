/*
 * The builder prompt: the phase (name, description, category, complexity, deliverables,
 * scope) and the read-only context files and existing deliverables from the workspace,
 * each read confined to the workspace and bounded in size.
 */
#ifndef AUTOPACK_PROMPT_H
#define AUTOPACK_PROMPT_H

#include "common/estimate/estimator.h"
#include "proto/proto.h"

#define PROMPT_FILE_MAX (64u << 10)     /* bytes of any one file */
#define PROMPT_CONTEXT_MAX (256u << 10) /* bytes of all files together */

struct prompt {
	char *system;
	char *user;
	int files_included;
	int files_skipped; /* missing, outside the workspace, binary, or over the bound */
};

/* Build the prompt for `job` (its workspace must exist for files to be included). `est`
 * (nullable) is the job's estimate: a deliverable it found absent is not looked for. */
void prompt_build(const struct proto_job *job, const struct est_output *est, struct prompt *out);
void prompt_free(struct prompt *p);

#endif
