#include "common/store/schema.sql.h"
#include "common/store/store_checkpoint.h"
#include "common/store/store_internal.h"
#include "common/store/store_lock.h"
#include "common/util.h"
#include "tests/unit/test.h"
#include "tests/unit/testutil.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Check that opening (both modes) and initialising `path` fail with `code` and a message
 * holding `needle`, and leave the file byte for byte as it was. */
static void expect_refused_untouched(const char *path, int code, const char *needle)
{
	struct store_err err;
	struct store st;
	size_t n0, n1;
	char *before = test_slurp(path, &n0), *after;

	CHECK_EQ_INT(store_open(&st, path, "u", STORE_READ, &err), code);
	CHECK(strstr(err.text, needle) != NULL);
	CHECK_EQ_INT(store_open(&st, path, "u", STORE_WRITE, &err), code);
	CHECK(strstr(err.text, needle) != NULL);
	CHECK_EQ_INT(store_init(path, NULL, &err), code);
	CHECK(strstr(err.text, "refusing to initialise") != NULL);
	after = test_slurp(path, &n1);
	CHECK_EQ_INT(n0, n1);
	CHECK(memcmp(before, after, n0) == 0);
	free(before);
	free(after);
}

TEST(store_init_creates_every_table_and_the_meta_row)
{
	const char *names[32];
	struct store_err err;
	struct store st;
	char uuid[37];
	char *p = test_path("a.db");
	size_t n = store_schema_tables(SCHEMA_VERSION, names, ARRAY_SIZE(names));

	CHECK_EQ_INT(store_init(p, uuid, &err), 0);
	CHECK_EQ_INT(strlen(uuid), 36);
	CHECK(uuid[14] == '4');
	CHECK(strchr("89ab", uuid[19]) != NULL);
	CHECK_EQ_INT(store_open(&st, p, "sqlite:///u", STORE_READ, &err), 0);
	CHECK_EQ_STR(st.uuid, uuid);
	CHECK_EQ_INT(st.schema_version, SCHEMA_VERSION);
	store_close(&st);
	CHECK_EQ_INT(test_count(p,
	                 "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
	                 "AND name NOT LIKE 'sqlite_%'"),
	    (int64_t)n);
	CHECK_EQ_INT(test_count(p, "SELECT count(*) FROM meta"), 1);
	CHECK_EQ_INT(test_count(p,
	                 "SELECT count(*) FROM meta WHERE created_by LIKE "
	                 "'%@% autopack " AUTOPACK_VERSION "'"),
	    1);
	free(p);
}

TEST(store_init_twice_reports_the_existing_database_and_changes_nothing)
{
	struct store_err err;
	char u1[37], u2[37];
	char *p = test_path("a.db"), *b1, *b2;
	size_t n1, n2;

	CHECK_EQ_INT(store_init(p, u1, &err), 0);
	b1 = test_slurp(p, &n1);
	CHECK_EQ_INT(store_init(p, u2, &err), STORE_EEXIST);
	CHECK_EQ_STR(u1, u2);
	CHECK(strstr(err.text, "already an autopack database") != NULL);
	CHECK(strstr(err.text, u1) != NULL);
	b2 = test_slurp(p, &n2);
	CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
	free(b1);
	free(b2);
	free(p);
}

TEST(store_open_missing_file_fails_and_creates_nothing)
{
	struct store_err err;
	struct store st;
	char *p = test_path("missing.db");

	CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), STORE_ENOENT);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), STORE_ENOENT);
	CHECK(strstr(err.text, "no such database file") != NULL);
	CHECK(strstr(err.text, "db init") != NULL);
	CHECK(access(p, F_OK) != 0);
	free(p);
}

