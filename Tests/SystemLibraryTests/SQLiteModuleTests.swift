// The CSQLite3 module map compiles and links: an in-memory database through prepare, bind, step and column.

import CSQLite3
import Testing

@Suite("CSQLite3")
struct SQLiteModuleTests {
    @Test("the linked SQLite is 3.31 or newer")
    func libraryVersion() {
        #expect(sqlite3_libversion_number() >= 3_031_000)
        #expect(String(cString: sqlite3_libversion()).hasPrefix("3."))
    }

    @Test("SELECT 40 + 2 and a bound text read back from an in-memory database")
    func inMemoryQuery() throws {
        var db: OpaquePointer?
        let opened = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil)
        defer { #expect(sqlite3_close(db) == SQLITE_OK) }
        try #require(opened == SQLITE_OK && db != nil)

        var statement: OpaquePointer?
        try #require(sqlite3_prepare_v2(db, "SELECT 40 + 2", -1, &statement, nil) == SQLITE_OK)
        #expect(sqlite3_step(statement) == SQLITE_ROW)
        #expect(sqlite3_column_count(statement) == 1)
        #expect(sqlite3_column_int(statement, 0) == 42)
        #expect(sqlite3_step(statement) == SQLITE_DONE)
        #expect(sqlite3_finalize(statement) == SQLITE_OK)

        // The shim's SQLITE_TRANSIENT makes SQLite copy the text, so the Swift string may go away.
        let pair = "gpu-a001/0 → gpu-b007/0"
        try #require(sqlite3_prepare_v2(db, "SELECT ?1, length(?1)", -1, &statement, nil) == SQLITE_OK)
        defer { sqlite3_finalize(statement) }
        #expect(sqlite3_bind_text(statement, 1, pair, -1, faultline_sqlite_transient()) == SQLITE_OK)
        #expect(sqlite3_step(statement) == SQLITE_ROW)
        let text = try #require(sqlite3_column_text(statement, 0))
        #expect(String(cString: text) == pair)
        #expect(sqlite3_column_bytes(statement, 0) == Int32(pair.utf8.count))
        #expect(sqlite3_column_int(statement, 1) == Int32(pair.count), "length() counts characters")
    }
}
