// The SQLite connection: one owner of a `sqlite3*`, opened in WAL mode with a busy timeout, a cache
// of prepared statements, closure-scoped transactions that roll back on throw, and `DatabaseError`,
// which keeps SQLite's result code, its message, the SQL and the file.

import CSQLite3

/// An SQLite failure: the result code, SQLite's message, the call that failed, and the SQL and file
/// it concerned. Matchable by code: `catch let error as DatabaseError where error.resultCode == SQLITE_BUSY`.
public struct DatabaseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The primary result code (`SQLITE_CONSTRAINT`, `SQLITE_NOTADB`, …).
    public var resultCode: Int32 { extendedResultCode & 0xFF }
    /// The extended result code (`SQLITE_CONSTRAINT_UNIQUE`, …), as SQLite reported it.
    public let extendedResultCode: Int32
    /// SQLite's own message (`sqlite3_errmsg`), or ours when no connection could say.
    public let message: String
    /// The SQL statement being prepared or run, if any.
    public let sql: String?
    /// The C function that returned the error, e.g. `sqlite3_step`.
    public let function: String
    /// The database file.
    public let path: String

    public init(
        extendedResultCode: Int32, message: String, sql: String? = nil, function: String, path: String
    ) {
        self.extendedResultCode = extendedResultCode
        self.message = message
        self.sql = sql
        self.function = function
        self.path = path
    }

    /// The primary code's name, like `SQLITE_CONSTRAINT`.
    public var codeName: String {
        let names: [Int32: String] = [
            SQLITE_ERROR: "SQLITE_ERROR", SQLITE_INTERNAL: "SQLITE_INTERNAL", SQLITE_PERM: "SQLITE_PERM",
            SQLITE_ABORT: "SQLITE_ABORT", SQLITE_BUSY: "SQLITE_BUSY", SQLITE_LOCKED: "SQLITE_LOCKED",
            SQLITE_NOMEM: "SQLITE_NOMEM", SQLITE_READONLY: "SQLITE_READONLY",
            SQLITE_INTERRUPT: "SQLITE_INTERRUPT", SQLITE_IOERR: "SQLITE_IOERR",
            SQLITE_CORRUPT: "SQLITE_CORRUPT",
            SQLITE_NOTFOUND: "SQLITE_NOTFOUND", SQLITE_FULL: "SQLITE_FULL",
            SQLITE_CANTOPEN: "SQLITE_CANTOPEN",
            SQLITE_PROTOCOL: "SQLITE_PROTOCOL", SQLITE_SCHEMA: "SQLITE_SCHEMA",
            SQLITE_TOOBIG: "SQLITE_TOOBIG",
            SQLITE_CONSTRAINT: "SQLITE_CONSTRAINT", SQLITE_MISMATCH: "SQLITE_MISMATCH",
            SQLITE_MISUSE: "SQLITE_MISUSE", SQLITE_RANGE: "SQLITE_RANGE", SQLITE_NOTADB: "SQLITE_NOTADB",
        ]
        return names[resultCode] ?? "SQLite result \(resultCode)"
    }

    /// The error of the call on `connection` that just returned `code`.
    init(connection: OpaquePointer, code: Int32, function: String, sql: String?, path: String) {
        let extended = sqlite3_extended_errcode(connection)
        self.init(
            extendedResultCode: extended & 0xFF == code & 0xFF ? extended : code,
            message: String(cString: sqlite3_errmsg(connection)), sql: sql, function: function, path: path)
    }

    public var description: String {
        var text = "\(path): \(function) failed: \(message) (\(codeName), code \(extendedResultCode))"
        if resultCode == SQLITE_NOTADB {
            text = "\(path) is not an SQLite database (\(function): \(message))"
        } else if resultCode == SQLITE_CORRUPT {
            text =
                "\(path) is damaged: \(function) failed: \(message) (\(codeName), code \(extendedResultCode))"
        }
        if let sql { text += "; SQL: \(sql)" }
        return text
    }
}

/// One connection to one SQLite file. Owns its `sqlite3*` and closes it in `deinit`.
///
/// Not `Sendable` and not thread-safe by design: one owner uses it from one thread or serial queue
/// (the correlator service will own one `Store` on one serial queue).
public final class Database {
    /// How to open the file.
    public enum OpenMode: Sendable {
        /// Create the file if it is missing.
        case create
        /// The file must exist.
        case existing
        /// The file must exist and is only read (replays, explain, bundles being checked): nothing
        /// is written to it, and its journal mode is left as it is.
        case readOnly
    }

    /// The size a WAL file is cut back to after a checkpoint, when a burst made it grow beyond.
    public static let walSizeLimitBytes = 64 << 20

    /// The file, as given.
    public let path: String
    let handle: OpaquePointer
    private var statementCache: [String: Statement] = [:]
    private var transactionDepth = 0

