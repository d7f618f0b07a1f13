/* Whether the write-ahead log beside an SQLite database file continues that file: read
 * without SQLite, which applies a log to whatever file is next to it. */
#ifndef AUTOPACK_STORE_WAL_H
#define AUTOPACK_STORE_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What store_wal_judge found. */
enum store_wal_verdict {
	STORE_WAL_CONTINUES,    /* no frame SQLite would apply, or they continue the file */
	STORE_WAL_UNTOLD,       /* no commit of the store's in the log, or a file never
	                         * marked: the uuid is compared instead */
	STORE_WAL_MARK_CHANGED, /* begun on this count of commits, but the first marks
	                         * another database: a db reidentify, or another's log */
	STORE_WAL_OLDER,        /* the file is older than the state the log was begun on */
	STORE_WAL_NEWER,        /* the file counts more commits than the log wrote */
	STORE_WAL_FOREIGN,      /* the log was not written on this file (why says how) */
};

/* The figures behind a verdict, for its message. */
struct store_wal_facts {
	uint32_t frames;     /* committed frames in the log */
	bool counted;        /* the log holds commits of the store's: the next three are set */
	uint32_t log_from;   /* the count of commits the log was begun on */
	uint32_t log_to;     /* the count after its last commit */
	uint32_t log_mark;   /* the mark of its first counted commit */
	uint32_t file_count; /* the file's count of commits and its mark */
	uint32_t file_mark;
};

/* Read the database file at `path` and its -wal, never writing either, and judge whether
 * the log's committed frames continue the file: they do when the file's page 1 is byte
 * for byte one the log wrote, or when the log's first commit of page 1 was made on it:
 * a commit that wrote page 1 alone and changed nothing in it but user_version or
 * application_id, not both (another program's PRAGMA; after a changed application_id,
 * the log's later page-1 frames carry that one or the file's), or one whose frame has the file's mark
 * (application_id), counts one commit more than the file (user_version, modulo 2^32: a
 * commit of the store's) or as many (another program's), and has the header fields no
 * commit changes as the file has them; in both, SQLite's change counter in that frame is
 * the file's or one more. why gets the reason of a STORE_WAL_FOREIGN; facts the
 * figures. A file or log that cannot be read, a log without a page-1 frame and a file
 * never marked are STORE_WAL_UNTOLD. A nonzero own_mark (the mark of the uuid the file
 * holds) is taken as the file's mark in place of its application_id: another program may
 * have set that. */
enum store_wal_verdict store_wal_judge(
    const char *path, uint32_t own_mark, struct store_wal_facts *facts, char *why, size_t len);
/* The mark of the database with this uuid (never 0). */
uint32_t store_wal_mark(const char *uuid);

#endif
