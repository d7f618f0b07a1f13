/* The peer of the dry-run drain benchmark: put JOBS jobs into a beanstalkd, then drain
 * them with WORKERS processes, each on its own connection, reserving and deleting one job
 * at a time as an autopack worker takes one phase at a time. Prints the jobs drained per
 * second (the puts are not timed, as a drain's import is not).
 *   beanstalk-drain PORT JOBS WORKERS */
#include "common/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The job body: about the size of a dry-run job frame. */
#define BODY_LEN 400

/* Connect to beanstalkd on 127.0.0.1:port; exits on failure. */
static int bs_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		perror("beanstalk-drain: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Write all of buf; exits on failure. */
static void bs_write(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);

		if (w <= 0) {
			perror("beanstalk-drain: write");
			exit(1);
		}
		buf += w;
		n -= (size_t)w;
	}
}

/* Read one reply line ("\r\n" ended) into line, and `body` more bytes plus "\r\n" when
 * body > 0 (discarded); exits on EOF. */
static void bs_reply(int fd, char *line, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		if (read(fd, line + n, 1) != 1) {
			fprintf(stderr, "beanstalk-drain: connection closed\n");
			exit(1);
		}
		if (++n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n')
			break;
	}
	line[n] = '\0';
}

/* Skip a reserved job's body and its "\r\n". */
static void bs_skip(int fd, size_t len)
{
	char buf[4096];

	len += 2;
	while (len > 0) {
		ssize_t r = read(fd, buf, len < sizeof buf ? len : sizeof buf);

		if (r <= 0) {
			fprintf(stderr, "beanstalk-drain: connection closed\n");
			exit(1);
		}
		len -= (size_t)r;
	}
}

/* Put `jobs` jobs, pipelined in batches. */
static void bs_fill(int port, long jobs)
{
	char body[BODY_LEN + 1], cmd[BODY_LEN + 64], line[128];
	int fd = bs_connect(port);
	long sent = 0, got = 0;

	memset(body, 'x', BODY_LEN);
	body[BODY_LEN] = '\0';
	while (got < jobs) {
		for (; sent < jobs && sent - got < 256; sent++) {
			int n = snprintf(
			    cmd, sizeof cmd, "put 1024 0 600 %d\r\n%s\r\n", BODY_LEN, body);

			bs_write(fd, cmd, (size_t)n);
		}
		bs_reply(fd, line, sizeof line);
		if (strncmp(line, "INSERTED", 8) != 0) {
			fprintf(stderr, "beanstalk-drain: put: %s", line);
			exit(1);
		}
		got++;
	}
	close(fd);
}

/* One worker: reserve and delete until the tube is empty. */
static void bs_work(int port)
{
	char line[128], cmd[64];
	int fd = bs_connect(port);

	for (;;) {
		unsigned long long id;
		size_t len;
		int n;

		bs_write(fd, "reserve-with-timeout 0\r\n", 24);
		bs_reply(fd, line, sizeof line);
		if (strncmp(line, "TIMED_OUT", 9) == 0)
			break;
		if (sscanf(line, "RESERVED %llu %zu", &id, &len) != 2) {
			fprintf(stderr, "beanstalk-drain: reserve: %s", line);
			exit(1);
		}
		bs_skip(fd, len);
		n = snprintf(cmd, sizeof cmd, "delete %llu\r\n", id);
		bs_write(fd, cmd, (size_t)n);
		bs_reply(fd, line, sizeof line);
		if (strncmp(line, "DELETED", 7) != 0) {
			fprintf(stderr, "beanstalk-drain: delete: %s", line);
			exit(1);
		}
	}
	close(fd);
}

/* Fill, then time the drain by WORKERS processes. */
int main(int argc, char **argv)
{
	int port, workers, status, failed = 0;
	uint64_t t0, t1;
	long jobs;

	if (argc != 4) {
		fprintf(stderr, "usage: beanstalk-drain PORT JOBS WORKERS\n");
		return 2;
	}
	port = atoi(argv[1]);
	jobs = atol(argv[2]);
	workers = atoi(argv[3]);
	bs_fill(port, jobs);
	t0 = clock_mono_ms();
	for (int i = 0; i < workers; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			bs_work(port);
			_exit(0);
		}
		if (pid < 0) {
			perror("beanstalk-drain: fork");
			return 1;
		}
	}
	while (wait(&status) > 0)
		failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	t1 = clock_mono_ms();
	if (failed)
		return 1;
	printf("%.1f\n", (double)jobs * 1000.0 / (double)(t1 > t0 ? t1 - t0 : 1));
	return 0;
}