TEST(store_refuses_a_non_sqlite_file_and_leaves_it_untouched)
{
	char *p = test_path("notes.db");
	FILE *f = fopen(p, "w");

	for (int i = 0; i < 200; i++)
		fprintf(f, "this is not a database, line %d\n", i);
	fclose(f);
	expect_refused_untouched(p, STORE_ENOTDB, "not an SQLite database");
	free(p);
}

TEST(store_refuses_an_empty_file_and_leaves_it_untouched)
{
	char *p = test_path("empty.db");
	FILE *f = fopen(p, "w");
	struct store_err err;
	struct store st;

	fclose(f);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), STORE_ENOTDB);
	CHECK(strstr(err.text, "empty file") != NULL);
	CHECK_EQ_INT(store_init(p, NULL, &err), STORE_ENOTDB);
	free(p);
}

TEST(store_refuses_a_foreign_sqlite_database_and_leaves_it_untouched)
{
	char *p = test_path("other.db");

	test_sql(p, "CREATE TABLE runs (id TEXT); INSERT INTO runs VALUES ('x');");
	expect_refused_untouched(p, STORE_ENOTDB, "not an autopack database (no meta table)");
	free(p);
}

TEST(store_refuses_a_partial_schema_naming_the_missing_tables)
{
	struct store_err err;
	struct store st;
	char *p = test_path("a.db");

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	test_sql(p, "DROP TABLE drain_session_results; DROP TABLE token_estimation_v2_events;");
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), STORE_EPARTIAL);
	CHECK(strstr(err.text, "missing 2 tables") != NULL);
	CHECK(strstr(err.text, "token_estimation_v2_events, drain_session_results") != NULL);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), STORE_EPARTIAL);
	free(p);
}

TEST(store_refuses_a_newer_schema)
{
	struct store_err err;
	struct store st;
	char *p = test_path("a.db");

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	test_sql(p, "UPDATE meta SET schema_version = 99");
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), STORE_EVERSION);
	CHECK(strstr(err.text, "schema version 99 is newer") != NULL);
	free(p);
}

TEST(store_init_failure_removes_the_half_made_file)
{
	struct store_err err;
	char *p = test_path("a.db");

	CHECK_EQ_INT(store_init_sql(p, SCHEMA_V1_SQL SCHEMA_V2_SQL "CREATE TABLE runs (x);",
	                 SCHEMA_VERSION, NULL, &err),
	    STORE_EIO);
	CHECK(strstr(err.text, "creating the schema") != NULL);
	CHECK(strstr(err.text, "nothing was created") != NULL);
	CHECK(access(p, F_OK) != 0);
	free(p);
}

TEST(store_read_only_open_of_an_older_schema_changes_nothing)
{
	struct store_err err;
	struct store st;
	char *p = test_path("old.db"), *b1, *b2;
	size_t n1, n2;

	CHECK_EQ_INT(store_init_sql(p, SCHEMA_V1_SQL, 1, NULL, &err), 0);
	b1 = test_slurp(p, &n1);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), 0);
	CHECK_EQ_INT(st.schema_version, 1);
	CHECK_EQ_INT(store_migrate(&st, &err), STORE_EINVAL);
	store_close(&st);
	b2 = test_slurp(p, &n2);
	CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
	free(b1);
	free(b2);
	free(p);
}

