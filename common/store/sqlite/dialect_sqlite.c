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
	.table_columns = "SELECT name FROM pragma_table_info(?1)",
	.unique_index_exists =
	    "SELECT 1 FROM pragma_index_list(?2) WHERE name = ?1 COLLATE NOCASE AND \"unique\"",
};
