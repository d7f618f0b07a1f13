/* A capped capture of one output stream of a phase's check command into its log file:
 * the first CAPTURE_HEAD_MAX bytes are written as they come, the last CAPTURE_TAIL_MAX are
 * kept in memory, and whatever lies between is dropped and counted; at the end the file
 * gets a marker line naming the bytes dropped, then the tail. So a command that writes
 * without end costs at most about 1 MiB of disk per stream, never the database's disk. */
#ifndef AUTOPACK_CAPTURE_H
#define AUTOPACK_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAPTURE_HEAD_MAX (512u << 10)
#define CAPTURE_TAIL_MAX (512u << 10)
#define CAPTURE_LAST_MAX 512u /* the stream's last bytes, kept whatever the file took */

struct capture {
	int in;          /* the read end of the stream's pipe (non-blocking), -1 at its end */
	int out;         /* the log file */
	uint64_t total;  /* bytes read from the stream */
	size_t head;     /* bytes written to the file as they came */
	char *tail;      /* ring of the last CAPTURE_TAIL_MAX bytes past the head, or NULL */
	size_t tail_len; /* bytes in the ring */
	size_t tail_end; /* where the next byte goes in the ring */
	int write_errno; /* the first failed write to the file, else 0 */
	uint64_t kept;   /* bytes of the stream the file took (its head, then its tail) */
	char last[CAPTURE_LAST_MAX]; /* the last bytes read, oldest first */
	size_t last_len;             /* bytes in last */
};

/* Start capturing from `in` (made non-blocking) into `out`; both stay the caller's. */
void capture_init(struct capture *c, int in, int out);
/* Read what the stream holds now (at most 1 MiB). Returns 1 while it may send more, 0 at its end (in is
 * then -1), -1 with errno on a read error (the capture is then ended too). A failed write
 * to the file is only recorded in write_errno: the stream is drained all the same. */
int capture_read(struct capture *c);
/* Write the marker and the tail when bytes were dropped, release the ring. The bytes
 * dropped. A failed write is recorded in write_errno. */
uint64_t capture_finish(struct capture *c);

/* Copy the last bytes the stream sent (at most n - 1 of them, control characters but the
 * newline shown as spaces) into out as a string, from memory: what the log file could not
 * take (a full disk) is there all the same. Returns how many. */
size_t capture_last(const struct capture *c, char *out, size_t n);

#endif