TEST(store_write_open_migrates_an_older_schema_after_a_backup)
{
	struct store_err err;
	struct store st, bk;
	char uuid[37];
	char *p = test_path("old.db"), *backup;
	int64_t n = -1;

	CHECK_EQ_INT(store_init_sql(p, SCHEMA_V1_SQL, 1, uuid, &err), 0);
	test_sql(p, "INSERT INTO runs (id, created_at, updated_at) VALUES ('r1', 'a', 'b')");
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), 0);
	CHECK_EQ_INT(st.migrated_from, 1);
	CHECK_EQ_INT(st.schema_version, SCHEMA_VERSION);
	CHECK(st.backup_path != NULL);
	CHECK(strncmp(st.backup_path, p, strlen(p)) == 0);
	CHECK(strncmp(st.backup_path + strlen(p), ".v1-", 4) == 0);
	CHECK(strcmp(st.backup_path + strlen(st.backup_path) - 4, ".bak") == 0);
	CHECK(store_query_int(st.db, "SELECT count(*) FROM estimator_coefficients", &n, &err) == 0);
	backup = xstrdup(st.backup_path);
	store_close(&st);

	CHECK_EQ_INT(store_open(&bk, backup, "u", STORE_READ, &err), 0);
	CHECK_EQ_INT(bk.schema_version, 1);
	CHECK_EQ_STR(bk.uuid, uuid);
	CHECK(store_query_int(bk.db, "SELECT count(*) FROM runs", &n, &err) == 0);
	CHECK_EQ_INT(n, 1);
	CHECK(store_query_int(bk.db, "SELECT count(*) FROM estimator_coefficients", &n, NULL) != 0);
	store_close(&bk);

	CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), 0);
	CHECK_EQ_INT(st.schema_version, SCHEMA_VERSION);
	CHECK_EQ_INT(st.migrated_from, 0);
	CHECK_EQ_STR(st.uuid, uuid);
	store_close(&st);
	free(backup);
	free(p);
}

TEST(store_migration_steps_cover_every_version)
{
	int v = 1;

	for (size_t i = 0; i < store_n_migrations; i++) {
		CHECK_EQ_INT(store_migrations[i].from, v);
		v++;
	}
	CHECK_EQ_INT(v, SCHEMA_VERSION);
}

TEST(store_identity_changed_notices_replacement_and_removal)
{
	struct store_err err;
	struct store st;
	char *a = test_path("a.db"), *b = test_path("b.db");

	CHECK_EQ_INT(store_init(a, NULL, &err), 0);
	CHECK_EQ_INT(store_init(b, NULL, &err), 0);
	CHECK_EQ_INT(store_open(&st, a, "u", STORE_WRITE, &err), 0);
	CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
	CHECK(rename(b, a) == 0);
	CHECK_EQ_INT(store_identity_changed(&st, &err), STORE_EMOVED);
	CHECK(strstr(err.text, "replaced") != NULL);
	CHECK(unlink(a) == 0);
	CHECK_EQ_INT(store_identity_changed(&st, &err), STORE_EMOVED);
	CHECK(strstr(err.text, "removed") != NULL);
	store_close(&st);
	free(a);
	free(b);
}

TEST(store_lock_second_taker_is_refused_with_the_holder_pid)
{
	struct store_err err;
	char *p = test_path("a.db");
	pid_t holder = -1;
	int fd, fd2;

	CHECK_EQ_INT(store_lock_acquire(p, &holder), STORE_ENOENT);
	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	fd = store_lock_acquire(p, &holder);
	CHECK(fd >= 0);
	CHECK_EQ_INT(store_lock_acquire(p, &holder), STORE_EBUSY);
	CHECK_EQ_INT(holder, getpid());
	store_lock_release(fd);
	fd2 = store_lock_acquire(p, &holder);
	CHECK(fd2 >= 0);
	store_lock_release(fd2);
	free(p);
}

TEST(store_lock_belongs_to_the_file_not_the_name)
{
	struct store_err err;
	char *p = test_path("a.db"), *hard = test_path("hard.db"), *side = test_path("a.db.lock");
	pid_t holder = 0;
	int fd;

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	fd = store_lock_acquire(p, &holder);
	CHECK(fd >= 0);
	CHECK(link(p, hard) == 0);
	CHECK_EQ_INT(store_lock_acquire(hard, &holder), STORE_EBUSY);
	CHECK_EQ_INT(holder, getpid());
	CHECK(access(side, F_OK) != 0); /* no side file to remove */
	store_lock_release(fd);
	free(p);
	free(hard);
	free(side);
}

