#include "common/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "tests/unit/test.h"

TEST(fdio_whole_buffer_at_an_offset)
{
	char buf[32] = "";
	int e = -1, fd = open("f", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	CHECK_EQ_INT(fd_pwrite_all(fd, "hello world", 11, 3, &e), 11);
	CHECK_EQ_INT(e, 0);
	e = -1;
	CHECK_EQ_INT(fd_pread_all(fd, buf, 11, 3, &e), 11);
	CHECK_EQ_INT(e, 0);
	CHECK(memcmp(buf, "hello world", 11) == 0);
	/* Past the end of the file: what there is, and no error. */
	e = -1;
	CHECK_EQ_INT(fd_pread_all(fd, buf, sizeof buf, 9, &e), 5);
	CHECK_EQ_INT(e, 0);
	CHECK(memcmp(buf, "world", 5) == 0);
	close(fd);
}

TEST(fdio_failure_gives_its_errno)
{
	char buf[4];
	int e = 0, fd = open("f", O_RDONLY | O_CREAT | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	CHECK_EQ_INT(fd_pwrite_all(fd, "abcd", 4, 0, &e), 0);
	CHECK_EQ_INT(e, EBADF);
	close(fd);
	e = 0;
	CHECK_EQ_INT(fd_pread_all(fd, buf, sizeof buf, 0, &e), 0);
	CHECK_EQ_INT(e, EBADF);
}
