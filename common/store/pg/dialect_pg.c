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
	                " current_schema() AND lower(table_name) = lower(CAST(?1 AS TEXT))"
	                " AND table_type <> 'VIEW'",
	.view_exists = "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	               " WHERE n.nspname = current_schema() AND c.relname = lower(CAST(?1 AS"
	               " TEXT)) AND c.relkind IN ('v', 'm')",
	.table_columns = "SELECT column_name FROM information_schema.columns WHERE table_schema ="
	                 " current_schema() AND lower(table_name) = lower(CAST(?1 AS TEXT))",
	.unique_index_exists = "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
	                       " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON"
	                       " n.oid = c.relnamespace WHERE n.nspname = current_schema() AND"
	                       " c.relname = lower(CAST(?1 AS TEXT)) AND t.relname ="
	                       " lower(CAST(?2 AS TEXT)) AND i.indisunique",
	.column_info =
	    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 1"
	    " ELSE 0 END, COALESCE(pg_get_expr(d.adbin, d.adrelid), CASE WHEN a.attidentity <> ''"
	    " THEN 'identity' END), CASE WHEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid ="
	    " a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey)) THEN 1 ELSE 0 END"
	    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON"
	    " n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum ="
	    " a.attnum WHERE n.nspname = current_schema() AND c.relname = lower(CAST(?1 AS TEXT))"
	    " AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
	.object_exists = "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	                 " WHERE n.nspname = current_schema() AND c.relname = lower(CAST(?1 AS"
	                 " TEXT))",
	.unique_pair_exists =
	    "SELECT 1 FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON"
	    " n.oid = t.relnamespace WHERE n.nspname = current_schema() AND t.relname ="
	    " lower(CAST(?1 AS TEXT)) AND i.indisunique AND i.indpred IS NULL AND i.indnatts = 2"
	    " AND (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum = ANY"
	    " (i.indkey) AND a.attname IN (lower(CAST(?2 AS TEXT)), lower(CAST(?3 AS TEXT)))) = 2",
	.key_assigned =
	    "SELECT CASE WHEN a.attidentity <> '' OR d.adbin IS NOT NULL THEN 1 ELSE 0 END, 0,"
	    " format_type(a.atttypid, a.atttypmod) FROM pg_class c JOIN pg_namespace n ON n.oid ="
	    " c.relnamespace LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname ="
	    " lower(CAST(?2 AS TEXT)) AND a.attnum > 0 AND NOT a.attisdropped LEFT JOIN pg_attrdef"
	    " d ON d.adrelid = c.oid AND d.adnum = a.attnum WHERE n.nspname = current_schema()"
	    " AND c.relname = lower(CAST(?1 AS TEXT)) AND c.relkind IN ('r', 'p')",
	.column_numeric =
	    "SELECT CASE WHEN t.typcategory = 'N' THEN 1 ELSE 0 END,"
	    " format_type(a.atttypid, a.atttypmod) FROM pg_attribute a JOIN pg_class c ON"
	    " c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON"
	    " t.oid = a.atttypid WHERE n.nspname = current_schema() AND c.relname ="
	    " lower(CAST(?1 AS TEXT)) AND a.attname = lower(CAST(?2 AS TEXT)) AND a.attnum > 0"
	    " AND NOT a.attisdropped",
	.release_run =
	    "UPDATE drain_sessions SET state_json = CAST(jsonb_set(jsonb_set(CAST(state_json AS"
	    " jsonb), '{stopped_runs}', COALESCE(CAST(state_json AS jsonb) -> 'stopped_runs',"
	    " '[]') - CAST(?1 AS TEXT)), '{deprioritized_runs}', COALESCE(CAST(state_json AS"
	    " jsonb) -> 'deprioritized_runs', '[]') - CAST(?1 AS TEXT)) AS TEXT)"
	    " WHERE completed_at IS NULL AND (strpos(state_json, ?1) > 0"
	    " OR CAST(?1 AS TEXT) ~ " DIALECT_PG_JSON_ESCAPED ")"
	    " AND (CAST(state_json AS jsonb) -> 'stopped_runs' @> jsonb_build_array(?1)"
	    " OR CAST(state_json AS jsonb) -> 'deprioritized_runs' @> jsonb_build_array(?1))",
};