TEST(store_open_refuses_a_file_with_two_names_naming_the_count_and_the_fix)
{
	struct store_err err;
	struct store st;
	char *p = test_path("a.db"), *hard = test_path("hard.db");

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	CHECK(link(p, hard) == 0);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), STORE_ELINKED);
	CHECK(strstr(err.text, "has 2 names") != NULL);
	CHECK(strstr(err.text, "-samefile") != NULL);
	CHECK_EQ_INT(store_open(&st, hard, "u", STORE_WRITE, &err), STORE_ELINKED);
	CHECK(unlink(hard) == 0);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), 0);
	store_close(&st);
	free(p);
	free(hard);
}

TEST(store_identity_changed_notices_a_removed_or_replaced_wal_and_saves_the_commits)
{
	static const char *const sides[] = { "-wal", "-shm" };

	for (size_t i = 0; i < ARRAY_SIZE(sides); i++) {
		struct store_err err;
		struct store st;
		char *p = test_path(i == 0 ? "w.db" : "s.db");
		char *side = xasprintf("%s%s", p, sides[i]);

		CHECK_EQ_INT(store_init(p, NULL, &err), 0);
		CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), 0);
		CHECK(access(side, F_OK) == 0);
		CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
		CHECK(db_exec(st.db,
		          "INSERT INTO runs (id, created_at, updated_at) VALUES ('r', 'x', "
		          "'x')") == DB_OK);
		CHECK(unlink(side) == 0);
		CHECK_EQ_INT(store_identity_changed(&st, &err), STORE_EMOVED);
		CHECK(strstr(err.text, "was removed") != NULL);
		CHECK(strstr(err.text, sides[i]) != NULL);
		CHECK(strstr(err.text, "checkpointed") != NULL);
		CHECK(st.lost);
		store_close(&st);
		/* The committed row reached the database file itself. */
		CHECK_EQ_INT(test_count(p, "SELECT count(*) FROM runs"), 1);
		free(side);
		free(p);
	}
}

TEST(store_identity_changed_notices_a_write_by_another_program_and_writes_nothing_more)
{
	struct store_err err;
	struct store st;
	struct stat before, after;
	struct timespec t[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	char *p = test_path("t.db"), *wal = xasprintf("%s-wal", p);

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), 0);
	CHECK(st.ckpt != NULL);
	/* A mode change moves only the ctime. */
	CHECK(chmod(p, 0640) == 0);
	CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
	CHECK(db_exec(st.db,
	          "INSERT INTO runs (id, created_at, updated_at) VALUES ('r', 'x', 'x')") == DB_OK);
	CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
	/* A touch moves the mtime: a write the handle did not make. */
	CHECK(stat(p, &before) == 0);
	t[1].tv_sec = before.st_mtim.tv_sec + 1;
	CHECK(utimensat(AT_FDCWD, p, t, 0) == 0);
	/* Given 2 s to show the trace of another connection's checkpoint, it shows none. */
	CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
	CHECK(!st.lost);
	usleep(2100 * 1000);
	CHECK_EQ_INT(store_identity_changed(&st, &err), STORE_EMOVED);
	CHECK(strstr(err.text, "written by another program") != NULL);
	CHECK(strstr(err.text, "kept as it is") != NULL);
	CHECK(st.lost);
	CHECK(stat(p, &before) == 0);
	store_close(&st);
	/* Closing checkpointed nothing into the file; the commit waits in the kept log. */
	CHECK(stat(p, &after) == 0);
	CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
	    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	CHECK(access(wal, F_OK) == 0);
	CHECK_EQ_INT(test_count(p, "SELECT count(*) FROM runs"), 1);
	free(wal);
	free(p);
}

