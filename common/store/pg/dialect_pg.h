/* The PostgreSQL dialect of the store's SQL (common/store/dialect.h). */
#ifndef AUTOPACK_STORE_DIALECT_PG_H
#define AUTOPACK_STORE_DIALECT_PG_H

#include "common/store/dialect.h"

extern const struct db_dialect dialect_pg;

/* A regular expression, as an SQL literal, that a text matches when JSON writes it
 * otherwise than as it is (a '"', a '\\' or a control character, written escaped): a
 * search for the text itself in a JSON document may then miss it. */
#define DIALECT_PG_JSON_ESCAPED "'[[:cntrl:]\"\\\\]'"

#endif
