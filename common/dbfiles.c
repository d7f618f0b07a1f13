/* Whether an output path names one of an SQLite database's files. */
#include "common/dbfiles.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
