/* Adopting a Python-Autopack database: check, back up, then one transaction; the same
 * steps on either backend. */
#include "common/store/dburl_pg.h"
#include "common/store/schema.sql.h"
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <assert.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
	adopt_phases_free(rep->orphans, rep->n_orphans);
	free(rep->backup_path);
	free(rep->dump_command);
	free(rep->workspace_base);
	adopt_list_free(rep->dirs_made, rep->n_dirs_made);
	memset(rep, 0, sizeof *rep);
}

/* Remove the directories a failed adoption created, children first; one that is not empty
 * (something else wrote there meanwhile) is left. */
static void adopt_dirs_remove(struct store_adopt_report *rep)
{
	for (size_t i = rep->n_dirs_made; i-- > 0;)
		rmdir(rep->dirs_made[i]);
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

/* Return the default workspace base: <directory of path>/autopack-workspace for an SQLite
 * file, <current directory>/autopack-workspace for a server's database. */
static char *adopt_default_workspace(const char *where)
{
	char *copy, *dir;

	if (dburl_is_pg(where)) {
		dir = store_path_absolute(ADOPT_WORKSPACE_DIR, NULL);
		return dir != NULL ? dir : xstrdup(ADOPT_WORKSPACE_DIR);
	}
	copy = xstrdup(where);
	dir = xasprintf("%s/%s", dirname(copy), ADOPT_WORKSPACE_DIR);
	free(copy);
	return dir;
}

/* Return the backend of a canonical SQLite path or PostgreSQL URL. */
const struct adopt_backend *adopt_backend_of(const char *where)
{
	return dburl_is_pg(where) ? &adopt_backend_pg : &adopt_backend_sqlite;
}

/* Survey: what the adoption will do, reading only. */
static int adopt_plan(const struct adopt_backend *be, struct db *db, const struct adopt_ref *ref,
    const char *now, struct store_adopt_report *rep, struct store_err *err)
{
	int rc = adopt_survey(be, db, ref, rep, err);

	if (rc == 0)
		rc = adopt_schema_extend(db, ref, rep, false, err);
	if (rc == 0)
		rc = adopt_repair(db, ref, rep->workspace_base, now, rep, false, err);
	return rc;
}

/* Run the adoption steps inside the open transaction: the survey, the backup, then the
 * changes. */
static int adopt_steps(const struct adopt_backend *be, struct db *db, const char *where,
    struct store_adopt_report *rep, struct store_err *err)
{
	struct adopt_ref ref = { 0 };
	char now[32], uuid[37];
	int version, rc;

	rc = adopt_shape_check(be, db, where, err);
	if (rc != 0)
		return rc;
	db_now(db, now);
	rc = be->ref_load(&ref, err);
	if (rc == 0)
		rc = adopt_plan(be, db, &ref, now, rep, err);
	if (rc == 0 && be->backup != NULL)
		rc = be->backup(where, rep, err);
	if (rc == 0) {
		adopt_report_free_changes(rep);
		rc = adopt_schema_extend(db, &ref, rep, true, err);
	}
	if (rc == 0)
		rc = be->values_rewrite(db, &rep->values, err);
	if (rc == 0)
		rc = adopt_repair(db, &ref, rep->workspace_base, now, rep, true, err);
	if (rc == 0)
		rc = adopt_meta_insert(db, now, rep->uuid, err);
	if (rc == 0 && be->identify != NULL)
		rc = be->identify(db, where, err);
	if (rc == 0)
		rc = store_schema_check(db, where, &version, uuid, err);
	adopt_ref_free(&ref);
	rep->done = rc == 0;
	return rc;
}

/* Start a report: the workspace base, and on PostgreSQL the pg_dump command. */
static void adopt_report_start(
    const char *where, const char *workspace_base, struct store_adopt_report *rep)
{
	memset(rep, 0, sizeof *rep);
	rep->workspace_base = workspace_base != NULL ? xstrdup(workspace_base) :
	                                               adopt_default_workspace(where);
	if (dburl_is_pg(where))
		rep->dump_command = store_pg_dump_command(where);
}

/* Survey a legacy database, reading only. */
int store_adopt_survey(const char *where, const char *workspace_base,
    struct store_adopt_report *rep, struct store_err *err)
{
	const struct adopt_backend *be = adopt_backend_of(where);
	struct adopt_ref ref = { 0 };
	struct db *db = NULL;
	char now[32];
	int rc;

	memset(rep, 0, sizeof *rep);
	rc = store_adopt_check(where, err);
	if (rc == 0)
		rc = be->connect(where, false, &db, err);
	if (rc != 0)
		return rc;
	adopt_report_start(where, workspace_base, rep);
	db_now(db, now);
	rc = store_exec(db, "BEGIN", "reading the database", err);
	if (rc == 0)
		rc = be->ref_load(&ref, err);
	if (rc == 0)
		rc = adopt_plan(be, db, &ref, now, rep, err);
	adopt_ref_free(&ref);
	db_rollback(db);
	db_close(db);
	if (rc != 0)
		store_adopt_report_free(rep);
	return rc;
}

/* Adopt a legacy database: check, back up, migrate in one transaction. */
int store_adopt(const char *where, const char *workspace_base, struct store_adopt_report *rep,
    struct store_err *err)
{
	const struct adopt_backend *be = adopt_backend_of(where);
	struct db *db = NULL;
	char *msg;
	int rc;

	assert(where != NULL && (where[0] == '/' || dburl_is_pg(where)));
	memset(rep, 0, sizeof *rep);
	rc = store_adopt_check(where, err);
	if (rc == 0)
		rc = be->connect(where, true, &db, err);
	if (rc != 0)
		return rc;
	adopt_report_start(where, workspace_base, rep);
	rc = store_begin(db, "starting the adoption", err);
#ifdef AUTOPACK_MUTANT_adopt_step_by_step
	if (rc == 0)
		rc = store_commit(db, "committing the adoption", err);
#endif
	if (rc == 0)
		rc = adopt_steps(be, db, where, rep, err);
	if (rc == 0)
		rc = store_commit(db, "committing the adoption", err);
	if (rc != 0)
		db_rollback(db);
	db_close(db);
	if (rc != 0) {
		adopt_dirs_remove(rep);
		msg = xstrdup(err != NULL ? err->text : "");
		if (rep->backup_path != NULL)
			store_fail(err, rc,
			    "%s: adoption failed: %s; the database is unchanged (a "
			    "copy taken before is at %s)",
			    where, msg, rep->backup_path);
		else if (be->backup == NULL && rc != STORE_EEXIST)
			store_fail(err, rc,
			    "%s: adoption failed: %s; the transaction was rolled back and the "
			    "database is unchanged",
			    where, msg);
		free(msg);
		store_adopt_report_free(rep);
	}
	return rc;
}
