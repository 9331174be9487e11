// The SQLite C API as Swift sees it, plus what Swift cannot import directly.
#ifndef FAULTLINE_CSQLITE3_SHIM_H
#define FAULTLINE_CSQLITE3_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro ((sqlite3_destructor_type)-1) that Swift cannot import.
static inline sqlite3_destructor_type faultline_sqlite_transient(void) {
    return SQLITE_TRANSIENT;
}

#endif
