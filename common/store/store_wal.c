/* Whether the write-ahead log beside an SQLite database file continues that file, read
 * without SQLite (which would apply it): the log's header and frames as SQLite validates
 * them (its salts, its checksums chained from the header, up to the last commit), and
 * page 1 in the file and in the log's frames. A file beside its own log holds either a
 * page 1 the log wrote (checkpointed up to there) or the state the log was begun on, on
 * which the log's first commit of page 1 was made. Every write transaction of the store
 * counts itself in the database header (common/store/sqlite/db_sqlite.c: user_version one
 * more, application_id the database's mark) and writes rows on other pages, so a commit
 * of the store's that says commit N was made on a file that held commit N - 1; SQLite
 * writes in each commit of page 1 the change counter of the page 1 its connection read,
 * one more, so that commit was made on a page 1 whose counter is its own or one less. */
#include "common/store/store_wal.h"
#include "common/fdio.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_HDR 32
#define WAL_FRAME_HDR 24
#define DB_HDR 100

/* A 32-bit big-endian value at p. */
static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A 32-bit little-endian value at p. */
static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* SQLite's WAL checksum of n bytes (n a multiple of 8) at p, continuing s[2]: words in
 * big-endian order when `big`, else little-endian. */
static void wal_cksum(bool big, const unsigned char *p, size_t n, uint32_t s[2])
{
	uint32_t s0 = s[0], s1 = s[1];

	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint32_t a, b;

		if (big) {
			a = be32(p + i);
			b = be32(p + i + 4);
		} else {
			a = le32(p + i);
			b = le32(p + i + 4);
		}
		s0 += a + s1;
		s1 += b + s0;
	}
	s[0] = s0;
	s[1] = s1;
}

/* Read exactly n bytes at off; false on a short read or an error. */
static bool read_at(int fd, void *buf, size_t n, off_t off)
{
	int e;

	return fd_pread_all(fd, buf, n, off, &e) == n;
}

/* The page size of a database header or a WAL header field (1 meaning 65536); 0 if it
 * is not one. */
static uint32_t page_size_of(uint32_t v)
{
	if (v == 1)
		v = 65536;
	return v >= 512 && v <= 65536 && (v & (v - 1)) == 0 ? v : 0;
}

/* Whether two database headers agree in the fields no commit of the store's changes: the
 * format (magic, page size, the file format's write and read versions, which a copy made
 * by VACUUM INTO writes as a rollback journal's), the schema format and the text
 * encoding, and the reserved bytes. Left out with the counts: the suggested cache size
 * and the largest root page of an auto-vacuum file, which a commit may change, and the
 * incremental-vacuum flag. */
static bool hdr_fixed_same(const unsigned char *a, const unsigned char *b)
{
	return memcmp(a, b, 24) == 0 && memcmp(a + 44, b + 44, 4) == 0 &&
	    memcmp(a + 56, b + 56, 4) == 0 && memcmp(a + 72, b + 72, 20) == 0;
}

/* Whether page 1 `next`, written by one commit on page 1 `prev` (ps bytes), changed
 * nothing in it but user_version or application_id, not both, besides what SQLite writes
 * in every commit of page 1 (the change counter, at 24, and the version at 92-99). */
static bool one_count_changed(const unsigned char *prev, const unsigned char *next, uint32_t ps)
{
	return (memcmp(prev + 60, next + 60, 4) == 0 || memcmp(prev + 68, next + 68, 4) == 0) &&
	    memcmp(prev, next, 24) == 0 && memcmp(prev + 28, next + 28, 32) == 0 &&
	    memcmp(prev + 64, next + 64, 4) == 0 && memcmp(prev + 72, next + 72, 20) == 0 &&
	    memcmp(prev + DB_HDR, next + DB_HDR, ps - DB_HDR) == 0;
}

/* Whether page 1 `next` can have been written by one commit on page 1 `prev`: SQLite
 * writes in each commit of page 1 the change counter of the page 1 its connection read,
 * one more, and that page 1 is `prev`, or one the connection wrote itself with that
 * counter. */
static bool counter_follows(const unsigned char *prev, const unsigned char *next)
{
	return be32(next + 24) - be32(prev + 24) <= 1;
}

/* What the scan found in the log's committed page-1 frames, tentatively until the commit
 * frame that ends their transaction. */
