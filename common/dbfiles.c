/* Whether an output path names one of an SQLite database's files, or a file that begins as
 * one. */
#include "common/dbfiles.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const dbfiles_sfx[] = { "", "-wal", "-shm", "-journal" };

/* The name `path` has, or will have once made: its directory through realpath, then its
 * last component; NULL when the directory cannot be resolved. Heap. */
static char *dbfiles_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL ?
	    xstrdup(".") :
	    xasprintf("%.*s", (int)(slash == path ? 1 : slash - path), path);
	char *real = realpath(dir, NULL), *name = NULL;

	if (real != NULL)
		name = xasprintf(
		    "%s/%s", strcmp(real, "/") == 0 ? "" : real, slash == NULL ? path : slash + 1);
	free(real);
	free(dir);
	return name;
}

const char *dbfiles_match(const char *db_path, const char *path, int fd)
{
	char *name = dbfiles_name(path), *real = realpath(path, NULL);
	const char *hit = NULL;
	struct stat sb, fb, db;
	bool have_path = stat(path, &sb) == 0, have_fd = fd >= 0 && fstat(fd, &fb) == 0;

	for (size_t i = 0; hit == NULL && i < sizeof dbfiles_sfx / sizeof dbfiles_sfx[0]; i++) {
		char *file = xasprintf("%s%s", db_path, dbfiles_sfx[i]);
		bool have_db = stat(file, &db) == 0;

		if ((name != NULL && strcmp(name, file) == 0) ||
		    (real != NULL && strcmp(real, file) == 0) ||
		    (have_db && have_path && db.st_dev == sb.st_dev && db.st_ino == sb.st_ino) ||
		    (have_db && have_fd && db.st_dev == fb.st_dev && db.st_ino == fb.st_ino))
			hit = dbfiles_sfx[i];
		free(file);
	}
	free(name);
	free(real);
	return hit;
}

const char *dbfiles_what(const char *sfx)
{
	return sfx[0] == '\0' ? "the database itself" : "one of the database's files";
}

/* The database's header is "SQLite format 3" and a NUL, its write-ahead log's magic
 * 0x377f0682 or 0x377f0683 (big-endian), its WAL index's version 3007000 (in the machine's
 * byte order). */
bool dbfiles_begins_as_database(const char *path)
{
	static const unsigned char sqlite_magic[16] = "SQLite format 3";
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	unsigned char b[16];
	struct stat st;
	uint32_t be, native;
	ssize_t n = -1;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = pread(fd, b, sizeof b, 0);
	close(fd);
	if (n < 4)
		return false;
	be = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	memcpy(&native, b, sizeof native);
	return (n == sizeof b && memcmp(b, sqlite_magic, sizeof b) == 0) || be == 0x377f0682 ||
	    be == 0x377f0683 || native == 3007000;
}

bool dbfiles_names_database_side(const char *path)
{
	size_t len = strlen(path);

	/* Each suffix of dbfiles_sfx but the database's own, "". */
	for (size_t i = 1; i < ARRAY_SIZE(dbfiles_sfx); i++) {
		size_t n = strlen(dbfiles_sfx[i]);

		if (len > n && strcmp(path + len - n, dbfiles_sfx[i]) == 0) {
			char *db = xstrndup(path, len - n);
			bool is = dbfiles_begins_as_database(db);

			free(db);
			if (is)
				return true;
		}
	}
	return false;
}