TEST(store_identity_changed_takes_another_connections_checkpoint_as_its_own)
{
	struct store_err err;
	struct store st;
	struct stat before, after;
	char *p = test_path("t.db");
	const char *how[] = { "PRAGMA wal_checkpoint(PASSIVE)", "PRAGMA wal_checkpoint(RESTART)",
		"PRAGMA wal_checkpoint(TRUNCATE)" };

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), 0);
	CHECK(st.ckpt != NULL);
	for (int i = 0; i < 3; i++) {
		char *q = xasprintf("INSERT INTO runs (id, created_at, updated_at) VALUES "
		                    "('r%d', 'x', 'x')",
		    i);
		CHECK(db_exec(st.db, q) == DB_OK);
		free(q);
		CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
		CHECK(stat(p, &before) == 0);
		usleep(20 * 1000); /* past the file system's clock tick */
		test_sql(p, how[i]);
		CHECK(stat(p, &after) == 0);
		CHECK(after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
		    after.st_mtim.tv_nsec != before.st_mtim.tv_nsec);
		CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
		CHECK(!st.lost);
		CHECK(st.ckpt->foreign_checkpoints == (uint64_t)i + 1);
	}
	/* A touch after them is still a write. */
	CHECK(utimensat(AT_FDCWD, p, NULL, 0) == 0);
	CHECK_EQ_INT(store_identity_changed(&st, &err), 0);
	usleep(2100 * 1000);
	CHECK_EQ_INT(store_identity_changed(&st, &err), STORE_EMOVED);
	CHECK(strstr(err.text, "written by another program") != NULL);
	store_close(&st);
	free(p);
}

TEST(store_open_refuses_a_missing_column_naming_it)
{
	struct store_err err;
	struct store st;
	char *p = test_path("a.db");

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	test_sql(p, "ALTER TABLE attempts DROP COLUMN fingerprint");
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), STORE_EPARTIAL);
	CHECK(strstr(err.text, "missing 1 column of schema version") != NULL);
	CHECK(strstr(err.text, "attempts.fingerprint") != NULL);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), STORE_EPARTIAL);
	free(p);
}

TEST(store_open_refuses_a_uuid_that_is_not_canonical)
{
	static const char *const bad[] = { "../rt/c5/victim", "",
		"B1A14DBA-4A29-45AB-A1CA-8611D78A8D10", "b1a14dba-4a29-45ab-a1ca-8611d78a8d1",
		"b1a14dba-4a29-45ab-a1ca-8611d78a8d10x", "b1a14dba_4a29-45ab-a1ca-8611d78a8d10" };
	struct store_err err;
	struct store st;
	char *p = test_path("a.db");

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *q = db_sqlf("UPDATE meta SET db_uuid = %Q", bad[i]);

		test_sql(p, q);
		free(q);
		CHECK_EQ_INT(store_open(&st, p, "u", STORE_READ, &err), STORE_EIDENT);
		CHECK(strstr(err.text, "not a canonical UUID") != NULL);
		CHECK(strstr(err.text, "db reidentify") != NULL);
	}
	CHECK(store_uuid_valid("b1a14dba-4a29-45ab-a1ca-8611d78a8d10"));
	free(p);
}

TEST(store_banner_names_the_database_and_its_counts)
{
	struct store_err err;
	struct store st;
	char *p = test_path("a.db"), *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	CHECK_EQ_INT(store_open(&st, p, "sqlite:////x/a.db", STORE_READ, &err), 0);
	store_banner(&st, out);
	fclose(out);
	CHECK(strstr(text, "url:            sqlite:////x/a.db\n") != NULL);
	CHECK(strstr(text, st.uuid) != NULL);
	CHECK(strstr(text, "schema version: 5\n") != NULL);
	CHECK(strstr(text, "device:inode:") != NULL);
	CHECK(strstr(text,
	          "runs 0, tiers 0, phases 0, attempts 0, llm_usage_events 0, "
	          "token_estimation_v2_events 0\n") != NULL);
	store_close(&st);
	free(text);
	free(p);
}