    /// Opens `path` in WAL mode (`synchronous=NORMAL`) with a busy timeout and foreign keys on.
    /// Fails with the file named when it cannot be opened or is not an SQLite database.
    public init(
        path: String, mode: OpenMode = .create, busyTimeoutMilliseconds: Int32 = 5_000
    ) throws(DatabaseError) {
        self.path = path
        var connection: OpaquePointer?
        var flags = (mode == .readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX
        if mode == .create { flags |= SQLITE_OPEN_CREATE }
        let code = sqlite3_open_v2(path, &connection, flags, nil)
        guard code == SQLITE_OK, let connection else {
            let message =
                connection.map { String(cString: sqlite3_errmsg($0)) }
                ?? String(cString: sqlite3_errstr(code))
            sqlite3_close_v2(connection)
            throw DatabaseError(
                extendedResultCode: code, message: message, function: "sqlite3_open_v2", path: path)
        }
        handle = connection
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
        if mode == .readOnly {
            // The first read of the file: a file that is not SQLite fails here, with SQLITE_NOTADB.
            _ = try singleInt("PRAGMA schema_version")
            try execute("PRAGMA foreign_keys = ON")
            return
        }
        // The first read of the file: a file that is not SQLite fails here, with SQLITE_NOTADB.
        let journalMode = try singleText("PRAGMA journal_mode = WAL")
        guard journalMode?.lowercased() == "wal" else {
            throw DatabaseError(
                extendedResultCode: SQLITE_ERROR,
                message: "journal_mode is \(journalMode ?? "unknown"), not wal",
                sql: "PRAGMA journal_mode = WAL", function: "sqlite3_step", path: path)
        }
        // WAL + NORMAL: a commit is in the WAL (the OS's page cache) when `COMMIT` returns, so it
        // survives the process being killed; only a power loss or kernel crash can lose the last
        // commits before a checkpoint. docs/store.md says why that is the right trade here.
        try execute("PRAGMA synchronous = NORMAL")
        try execute("PRAGMA foreign_keys = ON")
        // After a checkpoint, a WAL that grew past this is truncated back (bounded disk use).
        try execute("PRAGMA journal_size_limit = \(Self.walSizeLimitBytes)")
    }

    deinit {
        statementCache.removeAll()  // finalize every statement before the connection goes
        sqlite3_close_v2(handle)
    }

    /// Prepares a new statement (the caller owns it).
    public func prepare(_ sql: String) throws(DatabaseError) -> Statement {
        try Statement(connection: handle, path: path, sql: sql)
    }

    /// A prepared statement kept for reuse, reset and with its bindings cleared.
    public func cachedStatement(_ sql: String) throws(DatabaseError) -> Statement {
        if let statement = statementCache[sql] {
            statement.reset()
            return statement
        }
        let statement = try prepare(sql)
        statementCache[sql] = statement
        return statement
    }

    /// Runs one or more statements that return no rows (`sqlite3_exec`).
    public func execute(_ sql: String) throws(DatabaseError) {
        var message: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &message)
        guard code == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(message)
            throw DatabaseError(
                extendedResultCode: sqlite3_extended_errcode(handle), message: text, sql: sql,
                function: "sqlite3_exec", path: path)
        }
    }

    /// Runs `sql` with `arguments` and returns the first column of the first row as text.
    public func singleText(_ sql: String, _ arguments: [SQLValue] = []) throws(DatabaseError) -> String? {
        let statement = try cachedStatement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        return try statement.step() ? statement.string(0) : nil
    }

    /// Runs `sql` with `arguments` and returns the first column of the first row as an integer.
    public func singleInt(_ sql: String, _ arguments: [SQLValue] = []) throws(DatabaseError) -> Int64? {
        let statement = try cachedStatement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        return try statement.step() ? statement.int64OrNil(0) : nil
    }

    /// Runs a statement that returns no rows (or whose rows are ignored); returns the rows changed.
    @discardableResult
    public func run(_ sql: String, _ arguments: [SQLValue] = []) throws(DatabaseError) -> Int {
        let statement = try cachedStatement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        while try statement.step() {}
        return Int(sqlite3_changes(handle))
    }

    /// The rowid of the last row inserted on this connection.
    public var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Whether a transaction is open.
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction: commits when it returns, rolls back when it
    /// throws (and rethrows). The write lock is taken at `BEGIN`, so a busy database fails there
    /// (after the busy timeout) rather than half-way. Transactions do not nest.
    @discardableResult
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        precondition(transactionDepth == 0 && !isInTransaction, "transactions do not nest (\(path))")
        try execute("BEGIN IMMEDIATE")
        transactionDepth = 1
        defer { transactionDepth = 0 }
        let value: T
        do {
            value = try body()
        } catch {
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
        do {
            try execute("COMMIT")
        } catch {
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
        return value
    }
}

@available(*, unavailable)
extension Database: Sendable {}
