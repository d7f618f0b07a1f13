/* The PostgreSQL dialect of the store's SQL: the tables of the connection's current
 * schema (the first of its search_path). */
#include "common/store/pg/dialect_pg.h"

const struct db_dialect dialect_pg = {
	.name = "PostgreSQL",
	.false_literal = "FALSE",
	.sync_full = "SET synchronous_commit = on",
	.sync_normal = "SET synchronous_commit = off",
	.session_order = "s.session_id",
	.table_exists = "SELECT 1 FROM information_schema.tables WHERE table_schema ="
	                " current_schema() AND lower(table_name) = lower(CAST(?1 AS TEXT))",
	.table_columns = "SELECT column_name FROM information_schema.columns WHERE table_schema ="
	                 " current_schema() AND lower(table_name) = lower(CAST(?1 AS TEXT))",
};