/* The one-line banner holds each field of the banner, named as the banner names it, with
 * the same value: "size N bytes", "device:inode D:I", ..., then "; rows: ...". */
TEST(store_banner_line_holds_each_field_of_the_banner)
{
	struct store_err err;
	struct store st;
	char *p = test_path("a.db"), *text = NULL, *line, *nl;
	size_t len = 0, fields = 0;
	FILE *out = open_memstream(&text, &len);

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	CHECK_EQ_INT(store_open(&st, p, "sqlite:////x/a.db", STORE_READ, &err), 0);
	store_banner(&st, out);
	fclose(out);
	line = store_banner_line(&st);
	CHECK(strncmp(line, "database sqlite:////x/a.db: file ", 33) == 0);
	for (char *l = strchr(text, '\n') + 1; (nl = strchr(l, '\n')) != NULL; l = nl + 1) {
		char *colon = strstr(l, ": "), want[512];
		const char *value = colon + 2;

		*nl = '\0';
		CHECK(colon != NULL && colon < nl);
		*colon = '\0';
		while (*value == ' ')
			value++;
		while (*l == ' ')
			l++;
		if (strcmp(l, "url") == 0)
			continue;
		snprintf(
		    want, sizeof want, strcmp(l, "rows") == 0 ? "; %s: %s" : "%s %s", l, value);
		if (strstr(line, want) == NULL) {
			fprintf(stderr, "%s: not in the line %s\n", want, line);
			CHECK(false);
		}
		fields++;
	}
	CHECK_EQ_INT(fields, 7);
	store_close(&st);
	free(line);
	free(text);
	free(p);
}

TEST(store_backup_and_init_create_files_only_their_owner_reads)
{
	struct store_err err;
	struct store st;
	struct stat sb;
	char *p = test_path("a.db"), *b = test_path("a.db.bak");
	mode_t old = umask(022);

	CHECK_EQ_INT(store_init(p, NULL, &err), 0);
	CHECK(stat(p, &sb) == 0);
	CHECK_EQ_INT(sb.st_mode & 0777, 0600);
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), 0);
	CHECK_EQ_INT(store_backup(&st, b, &err), 0);
	CHECK(stat(b, &sb) == 0);
	CHECK_EQ_INT(sb.st_mode & 0777, 0600);
	/* An existing file is never overwritten by a backup. */
	CHECK_EQ_INT(store_backup(&st, b, &err), STORE_EIO);
	store_close(&st);
	umask(old);
	free(p);
	free(b);
}

TEST(store_schema_columns_read_from_the_sql_match_what_sqlite_builds)
{
	for (int v = 1; v <= SCHEMA_VERSION; v++) {
		struct store_column *cols = calloc(STORE_SCHEMA_COLUMNS_MAX, sizeof *cols);
		size_t n = store_schema_columns(v, cols, STORE_SCHEMA_COLUMNS_MAX);
		struct store_err err;
		struct db_stmt *q;
		struct db *ref;
		size_t built = 0;

		CHECK(n > 50 && n < STORE_SCHEMA_COLUMNS_MAX);
		CHECK_EQ_INT(store_schema_ref_open(v, &ref, &err), 0);
		CHECK(
		    db_prepare(ref,
		        "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name)"
		        " AS p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite%' ORDER BY m.name, p.cid",
		        &q) == DB_OK);
		while (db_step(q) == DB_ROW) {
			bool found = false;

			for (size_t i = 0; i < n && !found; i++)
				found = strcmp(cols[i].table, db_column_text(q, 0)) == 0 &&
				    strcmp(cols[i].column, db_column_text(q, 1)) == 0;
			if (!found)
				fprintf(stderr, "version %d: %s.%s not read from the SQL\n", v,
				    db_column_text(q, 0), db_column_text(q, 1));
			CHECK(found);
			built++;
		}
		db_finalize(q);
		db_close(ref);
		CHECK_EQ_INT(built, n);
		free(cols);
	}
}
