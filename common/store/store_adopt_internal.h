/* The steps of an adoption (common/store/store_adopt*.c); nothing outside them includes this,
 * except unit tests. */
#ifndef AUTOPACK_STORE_ADOPT_INTERNAL_H
#define AUTOPACK_STORE_ADOPT_INTERNAL_H

#include "common/store/store_adopt.h"

/* Check the open connection's schema and keys, reading only: STORE_EEXIST for an
 * autopack database (uuid in the message), STORE_ENOTDB naming what does not match the
 * original's shape, 0 if it can be adopted. `path` names the file in messages. */
int adopt_shape_check(struct db *db, const char *path, struct store_err *err);

/* Add the columns of reference table `table` that db's table lacks, recording them in
 * `rep` (if not NULL). A NOT NULL column without a default cannot be added to a table
 * with rows: it is added nullable. */
int adopt_columns_add(struct db *db, struct db *ref, const char *table,
    struct store_adopt_report *rep, bool apply, struct store_err *err);

/* Inside the caller's transaction: create the tables of reference `ref` that db lacks,
 * add the missing columns, make (run_id, phase_id) unique in phases, and create the
 * reference's indexes that can be created. Records what it did in `rep`; without
 * `apply`, changes nothing and records what it would do. */
int adopt_schema_extend(struct db *db, struct db *ref, struct store_adopt_report *rep, bool apply,
    struct store_err *err);

/* Inside the caller's transaction: count the legacy rows; in runs, tiers and phases fill
 * NULLs in columns the reference declares NOT NULL (created_at/updated_at with `now`,
 * others with their default); put EXECUTING phases without an open attempt back to
 * QUEUED; give runs without a workspace one under `ws_base` (directories are created).
 * Records what it did in `rep`; without `apply`, changes nothing and counts what it
 * would do. */
int adopt_repair(struct db *db, struct db *ref, const char *ws_base, const char *now,
    struct store_adopt_report *rep, bool apply, struct store_err *err);

/* Reading only: find the NOT NULL columns without an SQL default autopack fills on every
 * insert, the values not in the original's formats, and the scopes of every phase. */
int adopt_survey(struct db *db, struct store_adopt_report *rep, struct store_err *err);

#endif
