/* Sample messages of every type and event kind, in three variants: "min" (empty strings,
 * zeros, empty lists, nullable fields absent), "typical" (realistic values, UTF-8) and
 * "max" (largest integers, every nullable field present, PROTO_LIST_MAX deliverables).
 * Used by the unit tests, the interop tool and the fuzz corpus generator. */
#ifndef AUTOPACK_PROTO_SAMPLES_H
#define AUTOPACK_PROTO_SAMPLES_H

#include <stddef.h>

#include "proto/proto.h"

enum proto_sample_variant {
	SAMPLE_MIN,
	SAMPLE_TYPICAL,
	SAMPLE_MAX
};

/* The index of each sample, for proto_sample_build. */
enum proto_sample_id {
	SAMPLE_HELLO,
	SAMPLE_JOB,
	SAMPLE_HEARTBEAT,
	SAMPLE_EVENT_USAGE,
	SAMPLE_EVENT_ESTIMATION,
	SAMPLE_EVENT_LOG,
	SAMPLE_ACK,
	SAMPLE_RESULT,
	SAMPLE_CANCEL,
	SAMPLE_SHUTDOWN,
	SAMPLE_REQUEST,
	SAMPLE_REPLY,
};

/* Number of samples per variant (one per type, one per event kind). */
size_t proto_sample_count(void);
/* Build sample i of variant v into m (heap strings: release with proto_msg_free); returns
 * its name, e.g. "event_llm_usage". */
const char *proto_sample_build(size_t i, enum proto_sample_variant v, struct proto_msg *m);

#endif
