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
	.unique_index_exists = "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
	                       " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON"
	                       " n.oid = c.relnamespace WHERE n.nspname = current_schema() AND"
	                       " c.relname = lower(CAST(?1 AS TEXT)) AND t.relname ="
	                       " lower(CAST(?2 AS TEXT)) AND i.indisunique",
};
