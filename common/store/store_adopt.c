/* Adopting a Python-Autopack database: check, back up, then one transaction. */
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/schema.sql.h"
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <assert.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ADOPT_WORKSPACE_DIR "autopack-workspace"

/* Free a string list. */
static void adopt_list_free(char **items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

/* Free the schema changes and NULL fills of a report: the survey lists what the
 * transaction then records again as done. */
static void adopt_report_free_changes(struct store_adopt_report *rep)
{
	adopt_list_free(rep->tables_created, rep->n_tables_created);
	adopt_list_free(rep->indexes_created, rep->n_indexes_created);
	for (size_t i = 0; i < rep->n_columns_added; i++) {
		free(rep->columns_added[i].table);
		free(rep->columns_added[i].column);
		free(rep->columns_added[i].decl);
	}
	free(rep->columns_added);
	for (size_t i = 0; i < rep->n_indexes_skipped; i++) {
		free(rep->indexes_skipped[i].name);
		free(rep->indexes_skipped[i].why);
	}
	free(rep->indexes_skipped);
	for (size_t i = 0; i < rep->n_fills; i++) {
		free(rep->fills[i].table);
		free(rep->fills[i].column);
		free(rep->fills[i].value);
	}
	free(rep->fills);
	rep->tables_created = rep->indexes_created = NULL;
	rep->n_tables_created = rep->n_indexes_created = 0;
	rep->columns_added = NULL;
	rep->n_columns_added = 0;
	rep->indexes_skipped = NULL;
	rep->n_indexes_skipped = 0;
	rep->fills = NULL;
	rep->n_fills = 0;
}

/* Free a list of reported phases. */
static void adopt_phases_free(struct store_adopt_phase *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].run_id);
		free(p[i].phase_id);
		free(p[i].state);
		free(p[i].why);
	}
	free(p);
}

/* Free what an adoption recorded. */
void store_adopt_report_free(struct store_adopt_report *rep)
{
	adopt_report_free_changes(rep);
	for (size_t i = 0; i < rep->n_insert_cols; i++) {
		free(rep->insert_cols[i].table);
		free(rep->insert_cols[i].column);
		free(rep->insert_cols[i].value);
	}
	free(rep->insert_cols);
	store_value_cols_free(&rep->values);
	adopt_phases_free(rep->bad_scopes, rep->n_bad_scopes);
	adopt_phases_free(rep->no_deliverables, rep->n_no_deliverables);
	adopt_phases_free(rep->unsendable, rep->n_unsendable);
	free(rep->backup_path);
	free(rep->workspace_base);
	memset(rep, 0, sizeof *rep);
}

/* Copy the committed database to `dest` with the backup API, over a second, read-only
 * connection: the caller's connection holds the write lock, so nothing changes it
 * meanwhile, and what is copied is exactly what the transaction starts from. */
static int adopt_backup(const char *path, const char *dest, struct store_err *err)
{
	struct store src = { .path = (char *)path };
	int rc;

#ifdef AUTOPACK_MUTANT_adopt_without_backup
	return 0;
#endif
	rc = store_connect(path, SQLITE_OPEN_READONLY, " for the backup", &src.db, err);
	if (rc != 0)
		return rc;
	rc = store_backup(&src, dest, err);
	db_close(src.db);
	return rc;
}

/* Insert the meta row: a new uuid, the adoption time, who adopted it. */
static int adopt_meta_insert(struct db *db, const char *now, char uuid[37], struct store_err *err)
{
	char *who, *by;
	int rc = store_uuid_v4(uuid, err);

	if (rc != 0)
		return rc;
	who = store_created_by();
	by = xasprintf("%s, adopted from a Python Autopack database", who);
	rc = store_meta_insert(db, uuid, now, by, SCHEMA_VERSION, err);
	free(who);
	free(by);
	return rc;
}

/* Return <directory of path>/autopack-workspace. */
static char *adopt_default_workspace(const char *path)
{
	char *copy = xstrdup(path);
	char *dir = xasprintf("%s/%s", dirname(copy), ADOPT_WORKSPACE_DIR);

	free(copy);
	return dir;
}

/* Survey: what the adoption will do, reading only. */
static int adopt_plan(struct db *db, struct db *ref, const char *now,
    struct store_adopt_report *rep, struct store_err *err)
{
	int rc = adopt_survey(db, rep, err);

