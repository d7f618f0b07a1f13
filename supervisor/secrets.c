/* The provider API keys, kept from every process that runs a phase's code: taken out of
 * the supervisor's environment at start (and wiped from the block /proc/<pid>/environ
 * shows), so no worker or check command inherits them; handed to each worker, once it is
 * not dumpable, on a pipe sent on the socket it made itself (proto/hand.h), which it reads
 * once (worker/keys.h); never in argv or a frame. */
#include "supervisor/sup.h"
#include "common/envsecret.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/hand.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

void secrets_take(struct sup *s)
{
	size_t i;

	/* Nothing else of this user reads the keys out of the supervisor's memory (or a core
	 * file). */
	prctl(PR_SET_DUMPABLE, 0);
	for (i = 0; env_key_names[i] != NULL; i++) {
		char *v = env_secret_take(env_key_names[i]);
		size_t k = strlen(env_key_names[i]), n;

		if (v == NULL)
			continue;
		n = strlen(v);
		s->keys = xrealloc(s->keys, s->keys_len + k + n + 2);
		memcpy(s->keys + s->keys_len, env_key_names[i], k);
		s->keys[s->keys_len + k] = '=';
		memcpy(s->keys + s->keys_len + k + 1, v, n + 1);
		s->keys_len += k + n + 2;
		explicit_bzero(v, n);
		free(v);
	}
}

/* Make pipe p (its write end not blocking) hold at least `need` bytes without a reader:
 * 0, or a negative errno with `why` (`n` bytes) naming the cause. A user whose pipes hold
 * more pages than /proc/sys/fs/pipe-user-pages-soft gets pipes of two pages, which it may
 * not enlarge. */
static int secrets_pipe_hold(int p[2], size_t need, char *why, size_t n)
{
	int size, e;

	if (fcntl(p[1], F_SETFL, O_NONBLOCK) != 0) {
		e = errno;
		snprintf(why, n, "cannot make the keys' pipe non-blocking: %s", strerror(e));
		return -e;
	}
	size = fcntl(p[1], F_GETPIPE_SZ);
	if (size < 0) {
		e = errno;
		snprintf(why, n, "cannot read the size of the keys' pipe: %s", strerror(e));
		return -e;
	}
	if ((size_t)size >= need)
		return 0;
	if (fcntl(p[1], F_SETPIPE_SZ, (int)need) >= 0)
		return 0;
	e = errno;
	snprintf(why, n,
	    "the keys (%zu bytes with their names) do not fit their pipe (%d bytes), which"
	    " cannot be enlarged (F_SETPIPE_SZ: %s): this user's pipes are over"
	    " /proc/sys/fs/pipe-user-pages-soft, or /proc/sys/fs/pipe-max-size is lower",
	    need, size, strerror(e));
	return -e;
}

/* A pipe's read end holding the keys: 0 with *fd set (-1 when there are no keys), or a
 * negative errno with `why` (`n` bytes) saying what failed. Never waits: a pipe that
 * cannot hold them all is refused. */
static int secrets_pipe(struct sup *s, int *fd, char *why, size_t n)
{
	int p[2], rc;
	size_t at = 0;

	*fd = -1;
	if (s->keys_len == 0)
		return 0;
	if (pipe2(p, O_CLOEXEC) != 0) {
		rc = -errno;
		snprintf(why, n, "cannot make a pipe for the keys: %s", strerror(-rc));
		return rc;
	}
	rc = secrets_pipe_hold(p, s->keys_len, why, n);
	while (rc == 0 && at < s->keys_len) {
		ssize_t k = write(p[1], s->keys + at, s->keys_len - at);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			snprintf(why, n,
			    "cannot write the keys (%zu bytes with their names) into their pipe"
			    " after %zu bytes: %s",
			    s->keys_len, at, strerror(-rc));
		} else if (k == 0) {
			rc = -EIO;
			snprintf(why, n, "the keys' pipe took none of their %zu bytes after %zu",
			    s->keys_len, at);
		} else {
			at += (size_t)k;
		}
	}
	close(p[1]);
	if (rc != 0)
		close(p[0]);
	else
		*fd = p[0];
	return rc;
}

int secrets_give(struct sup *s, int sock, char *why, size_t n)
{
	int fd, rc = secrets_pipe(s, &fd, why, n);

	if (rc != 0)
		return rc;
	rc = hand_answer(sock, fd);
	if (rc != 0)
		snprintf(why, n, "cannot answer on the socket it handed over: %s", strerror(-rc));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The variable that holds the key of the configured provider. */
static const char *secrets_key_var(const struct sup *s)
{
	return strcmp(s->cfg.llm_provider, "openai") == 0 ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY";
}

const char *secrets_missing(const struct sup *s)
{
	const char *var = secrets_key_var(s);
	size_t k = strlen(var), at;

	for (at = 0; at < s->keys_len; at += strlen(s->keys + at) + 1)
		if (strncmp(s->keys + at, var, k) == 0 && s->keys[at + k] == '=' &&
		    s->keys[at + k + 1] != '\0')
			return NULL;
	return var;
}

/* Whether `host` (as a URL names it: a name, an IPv4 address, an IPv6 one in brackets)
 * is this machine's loopback: localhost or a name under it, 127.0.0.0/8, ::1, or
 * ::ffff:127.x.y.z. */
static bool secrets_host_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;
	char ip[INET6_ADDRSTRLEN];
	size_t n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--; /* a fully qualified name: localhost. */
	if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	    (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (host[0] != '[' || n < 2 || host[n - 1] != ']' || n - 2 >= sizeof ip)
		return false;
	memcpy(ip, host + 1, n - 2);
	ip[n - 2] = '\0';
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return false;
	return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

void secrets_warn_clear_text(const struct sup *s)
{
	const char *url = s->cfg.llm_base_url, *host;
	char *name;
	size_t n;

	if (s->cfg.dry_run || strncmp(url, "http://", 7) != 0)
		return;
	host = url + 7;
	n = host[0] == '[' ? strcspn(host, "]") + (host[strcspn(host, "]")] == ']') :
	                     strcspn(host, ":/");
	name = xstrndup(host, n);
	if (!secrets_host_loopback(name)) {
		log_warn("--llm-base-url %s: every call sends the API key (%s) and the prompt to "
		         "%s unencrypted (http://, and %s is not this machine's loopback), where "
		         "whatever is on the network between reads them; give an https:// URL",
		    url, secrets_key_var(s), name, name);
	}
	free(name);
}

bool secrets_fit(const struct sup *s, char *why, size_t n)
{
	size_t at, k = 0;

	if (s->keys_len <= HAND_KEYS_MAX)
		return true;
	why[0] = '\0';
	for (at = 0; at < s->keys_len; at += strlen(s->keys + at) + 1) {
		const char *entry = s->keys + at, *eq = strchr(entry, '=');
		int w = snprintf(why + k, n - k, "%s%.*s holds %zu bytes", k > 0 ? ", " : "",
		    (int)(eq - entry), entry, strlen(eq + 1));

		if (w < 0 || (size_t)w >= n - k)
			break;
		k += (size_t)w;
	}
	return false;
}

void secrets_free(struct sup *s)
{
	if (s->keys != NULL)
		explicit_bzero(s->keys, s->keys_len);
	free(s->keys);
	s->keys = NULL;
	s->keys_len = 0;
}
