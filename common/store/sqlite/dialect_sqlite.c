/* The SQLite dialect of the store's SQL. */
#include "common/store/sqlite/dialect_sqlite.h"

const struct db_dialect dialect_sqlite = {
	.name = "SQLite",
	.false_literal = "0",
	.sync_full = "PRAGMA synchronous = FULL",
	.sync_normal = "PRAGMA synchronous = NORMAL",
	.session_order = "s.rowid",
	.table_exists =
	    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
	.view_exists =
	    "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?1 COLLATE NOCASE",
	.table_columns = "SELECT name FROM pragma_table_info(?1)",
	.unique_index_exists =
	    "SELECT 1 FROM pragma_index_list(?2) WHERE name = ?1 COLLATE NOCASE AND \"unique\"",
	.column_info = "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)",
	.object_exists = "SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
	.unique_pair_exists =
	    "SELECT 1 FROM pragma_index_list(?1) il WHERE il.\"unique\" = 1 AND il.partial = 0 "
	    "AND (SELECT count(*) FROM pragma_index_info(il.name)) = 2 "
	    "AND (SELECT count(*) FROM pragma_index_info(il.name) ii "
	    "     WHERE ii.name IN (?2, ?3)) = 2",
	.key_assigned =
	    "SELECT coalesce((SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1 AND "
	    "(SELECT pk FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE) = 1 AND NOT "
	    "EXISTS (SELECT 1 FROM pragma_index_list(?1) WHERE origin = 'pk'), 0), "
	    "coalesce((SELECT wr FROM pragma_table_list(?1) WHERE schema = 'main'), 0), "
	    "(SELECT type FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE) "
	    "FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
	.column_numeric =
	    "SELECT CASE WHEN upper(type) LIKE '%INT%' OR NOT (upper(type) LIKE '%CHAR%'"
	    " OR upper(type) LIKE '%CLOB%' OR upper(type) LIKE '%TEXT%') THEN 1 ELSE 0 END, type"
	    " FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE",
	.release_run =
	    "UPDATE drain_sessions SET state_json = json_set(state_json, '$.stopped_runs',"
	    " json((SELECT json_group_array(value) FROM json_each(state_json, '$.stopped_runs')"
	    " WHERE value <> ?1)), '$.deprioritized_runs', json((SELECT json_group_array(value)"
	    " FROM json_each(state_json, '$.deprioritized_runs') WHERE value <> ?1)))"
	    " WHERE completed_at IS NULL AND json_valid(state_json) AND (EXISTS (SELECT 1 FROM"
	    " json_each(state_json, '$.stopped_runs') WHERE value = ?1) OR EXISTS (SELECT 1 FROM"
	    " json_each(state_json, '$.deprioritized_runs') WHERE value = ?1))",
};