	if (rc == 0)
		rc = adopt_schema_extend(db, ref, rep, false, err);
	if (rc == 0)
		rc = adopt_repair(db, ref, rep->workspace_base, now, rep, false, err);
	return rc;
}

/* Run the adoption steps inside the open transaction: the survey, the backup, then the
 * changes. */
static int adopt_steps(
    struct db *db, const char *path, struct store_adopt_report *rep, struct store_err *err)
{
	struct db *ref = NULL;
	char now[32], uuid[37];
	int version, rc;

	rc = adopt_shape_check(db, path, err);
	if (rc != 0)
		return rc;
	time_db_now(now);
	rc = store_schema_ref_open(SCHEMA_VERSION, &ref, err);
	if (rc == 0)
		rc = adopt_plan(db, ref, now, rep, err);
	if (rc == 0) {
		rep->backup_path = store_backup_name(path, "pre-adopt");
		rc = adopt_backup(path, rep->backup_path, err);
		if (rc != 0) {
			free(rep->backup_path);
			rep->backup_path = NULL;
		}
	}
	if (rc == 0) {
		adopt_report_free_changes(rep);
		rc = adopt_schema_extend(db, ref, rep, true, err);
	}
	if (rc == 0)
		rc = store_values_rewrite(db, &rep->values, err);
	if (rc == 0)
		rc = adopt_repair(db, ref, rep->workspace_base, now, rep, true, err);
	if (rc == 0)
		rc = adopt_meta_insert(db, now, rep->uuid, err);
	if (rc == 0)
		rc = store_schema_check(db, path, &version, uuid, err);
	db_close(ref);
	rep->done = rc == 0;
	return rc;
}

/* Survey a legacy database, reading only. */
int store_adopt_survey(const char *path, const char *workspace_base, struct store_adopt_report *rep,
    struct store_err *err)
{
	struct db *db = NULL, *ref = NULL;
	char now[32];
	int rc;

	memset(rep, 0, sizeof *rep);
	rc = store_adopt_check(path, err);
	if (rc != 0)
		return rc;
	rc = store_connect(path, SQLITE_OPEN_READONLY, "", &db, err);
	if (rc != 0)
		return rc;
	rep->workspace_base = workspace_base != NULL ? xstrdup(workspace_base) :
	                                               adopt_default_workspace(path);
	time_db_now(now);
	rc = store_exec(db, "BEGIN", "reading the database", err);
	if (rc == 0)
		rc = store_schema_ref_open(SCHEMA_VERSION, &ref, err);
	if (rc == 0)
		rc = adopt_plan(db, ref, now, rep, err);
	db_close(ref);
	db_rollback(db);
	db_close(db);
	if (rc != 0)
		store_adopt_report_free(rep);
	return rc;
}

/* Adopt a legacy database: check, back up, migrate in one transaction. */
int store_adopt(const char *path, const char *workspace_base, struct store_adopt_report *rep,
    struct store_err *err)
{
	struct db *db = NULL;
	char *msg;
	int rc;

	assert(path != NULL && path[0] == '/');
	memset(rep, 0, sizeof *rep);
	rc = store_adopt_check(path, err);
	if (rc != 0)
		return rc;
	rc = store_connect(path, SQLITE_OPEN_READWRITE, " for writing", &db, err);
	if (rc != 0)
		return rc;
	rep->workspace_base = workspace_base != NULL ? xstrdup(workspace_base) :
	                                               adopt_default_workspace(path);
	rc = store_begin(db, "starting the adoption", err);
	if (rc == 0)
		rc = adopt_steps(db, path, rep, err);
	if (rc == 0)
		rc = store_commit(db, "committing the adoption", err);
	if (rc != 0)
		db_rollback(db);
	db_close(db);
	if (rc != 0) {
		if (rep->backup_path != NULL) {
			msg = xstrdup(err != NULL ? err->text : "");
			store_fail(err, rc,
			    "%s: adoption failed: %s; the database is unchanged (a "
			    "copy taken before is at %s)",
			    path, msg, rep->backup_path);
			free(msg);
		}
		store_adopt_report_free(rep);
	}
	return rc;
}