struct wal_p1 {
	bool seen;      /* a page-1 frame */
	uint32_t first; /* the first one's user_version and application_id */
	uint32_t first_id;
	uint32_t last;             /* the last one's user_version */
	unsigned char *first_page; /* the first one's image (the caller's buffer) */
	bool first_alone;          /* its transaction wrote no other page */
	uint32_t later_id;         /* the first application_id after it other than its own */
	bool later_seen;           /* later_id is set */
	bool later_many;           /* a third application_id was seen */
	bool file_matched;         /* one is byte for byte the file's page 1 */
};

/* Scan the log at fd (size bytes) against the file's page 1 (ps bytes): into *p1 what
 * its committed frames hold; the number of committed frames into *frames. */
static void wal_scan(int fd, off_t size, const unsigned char *hdr, const unsigned char *page1,
    uint32_t ps, struct wal_p1 *p1, uint32_t *frames)
{
	size_t fsz = WAL_FRAME_HDR + ps, batch = 256;
	bool big = (be32(hdr) & 1) != 0;
	unsigned char *buf = xmalloc(fsz * batch);
	uint32_t s[2] = { be32(hdr + 24), be32(hdr + 28) }, n = 0, file_uv = be32(page1 + 60);
	uint32_t tx_start = 0; /* frames before the transaction read */
	struct wal_p1 pend = *p1;
	off_t off = WAL_HDR;
	bool first_tx = false; /* the transaction read is the first page-1 frame's */

	*frames = 0;
	while (off + (off_t)fsz <= size) {
		size_t k = (size_t)((size - off) / (off_t)fsz);

		if (k > batch)
			k = batch;
		if (!read_at(fd, buf, k * fsz, off))
			break;
		for (size_t i = 0; i < k; i++) {
			const unsigned char *f = buf + i * fsz, *pg = f + WAL_FRAME_HDR;
			uint32_t pgno = be32(f), commit = be32(f + 4);

			if (memcmp(f + 8, hdr + 16, 8) != 0)
				goto out;
			wal_cksum(big, f, 8, s);
			wal_cksum(big, pg, ps, s);
			if (s[0] != be32(f + 16) || s[1] != be32(f + 20))
				goto out;
			n++;
			if (pgno == 1) {
				if (!pend.seen) {
					pend.seen = true;
					pend.first = be32(pg + 60);
					pend.first_id = be32(pg + 68);
					memcpy(pend.first_page, pg, ps);
					pend.first_alone = n == tx_start + 1;
					first_tx = true;
				} else if (be32(pg + 68) != pend.first_id && !pend.later_seen) {
					pend.later_seen = true;
					pend.later_id = be32(pg + 68);
				} else if (be32(pg + 68) != pend.first_id &&
				    be32(pg + 68) != pend.later_id) {
					pend.later_many = true;
				}
				pend.last = be32(pg + 60);
				if (be32(pg + 60) == file_uv && memcmp(pg, page1, ps) == 0)
					pend.file_matched = true;
			} else if (first_tx) {
				pend.first_alone = false;
			}
			if (commit != 0) {
				*p1 = pend;
				*frames = n;
				tx_start = n;
				first_tx = false;
			}
		}
		off += (off_t)(k * fsz);
	}
out:
	free(buf);
}

