/* The PostgreSQL dialect of the store's SQL (common/store/dialect.h). */
#ifndef AUTOPACK_STORE_DIALECT_PG_H
#define AUTOPACK_STORE_DIALECT_PG_H

#include "common/store/dialect.h"

extern const struct db_dialect dialect_pg;

#endif
