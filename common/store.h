/*
 * The store: the only code that touches sqlite3. A store is one open autopack database,
 * named by its canonical path. Opening never creates a file; only store_init does.
 *
 * Functions return 0 on success or a negative STORE_E* code with a message in `err`
 * that names the database and what was wrong.
 */
#ifndef AUTOPACK_STORE_H
#define AUTOPACK_STORE_H

#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

enum store_errcode {
	STORE_OK = 0,
	STORE_ENOENT = -1,   /* no such file */
	STORE_ENOTDB = -2,   /* not SQLite, or SQLite but not autopack */
	STORE_EPARTIAL = -3, /* autopack meta present, tables missing */
	STORE_EVERSION = -4, /* schema newer than this program */
	STORE_EIO = -5,      /* SQLite or file system error */
	STORE_EINVAL = -6,   /* bad input (plan, arguments) */
	STORE_EEXIST = -7,   /* already exists */
	STORE_EBUSY = -8,    /* locked by another process */
	STORE_EMOVED = -9,   /* the file was replaced or removed under us */
};

struct store_err {
	char text[512];
};

struct store {
	sqlite3 *db;
	char *path;           /* canonical absolute path */
	char *url;            /* canonical URL: sqlite:////abs/path.db */
	char uuid[37];
	int schema_version;
	dev_t dev;            /* identity of the file at open */
	ino_t ino;
};

#endif
