/* A whole buffer read or written at an offset of a descriptor (pread, pwrite), the short
 * transfers and the calls a signal interrupted retried: the claim file, SQLite's database
 * on a descriptor, the write-ahead log read for its commits. */
#ifndef AUTOPACK_FDIO_H
#define AUTOPACK_FDIO_H

#include <stddef.h>
#include <sys/types.h>

/* Write the n bytes of buf at offset off of fd. Returns how many were written: n, or
 * fewer when a write failed (*err its errno) or wrote nothing (*err 0). */
size_t fd_pwrite_all(int fd, const void *buf, size_t n, off_t off, int *err);
/* Read n bytes at offset off of fd into buf. Returns how many were read: n, or fewer at
 * the end of the file (*err 0) or when a read failed (*err its errno). */
size_t fd_pread_all(int fd, void *buf, size_t n, off_t off, int *err);

#endif
