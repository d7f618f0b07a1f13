/* The SQLite dialect of the store's SQL (common/store/dialect.h). */
#ifndef AUTOPACK_STORE_DIALECT_SQLITE_H
#define AUTOPACK_STORE_DIALECT_SQLITE_H

#include "common/store/dialect.h"

extern const struct db_dialect dialect_sqlite;

#endif
