// The executor's records in the store: the intent log (written before an action, finished after
// its result was verified, reconciled at start) and the audit log (append-only, each entry hashed
// with the one before, so that an edit or a deletion anywhere breaks the chain). docs/remediation.md.

import FleetModel
import Foundation

/// One intent of the executor.
public struct IntentRecord: Sendable, Equatable {
    public enum Kind: String, Sendable { case quarantine, release, escalate }
    public enum State: String, Sendable { case pending, done, failed }

    /// The policy's intent id and the kind: `<node>@<time>:quarantine`, `...:release`, or
    /// `...:webhook:hw-ticket` for a ladder step.
    public let id: String
    public let kind: Kind
    public let node: String
    public let decidedAt: Timestamp
    /// The policy's decision as its JSON line.
    public let decision: String
    public var state: State
    public var attempts: Int
    public var outcome: String?
    public var updatedAt: Timestamp

    public init(
        id: String, kind: Kind, node: String, decidedAt: Timestamp, decision: String, state: State, attempts: Int,
        outcome: String?, updatedAt: Timestamp
    ) {
        self.id = id
        self.kind = kind
        self.node = node
        self.decidedAt = decidedAt
        self.decision = decision
        self.state = state
        self.attempts = attempts
        self.outcome = outcome
        self.updatedAt = updatedAt
    }
}

/// One entry of the audit log.
public struct AuditEntry: Sendable, Equatable {
    public let seq: Int64
    public let at: Timestamp
    /// Who: `executor`, `operator:<token name>`, ...
    public let actor: String
    /// What, why, the evidence and the guards, as one JSON object.
    public let entry: String
    public let previous: String
    public let hash: String

    /// The chain's start: the `previous` of the first entry.
    public static let genesis = String(repeating: "0", count: 64)

    /// The hash an entry must carry: SHA-256 over the previous hash and the entry's fields.
    public static func hash(previous: String, seq: Int64, at: Timestamp, actor: String, entry: String) -> String {
        SHA256.hex(Array("\(previous)\n\(seq)\n\(at.secondsSinceEpoch)\n\(actor)\n\(entry)".utf8))
    }
}

/// Where the audit chain breaks.
public struct AuditBreak: Error, Sendable, Equatable, CustomStringConvertible {
    public let seq: Int64
    public let reason: String
    public var description: String { "audit entry \(seq): \(reason)" }
}

extension Store {
    /// The intent, if recorded.
    public func intent(_ id: String) throws -> IntentRecord? {
        try intents(where: "id = ?", [.text(id)]).first
    }

    /// Intents not finished (a crash between writing one and recording its outcome), oldest first.
    public func pendingIntents() throws -> [IntentRecord] {
        try intents(where: "state = 'pending'", [])
    }

    /// Every intent, oldest first.
    public func allIntents() throws -> [IntentRecord] { try intents(where: "1", []) }

    private func intents(where condition: String, _ arguments: [SQLValue]) throws -> [IntentRecord] {
        let statement = try database.prepare(
            "SELECT id, kind, node, decided_at, decision, state, attempts, outcome, updated_at FROM intents "
                + "WHERE \(condition) ORDER BY decided_at, id")
        try statement.bind(arguments)
        var records: [IntentRecord] = []
        while try statement.step() {
            records.append(
                IntentRecord(
                    id: statement.string(0) ?? "", kind: IntentRecord.Kind(rawValue: statement.string(1) ?? "") ?? .quarantine,
                    node: statement.string(2) ?? "", decidedAt: Timestamp(secondsSinceEpoch: statement.int64(3)),
                    decision: statement.string(4) ?? "",
                    state: IntentRecord.State(rawValue: statement.string(5) ?? "") ?? .pending,
                    attempts: statement.int(6), outcome: statement.string(7),
                    updatedAt: Timestamp(secondsSinceEpoch: statement.int64(8))))
        }
        return records
    }

    /// Writes (or, for a retry, updates) an intent and its audit entry in one transaction.
    public func record(intent: IntentRecord, audit actor: String, entry: String) throws {
        try database.transaction { try writeIntent(intent, audit: actor, entry: entry) }
    }

