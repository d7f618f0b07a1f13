/*
 * How a worker's channel to its supervisor is made, so that no process of their user can
 * take its keys or its frames. A worker is dumpable from its exec until it makes itself
 * not, and in those instants a process of its user may open its descriptors through
 * /proc/<pid>/fd, duplicate them (pidfd_getfd) or attach to it: so it inherits no secret
 * and nothing the frames travel on. It inherits one socket, the hand, on which it only
 * ever sends one thing: once it is not dumpable and traced by nobody but its supervisor's
 * own tracer, one end of a socket pair it has just made (one byte with SCM_RIGHTS). The
 * supervisor takes that socket only when its creator (SO_PEERCRED) is the worker process
 * it started and nobody else traces that process, answers on it with one byte and, when it
 * holds keys, the read end of a pipe they wait in (SCM_RIGHTS: "NAME=value" entries
 * separated by NUL bytes), and from then on the frames travel on it.
 */
#ifndef AUTOPACK_HAND_H
#define AUTOPACK_HAND_H

#include <stddef.h>
#include <sys/types.h>

/* The most bytes the keys' pipe holds ("NAME=value" entries with their NUL bytes): the
 * supervisor writes them all before the worker reads, and a pipe takes 64 KiB without a
 * reader; a worker refuses more. */
#define HAND_KEYS_MAX 65536

/* The worker's side. When this process is not dumpable and no process traces it but its
 * parent's tracer, make a socket pair, send one end on `hand` and close both. Returns the
 * other end (close-on-exec), or -1 with `err` saying why. */
int hand_give(int hand, char *err, size_t errlen);
/* The worker's side: wait on `sock` for the supervisor's answer and set *keys_fd to the
 * descriptor of the keys' pipe it sent, or -1 when it sent none. Returns 0, or -1 with
 * `err` (the supervisor closed the socket: it refused this process). */
int hand_keys(int sock, int *keys_fd, char *err, size_t errlen);

/* The supervisor's side: take what came on `hand` without waiting. Returns 1 with *sock
 * set to the one descriptor sent (close-on-exec), 0 when nothing came yet, or a negative
 * errno (EPIPE: the peer closed the hand; EPROTO: it sent no descriptor, or more than
 * one, which are closed). */
int hand_take(int hand, int *sock);
/* The supervisor's side: whether `sock` may carry the keys and frames of worker `pid`: a
 * Unix stream socket created by `pid` itself, which no process traces but the caller's own
 * tracer. Returns 0, or -1 with `why`. */
int hand_vet(pid_t pid, int sock, char *why, size_t whylen);
/* The supervisor's side: answer on `sock` with one byte and, when `keys_fd` is not -1, that
 * descriptor. Returns 0 or a negative errno. */
int hand_answer(int sock, int keys_fd);

#endif
