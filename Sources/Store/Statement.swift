// A prepared SQLite statement: one owner of a `sqlite3_stmt*`, finalized in `deinit`, with typed
// bindings (Int64, Double, String, bytes, NULL) and typed column readers.

import CSQLite3
import Foundation

/// A value bound to a statement's parameter.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    /// An `Int` as an SQLite integer.
    public static func int(_ value: Int) -> SQLValue { .integer(Int64(value)) }
    /// Text, or NULL for nil.
    public static func optionalText(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
    /// An integer, or NULL for nil.
    public static func optionalInt(_ value: Int64?) -> SQLValue { value.map { .integer($0) } ?? .null }
    /// `Data` as a blob.
    public static func data(_ value: Data) -> SQLValue { .blob([UInt8](value)) }
}

/// One prepared statement of one `Database`. Not `Sendable`: it belongs to its connection's owner.
public final class Statement {
    /// The SQL it was prepared from.
    public let sql: String
    private let handle: OpaquePointer
    /// The connection's handle, not the `Database`: a statement must not keep its connection's owner
    /// alive (the connection caches statements). `sqlite3_close_v2` keeps the connection open until
    /// its last statement is finalized, so a statement that outlives its `Database` stays valid.
    private let connection: OpaquePointer
    private let path: String

    init(connection: OpaquePointer, path: String, sql: String) throws(DatabaseError) {
        self.connection = connection
        self.path = path
        self.sql = sql
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else {
            throw DatabaseError(
                connection: connection, code: code, function: "sqlite3_prepare_v3", sql: sql, path: path)
        }
        handle = statement
    }

    deinit {
        sqlite3_finalize(handle)
    }

    /// Resets to run again and clears every binding.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Binds `values` to parameters 1, 2, … in order.
    public func bind(_ values: [SQLValue]) throws(DatabaseError) {
        guard values.count == Int(sqlite3_bind_parameter_count(handle)) else {
            throw DatabaseError(
                extendedResultCode: SQLITE_RANGE,
                message: "\(values.count) values for \(sqlite3_bind_parameter_count(handle)) parameters",
                sql: sql, function: "sqlite3_bind", path: path)
        }
        for (offset, value) in values.enumerated() { try bind(value, at: Int32(offset + 1)) }
    }

    /// Binds one value to parameter `index` (1-based).
    public func bind(_ value: SQLValue, at index: Int32) throws(DatabaseError) {
        let code: Int32
        switch value {
        case .null: code = sqlite3_bind_null(handle, index)
        case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
        case .real(let number): code = sqlite3_bind_double(handle, index, number)
        case .text(let text): code = sqlite3_bind_text(handle, index, text, -1, faultline_sqlite_transient())
        case .blob(let bytes):
            code = bytes.withUnsafeBytes { raw in
                // A zero-length blob still needs a non-null pointer to be a blob, not NULL.
                sqlite3_bind_blob64(
                    handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                    sqlite3_uint64(raw.count),
                    faultline_sqlite_transient())
            }
        }
        guard code == SQLITE_OK else {
            throw DatabaseError(
                connection: connection, code: code, function: "sqlite3_bind", sql: sql, path: path)
        }
    }

    /// Steps once: true when a row is ready to read, false when done.
    public func step() throws(DatabaseError) -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = DatabaseError(
                connection: connection, code: code, function: "sqlite3_step", sql: sql, path: path)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Whether column `index` (0-based) of the current row is NULL.
    public func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

    /// Column `index` (0-based) of the current row as an integer (`sqlite3_column_int64`; NULL reads 0).
    public func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }
    /// Column `index` as an integer, nil for NULL.
    public func int64OrNil(_ index: Int32) -> Int64? { isNull(index) ? nil : int64(index) }
    /// Column `index` as an `Int`.
    public func int(_ index: Int32) -> Int { Int(sqlite3_column_int64(handle, index)) }
    /// Column `index` as a double (`sqlite3_column_double`; NULL reads 0).
    public func double(_ index: Int32) -> Double { sqlite3_column_double(handle, index) }
    /// Column `index` as a double, nil for NULL.
    public func doubleOrNil(_ index: Int32) -> Double? { isNull(index) ? nil : double(index) }

    /// Column `index` as UTF-8 text (`sqlite3_column_text`), nil for NULL.
    public func string(_ index: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, index) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// Column `index` as bytes (`sqlite3_column_blob`), nil for NULL.
    public func bytes(_ index: Int32) -> [UInt8]? {
        if isNull(index) { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        guard count > 0, let pointer = sqlite3_column_blob(handle, index) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with column `index`'s bytes where SQLite holds them, without a copy: they last
    /// only for the call (and never past the statement's next step). Empty for NULL.
    public func withBytes<R, E: Error>(
        _ index: Int32, _ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R
    ) throws(E) -> R {
        // The pointer first, then its length (SQLite's order: the length then holds for it).
        let pointer = sqlite3_column_blob(handle, index)
        let count = Int(sqlite3_column_bytes(handle, index))
        guard let pointer, count > 0 else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeBufferPointer(start: pointer.assumingMemoryBound(to: UInt8.self), count: count))
    }

    /// Column `index` as `Data`, nil for NULL.
    public func data(_ index: Int32) -> Data? { bytes(index).map { Data($0) } }
}

@available(*, unavailable)
extension Statement: Sendable {}