    /// `record(intent:audit:entry:)` inside a transaction the caller holds.
    public func writeIntent(_ intent: IntentRecord, audit actor: String, entry: String) throws {
        precondition(database.isInTransaction, "writeIntent needs the caller's transaction")
        do {
            try database.run(
                """
                INSERT INTO intents (id, kind, node, decided_at, decision, state, attempts, outcome, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
                    outcome = excluded.outcome, updated_at = excluded.updated_at
                """,
                [
                    .text(intent.id), .text(intent.kind.rawValue), .text(intent.node),
                    .integer(intent.decidedAt.secondsSinceEpoch), .text(intent.decision), .text(intent.state.rawValue),
                    .integer(Int64(intent.attempts)), intent.outcome.map(SQLValue.text) ?? .null,
                    .integer(intent.updatedAt.secondsSinceEpoch),
                ])
            try appendAuditInTransaction(at: intent.updatedAt, actor: actor, entry: entry)
        }
    }

    /// Appends one audit entry inside a transaction the caller holds.
    public func writeAudit(at: Timestamp, actor: String, entry: String) throws {
        precondition(database.isInTransaction, "writeAudit needs the caller's transaction")
        try appendAuditInTransaction(at: at, actor: actor, entry: entry)
    }

    /// Saves the remediation policy's memory (its JSON), inside a transaction the caller holds.
    public func writePolicyState(_ json: String, at: Timestamp) throws {
        precondition(database.isInTransaction, "writePolicyState needs the caller's transaction")
        try database.run(
            "INSERT INTO policy_state (id, saved_at, state) VALUES (1, ?, ?) "
                + "ON CONFLICT (id) DO UPDATE SET saved_at = excluded.saved_at, state = excluded.state",
            [.integer(at.secondsSinceEpoch), .text(json)])
    }

    /// The policy's memory as last saved; nil for none.
    public func policyState() throws -> String? {
        try database.singleText("SELECT state FROM policy_state WHERE id = 1")
    }

    /// Appends one audit entry on its own.
    public func appendAudit(at: Timestamp, actor: String, entry: String) throws {
        try database.transaction { try appendAuditInTransaction(at: at, actor: actor, entry: entry) }
    }

    private func appendAuditInTransaction(at: Timestamp, actor: String, entry: String) throws {
        let last = try database.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        let (seq, previous) = try last.step() ? (last.int64(0) + 1, last.string(1) ?? "") : (1, AuditEntry.genesis)
        let hash = AuditEntry.hash(previous: previous, seq: seq, at: at, actor: actor, entry: entry)
        try database.run(
            "INSERT INTO audit (seq, at, actor, entry, previous, hash) VALUES (?, ?, ?, ?, ?, ?)",
            [.integer(seq), .integer(at.secondsSinceEpoch), .text(actor), .text(entry), .text(previous), .text(hash)])
    }

    /// Every audit entry, in order.
    public func auditEntries() throws -> [AuditEntry] {
        let statement = try database.prepare("SELECT seq, at, actor, entry, previous, hash FROM audit ORDER BY seq")
        var entries: [AuditEntry] = []
        while try statement.step() {
            entries.append(
                AuditEntry(
                    seq: statement.int64(0), at: Timestamp(secondsSinceEpoch: statement.int64(1)),
                    actor: statement.string(2) ?? "", entry: statement.string(3) ?? "", previous: statement.string(4) ?? "",
                    hash: statement.string(5) ?? ""))
        }
        return entries
    }

    /// Checks the chain: numbered from 1 without gaps, each entry's `previous` the hash before it,
    /// each hash what its fields give. Returns the number of entries.
    @discardableResult
    public func verifyAudit() throws -> Int {
        var previous = AuditEntry.genesis
        let entries = try auditEntries()
        for (index, entry) in entries.enumerated() {
            guard entry.seq == Int64(index + 1) else {
                throw AuditBreak(seq: entry.seq, reason: "expected entry \(index + 1): entries are missing")
            }
            guard entry.previous == previous else {
                throw AuditBreak(seq: entry.seq, reason: "does not follow the entry before it (previous hash differs)")
            }
            let expected = AuditEntry.hash(
                previous: entry.previous, seq: entry.seq, at: entry.at, actor: entry.actor, entry: entry.entry)
            guard entry.hash == expected else {
                throw AuditBreak(seq: entry.seq, reason: "its content does not match its hash: it was changed")
            }
            previous = entry.hash
        }
        return entries.count
    }
}