enum store_wal_verdict store_wal_judge(
    const char *path, uint32_t own_mark, struct store_wal_facts *facts, char *why, size_t len)
{
	char *wal = xasprintf("%s-wal", path);
	unsigned char dbh[DB_HDR], hdr[WAL_HDR], *page1 = NULL, *f1;
	enum store_wal_verdict v = STORE_WAL_UNTOLD;
	int fd = -1, wfd = -1;
	struct wal_p1 p1 = { 0 };
	struct stat sb;
	uint32_t ps, s[2] = { 0, 0 }, frames = 0, base, d, span;

	memset(facts, 0, sizeof *facts);
	why[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	wfd = open(wal, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || wfd < 0 || fstat(wfd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    !read_at(fd, dbh, DB_HDR, 0) || memcmp(dbh, "SQLite format 3", 16) != 0 ||
	    (ps = page_size_of((uint32_t)dbh[16] << 8 | dbh[17])) == 0)
		goto out;
	v = STORE_WAL_CONTINUES; /* unless the log holds frames SQLite would apply */
	if (!read_at(wfd, hdr, WAL_HDR, 0) || (be32(hdr) & ~1u) != 0x377f0682 ||
	    be32(hdr + 4) != 3007000)
		goto out;
	wal_cksum((be32(hdr) & 1) != 0, hdr, 24, s);
	if (s[0] != be32(hdr + 24) || s[1] != be32(hdr + 28))
		goto out;
	if (page_size_of(be32(hdr + 8)) != ps) {
		v = STORE_WAL_FOREIGN;
		snprintf(why, len, "its pages are %u bytes and the file's %u", be32(hdr + 8), ps);
		goto out;
	}
	page1 = xmalloc(2 * (size_t)ps); /* the file's page 1, and the log's first */
	p1.first_page = page1 + ps;
	if (!read_at(fd, page1, ps, 0)) {
		v = STORE_WAL_UNTOLD;
		goto out;
	}
	wal_scan(wfd, sb.st_size, hdr, page1, ps, &p1, &frames);
	facts->frames = frames;
	facts->file_count = be32(page1 + 60);
	facts->file_mark = own_mark != 0 ? own_mark : be32(page1 + 68);
	if (frames == 0)
		goto out;
	if (!p1.seen) { /* no commit of the store's: nothing to tell by */
		v = STORE_WAL_UNTOLD;
		goto out;
	}
	facts->counted = true;
	facts->log_from = p1.first - 1;
	facts->log_to = p1.last;
	facts->log_mark = p1.first_id;
	base = p1.first - 1;
	d = facts->file_count - base;
	span = p1.last - base;
	f1 = p1.first_page;
	if (p1.file_matched) {
		v = STORE_WAL_CONTINUES; /* the file's page 1 is one the log wrote */
	} else if (p1.first_alone && counter_follows(page1, f1) &&
	    one_count_changed(page1, f1, ps) &&
	    (be32(f1 + 68) == be32(page1 + 68) ||
	        (!p1.later_many && (!p1.later_seen || p1.later_id == facts->file_mark)))) {
		/* The log's first commit of page 1 wrote it alone, on the file's page 1, and
		 * changed nothing in it but one count: another program's PRAGMA user_version
		 * or application_id on this file (the store's commits write other pages).
		 * After a changed mark, the store's commits that follow carry the file's. */
		v = facts->file_mark == 0 ? STORE_WAL_UNTOLD : STORE_WAL_CONTINUES;
	} else if (facts->file_mark != 0 && p1.first_id != facts->file_mark) {
		v = STORE_WAL_MARK_CHANGED; /* another database's, or a db reidentify */
	} else if (d <= 1 && !hdr_fixed_same(page1, f1)) {
		v = STORE_WAL_FOREIGN;
		snprintf(why, len,
		    "the file counts the commits the log was begun on, but its header is not the "
		    "one the log was written on (file format %u/%u, the log's %u/%u: a copy made "
		    "by VACUUM INTO, or by another program)",
		    page1[18], page1[19], f1[18], f1[19]);
	} else if (d <= 1 && !counter_follows(page1, f1)) {
		v = STORE_WAL_FOREIGN;
		snprintf(why, len,
		    "the file counts the commits the log was begun on, but its change counter is "
		    "%u and the log's first commit was written on %u or %u: another state with as "
		    "many commits, such as an older copy from before an in-place VACUUM",
		    be32(page1 + 24), be32(f1 + 24) - 1, be32(f1 + 24));
	} else if (d <= 1) {
		/* The file is the state the log was begun on (its first page-1 frame is a
		 * commit of the store's, which counted one more, or another program's, which
		 * did not), or an older one that counted as many commits with no other
		 * connection's commit of page 1 since. */
		v = facts->file_mark == 0 ? STORE_WAL_UNTOLD : STORE_WAL_CONTINUES;
	} else if (d <= span) {
		v = STORE_WAL_FOREIGN;
		snprintf(why, len,
		    "the file counts %u commits, but its first page is none the log wrote",
		    facts->file_count);
	} else {
		v = (int32_t)d < 0 ? STORE_WAL_OLDER : STORE_WAL_NEWER;
	}
out:
	free(page1);
	if (fd >= 0)
		close(fd);
	if (wfd >= 0)
		close(wfd);
	free(wal);
	return v;
}

uint32_t store_wal_mark(const char *uuid)
{
	uint32_t h = 2166136261u;

	for (const char *p = uuid; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h != 0 ? h : 1;
}
