/*
 * Adopting a database made by the Python Autopack project: its runs, tiers, phases,
 * llm_usage_events and token_estimation_v2_events tables become an autopack database in
 * place (docs/adoption.md). First a survey, reading only, finds everything the adoption
 * will do: tables, columns and indexes to add, the columns autopack must fill on every
 * insert, the values it will rewrite into the original's formats, the scopes it cannot
 * interpret and the phases without deliverables. Then, in one transaction, the schema is
 * extended, the values rewritten, the meta row written and the legacy rows the autopack
 * code cannot use as they are get the documented repairs. Every original row stays
 * readable by the Python code. An SQLite file is copied first with the backup API; on a
 * PostgreSQL server, whose DDL is transactional too, the operator takes the copy with the
 * pg_dump command the survey names. The decisions are written once; what differs
 * between the backends is in store_adopt_internal.h's struct adopt_backend.
 */
#ifndef AUTOPACK_STORE_ADOPT_H
#define AUTOPACK_STORE_ADOPT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"
#include "common/store/store_values.h"

/* A column added to an existing table. */
struct store_adopt_column {
	char *table;
	char *column;
	char *decl;   /* the declaration used: "TEXT", "TEXT NOT NULL DEFAULT 'ok'" */
	bool relaxed; /* autopack declares it NOT NULL without a default: added nullable */
};

/* An index of the autopack schema that could not be created, and why. */
struct store_adopt_skip {
	char *name;
	char *why;
};

/* NULLs in a legacy column that the autopack schema declares NOT NULL, and what they
 * became. `value` is NULL when the column has no default: the rows were left as they are. */
struct store_adopt_fill {
	char *table;
	char *column;
	int64_t rows;
	char *value;
};

/* A NOT NULL column without an SQL default in the legacy table: autopack names it in
 * every insert, with the value the original's Python models write. */
struct store_adopt_insert_col {
	char *table;
	char *column;
	char *value; /* an SQL literal, or NULL for the time of the write */
};

/* A phase adoption reports for its scope. */
struct store_adopt_phase {
	char *run_id;
	char *phase_id;
	char *state;
	char *why; /* what cannot be interpreted or sent; NULL for a phase without deliverables */
};

/* What an adoption will do (a survey) or did. */
struct store_adopt_report {
	bool done; /* false: a survey; nothing was changed */
	char uuid[37];
	char *backup_path;    /* SQLite: the copy taken first */
	char *dump_command;   /* PostgreSQL: the pg_dump command to take a copy first */
	char *workspace_base; /* the directory new run workspaces were put under */
	char **dirs_made;     /* the directories the adoption created, parents first */
	size_t n_dirs_made;
	char **tables_created;
	size_t n_tables_created;
	struct store_adopt_column *columns_added;
	size_t n_columns_added;
	char **indexes_created;
	size_t n_indexes_created;
	struct store_adopt_skip *indexes_skipped;
	size_t n_indexes_skipped;
	struct store_adopt_fill *fills;
	size_t n_fills;
	/* the legacy rows found */
	int64_t runs, tiers, phases, usage_events, v2_events;
	/* the legacy data handling (docs/adoption.md, "What adoption changes") */
	int64_t executing_requeued;  /* EXECUTING phases with no attempt, now QUEUED */
	int64_t workspaces_set;      /* runs without a workspace, given one */
	int64_t bare_scopes;         /* phases whose scope is not a JSON object, kept */
	int64_t usage_without_split; /* usage rows with NULL prompt/completion, kept */
	/* NOT NULL columns autopack fills on every insert */
	struct store_adopt_insert_col *insert_cols;
	size_t n_insert_cols;
	/* values not in the original's formats: rewritten, or left when unreadable */
	struct store_value_cols values;
	/* scopes, by how they are stored (enum store_scope_form), and those with buckets */
	int64_t scope_forms[4];
	int64_t scope_buckets;
	struct store_adopt_phase *bad_scopes; /* cannot be interpreted */
	size_t n_bad_scopes;
	struct store_adopt_phase *no_deliverables; /* readable, but naming no deliverable */
	size_t n_no_deliverables;
	/* breaking a limit of the job message or a deliverable rule (common/joblimits.h) */
	struct store_adopt_phase *unsendable;
	size_t n_unsendable;
	/* whose run or tier has no row (foreign keys were off): no drain dispatches them */
	struct store_adopt_phase *orphans;
	size_t n_orphans;
};

/* Check, reading only, that the database at `where` (a canonical SQLite path or
 * PostgreSQL URL) can be adopted: it exists, has no meta table, and holds the original's
 * runs, tiers and phases with their key columns (and, if present, usage and estimation
 * tables of the original's shape). An autopack database is reported with STORE_EEXIST.
 * Otherwise STORE_ENOENT, STORE_ENOTDB (naming the table and its missing columns) or
 * STORE_EIO; nothing is ever written. */
int store_adopt_check(const char *where, struct store_err *err);

/* Survey the legacy database at `where`, reading only: check it (as store_adopt_check)
 * and fill `rep` (done = false) with everything store_adopt would do, and, on
 * PostgreSQL, the pg_dump command to run first. Nothing is written. `rep` must be freed
 * with store_adopt_report_free. */
int store_adopt_survey(const char *where, const char *workspace_base,
    struct store_adopt_report *rep, struct store_err *err);

/* Adopt the legacy database at `where`: check it (as store_adopt_check) and migrate it in
 * one transaction (on SQLite BEGIN IMMEDIATE, after copying it with the sqlite3 backup
 * API to <path>.pre-adopt-<UTC stamp>.bak; on PostgreSQL one transaction holding the
 * offline writers' lock, after which the server's identity is recorded in meta as db
 * init records it). Runs without a workspace get <workspace_base>/<run id> (created;
 * `workspace_base` NULL means <directory of path>/autopack-workspace on SQLite and
 * <current directory>/autopack-workspace on PostgreSQL). The caller holds the database
 * lock. On failure nothing in the database has changed; a backup already taken is named
 * in the message. `rep` is filled on success and must be freed with
 * store_adopt_report_free. */
int store_adopt(const char *where, const char *workspace_base, struct store_adopt_report *rep,
    struct store_err *err);

/* The pg_dump command that copies the PostgreSQL database of canonical URL `url` (never
 * holding a password) into <database>.pre-adopt-<UTC stamp>.dump in the current
 * directory, quoted for a POSIX shell (heap). */
char *store_pg_dump_command(const char *url);

/* Free what store_adopt put in `rep`. */
void store_adopt_report_free(struct store_adopt_report *rep);

#endif
