/* A whole buffer read or written at an offset (common/fdio.h). */
#include "common/fdio.h"

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

/* Move n bytes between buf and offset off of fd, writing when `out` is set, until all
 * are moved, a call fails (*err its errno) or moves nothing (*err 0). Returns how many
 * were moved. */
static size_t fd_transfer(int fd, void *buf, size_t n, off_t off, bool out, int *err)
{
	size_t done = 0;

	*err = 0;
	while (done < n) {
		ssize_t k = out ?
		    pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done) :
		    pread(fd, (char *)buf + done, n - done, off + (off_t)done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			*err = k < 0 ? errno : 0;
			break;
		}
		done += (size_t)k;
	}
	return done;
}

size_t fd_pwrite_all(int fd, const void *buf, size_t n, off_t off, int *err)
{
	return fd_transfer(fd, (void *)buf, n, off, true, err);
}

size_t fd_pread_all(int fd, void *buf, size_t n, off_t off, int *err)
{
	return fd_transfer(fd, buf, n, off, false, err);
}
