/* proto-tool: the wire protocol from outside C, for interoperability tests and the fuzz
 * corpus.
 *   proto-tool recode [--max BYTES]   frames on stdin → decoded → re-packed frames on stdout
 *   proto-tool samples min|typical|max the sample messages as frames on stdout
 *   proto-tool corpus DIR              write the fuzzer's seed corpus into DIR
 * Exit status: 0 done, 1 a frame was refused (the reason on stderr), 2 usage or I/O error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proto/fdio.h"
#include "tests/unit/proto_samples.h"

static const char usage[] =
    "usage: proto-tool recode [--max BYTES]\n"
    "       proto-tool samples min|typical|max\n"
    "       proto-tool corpus DIR\n"
    "\n"
    "recode   read frames on stdin, decode each strictly, pack it again to stdout;\n"
    "         a refused frame prints its reason on stderr and exits 1\n"
    "samples  write every sample message of one variant as frames to stdout\n"
    "corpus   write the fuzzer's seed corpus (one file per message type, plus\n"
    "         malformed streams) into DIR\n";

/* Decode the frames on stdin and write them re-packed to stdout. */
static int cmd_recode(size_t max)
{
	struct proto_fd in, out;
	enum proto_fd_rc got;
	struct proto_err err;
	struct proto_msg m;
	int rc = 0;

	proto_fd_init(&in, 0, max);
	proto_fd_init(&out, 1, 0);
	while ((got = proto_fd_recv(&in, &m, -1, &err)) == PROTO_FD_MSG) {
		rc = proto_fd_queue(&out, &m, &err) < 0;
		proto_msg_free(&m);
		if (rc != 0)
			break;
	}
	if (rc != 0 || got == PROTO_FD_EBADFRAME) {
		fprintf(stderr, "proto-tool: %s\n", err.text);
		rc = 1;
	} else if (got == PROTO_FD_EIO) {
		fprintf(stderr, "proto-tool: stdin: %s\n", err.text);
		rc = 2;
	} else if (in.rd.len > in.rd.off) {
		fprintf(stderr, "proto-tool: %zu bytes of an unfinished frame at end of input\n",
		    in.rd.len - in.rd.off);
		rc = 1;
	}
	if (rc == 0 && proto_fd_flush(&out) < 0) {
		fprintf(stderr, "proto-tool: writing stdout: %s\n", strerror(errno));
		rc = 2;
	}
	proto_fd_free(&in);
	proto_fd_free(&out);
	return rc;
}

/* Pack every sample of variant v into b. */
static void pack_samples(enum proto_sample_variant v, struct proto_buf *b)
{
	struct proto_msg m;

	for (size_t i = 0; i < proto_sample_count(); i++) {
		proto_sample_build(i, v, &m);
		if (proto_pack(&m, b) != 0) {
			fprintf(stderr, "proto-tool: sample %zu does not pack\n", i);
			exit(2);
		}
		proto_msg_free(&m);
	}
}

/* Write every sample of one variant to stdout. */
static int cmd_samples(const char *variant)
{
	static const char *const names[] = { "min", "typical", "max" };
	struct proto_fd out;
	int rc;

	for (size_t v = 0; v < ARRAY_SIZE(names); v++) {
		if (strcmp(variant, names[v]) != 0)
			continue;
		proto_fd_init(&out, 1, 0);
		pack_samples((enum proto_sample_variant)v, &out.out);
		rc = proto_fd_flush(&out);
		proto_fd_free(&out);
		return rc < 0 ? 2 : 0;
	}
	fprintf(stderr, "proto-tool: unknown variant \"%s\" (min, typical or max)\n", variant);
	return 2;
}

/* Write n bytes to DIR/name; exits 2 on failure. */
static void write_seed(const char *dir, const char *name, const void *p, size_t n)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "proto-tool: writing %s: %s\n", path, strerror(errno));
		exit(2);
	}
	free(path);
}

/* Streams a fuzzer should start from that are refused, each for one reason. */
static const struct {
	const char *name;
	size_t len;
	const char *bytes;
} malformed[] = {
	{ "bad-oversize-header", 8, "\x7f\xff\xff\xff\x80\x80\x80\x80" },
	{ "bad-huge-array", 21,
	    "\x00\x00\x00\x11\x83\xa1v\x01\xa1t\xa3"
	    "ack\xa1x\xdd\xff\xff\xff\xff" },
	{ "bad-huge-map", 9, "\x00\x00\x00\x05\xdf\xff\xff\xff\xff" },
	{ "bad-deep-nesting", 14, "\x00\x00\x00\x0a\x81\xa1x\x91\x91\x91\x91\x91\x91\x00" },
	{ "bad-unknown-type", 15, "\x00\x00\x00\x0b\x82\xa1v\x01\xa1t\xa4nope" },
	{ "bad-version", 14,
	    "\x00\x00\x00\x0a\x82\xa1v\x02\xa1t\xa3"
	    "ack" },
	{ "bad-truncated", 10, "\x00\x00\x00\x06\x83\xa1v\x01\xa1t" },
	{ "bad-mistyped", 25,
	    "\x00\x00\x00\x15\x84\xa1v\x01\xa1t\xa3"
	    "ack\xa3"
	    "att\xa1"
	    "1\xa3seq\x01" },
};

/* Write the seed corpus into dir. */
static int cmd_corpus(const char *dir)
{
	struct proto_buf b;
	struct proto_msg m;
	char *name;

	proto_buf_init(&b);
	for (size_t i = 0; i < proto_sample_count(); i++) {
		proto_buf_reset(&b);
		name = xasprintf("msg-%s", proto_sample_build(i, SAMPLE_TYPICAL, &m));
		if (proto_pack(&m, &b) != 0)
			return 2;
		write_seed(dir, name, b.data, b.len);
		proto_msg_free(&m);
		free(name);
	}
	proto_buf_reset(&b);
	pack_samples(SAMPLE_MIN, &b);
	write_seed(dir, "stream-all-min", b.data, b.len);
	proto_buf_free(&b);
	for (size_t j = 0; j < ARRAY_SIZE(malformed); j++)
		write_seed(dir, malformed[j].name, malformed[j].bytes, malformed[j].len);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "recode") == 0)
		return cmd_recode(0);
	if (argc == 4 && strcmp(argv[1], "recode") == 0 && strcmp(argv[2], "--max") == 0)
		return cmd_recode(strtoul(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "samples") == 0)
		return cmd_samples(argv[2]);
	if (argc == 3 && strcmp(argv[1], "corpus") == 0)
		return cmd_corpus(argv[2]);
	fputs(usage, stderr);
	return 2;
}
