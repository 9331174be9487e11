// The executor's intent log and audit: an intent is written before acting and finished after the
// state was read back; a decision done is never done again; a crash's pending intent is reconciled
// against the scheduler; the audit chain catches an edit or a deletion.

import FleetModel
import Foundation
import Policy
import Store
import Testing

@testable import Remediation

private func temporaryStore() throws -> (Store, URL) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("executor-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return (try Store(path: directory.appendingPathComponent("store.db").path), directory)
}

private func decision(_ kind: Decision.Kind, _ node: String, at seconds: Int64 = 1_800_000_000) -> Decision {
    Decision(
        time: Timestamp(secondsSinceEpoch: seconds), kind: kind, id: "\(node)@\(Timestamp(secondsSinceEpoch: seconds))",
        node: NodeName(node)!, component: "\(node)/1", faultClass: "gpu.down", reason: "test")
}

private let clock: @Sendable () -> Timestamp = { Timestamp(secondsSinceEpoch: 1_800_000_100) }

struct ExecutorTests {
    @Test func aQuarantineIsLoggedActedVerifiedAndNeverRepeated() throws {
        let (store, directory) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: directory) }
        let slurm = FakeSlurm(nodes: ["gpu001": .init(base: "IDLE")])
        let executor = Executor(store: store, action: SlurmAction(runner: slurm), now: clock)
        let outcome = try executor.execute(decision(.quarantine, "gpu001"))
        guard case .done(let state) = outcome else { Issue.record("\(outcome)"); return }
        #expect(state.quarantined && state.ours)
        let intent = try #require(try store.intent("gpu001@\(Timestamp(secondsSinceEpoch: 1_800_000_000)):quarantine"))
        #expect(intent.state == .done && intent.attempts == 1)
        // The same decision again (a replay, a retry): nothing is done twice.
        #expect(try executor.execute(decision(.quarantine, "gpu001")) == .alreadyDone)
        #expect(slurm.calls.filter { $0[1] == "update" }.count == 1)
        // Intent and outcome in the audit, chained.
        #expect(try store.verifyAudit() == 2)
        #expect(try store.auditEntries().map { Executor.field("event", of: $0.entry) } == ["intent", "outcome"])
    }

    @Test func aCrashAfterActingIsReconciledWithoutActingAgain() throws {
        let (store, directory) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The intent was written and scontrol ran; the process died before the outcome was recorded.
        let slurm = FakeSlurm(nodes: ["gpu002": .init(base: "IDLE", drain: true, reason: "faultline:gpu002@x gpu.down")])
        let pending = decision(.quarantine, "gpu002")
        try store.record(
            intent: IntentRecord(
                id: Executor.intentID(pending)!, kind: .quarantine, node: "gpu002", decidedAt: pending.time,
                decision: pending.jsonLine, state: .pending, attempts: 1, outcome: nil, updatedAt: clock()),
            audit: "executor", entry: "{\"event\": \"intent\"}")
        let executor = Executor(store: store, action: SlurmAction(runner: slurm), now: clock)
        let outcomes = try executor.reconcile()
        #expect(outcomes.count == 1)
        #expect(slurm.calls.allSatisfy { $0[1] == "show" })
        #expect(try store.pendingIntents().isEmpty)
        #expect(try executor.execute(pending) == .alreadyDone)
    }

    @Test func aCrashBeforeActingIsReconciledByActingOnce() throws {
        let (store, directory) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: directory) }
        let slurm = FakeSlurm(nodes: ["gpu003": .init(base: "IDLE")])
        let pending = decision(.quarantine, "gpu003")
        try store.record(
            intent: IntentRecord(
                id: Executor.intentID(pending)!, kind: .quarantine, node: "gpu003", decidedAt: pending.time,
                decision: pending.jsonLine, state: .pending, attempts: 1, outcome: nil, updatedAt: clock()),
            audit: "executor", entry: "{\"event\": \"intent\"}")
        _ = try Executor(store: store, action: SlurmAction(runner: slurm), now: clock).reconcile()
        #expect(slurm.calls.filter { $0[1] == "update" }.count == 1)
        #expect(slurm.node("gpu003")?.reason == "faultline:gpu003@\(pending.time) gpu.down")
        #expect(try store.intent(Executor.intentID(pending)!)?.state == .done)
    }

    @Test func aFailedActionIsRecordedAsFailed() throws {
        let (store, directory) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: directory) }
        let slurm = FakeSlurm(nodes: ["gpu004": .init(base: "IDLE", drain: true, reason: "ops: bad PSU")])
        let outcome = try Executor(store: store, action: SlurmAction(runner: slurm), now: clock).execute(
            decision(.quarantine, "gpu004"))
        guard case .failed(let why) = outcome else { Issue.record("\(outcome)"); return }
        #expect(why.contains("left alone"))
        #expect(try store.allIntents().map(\.state) == [.failed])
    }

    @Test func aLadderStepIsSentOnceThroughItsEscalation() throws {
        let (store, directory) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: directory) }
        final class Recorder: Escalation, @unchecked Sendable {
            var sent: [String] = []
            func escalate(_ request: QuarantineRequest, step: String) throws(ActionError) { sent.append("\(step) \(request.node)") }
        }
        let recorder = Recorder()
        let executor = Executor(
            store: store, action: DryRunAction(), escalations: ["webhook:hw-ticket": recorder], now: clock)
        let step = Decision(
            time: Timestamp(secondsSinceEpoch: 1_800_001_800), kind: .escalate, id: "gpu007@x", node: NodeName("gpu007")!,
            component: "gpu007/1", faultClass: "gpu.down", reason: "webhook:hw-ticket")
        guard case .done = try executor.execute(step) else { Issue.record("not done"); return }
        #expect(try executor.execute(step) == .alreadyDone)
        #expect(recorder.sent == ["webhook:hw-ticket gpu007"])
        // A step nobody configured fails, and says so.
        let unknown = Decision(
            time: step.time, kind: .escalate, id: "gpu007@x", node: NodeName("gpu007")!, component: "gpu007/1",
            faultClass: "gpu.down", reason: "exec:reboot")
        guard case .failed(let why) = try executor.execute(unknown) else { Issue.record("not failed"); return }
        #expect(why.contains("no escalation 'exec:reboot'"))
    }

    @Test func otherDecisionsAreAuditedOnly() throws {
        let (store, directory) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: directory) }
        let slurm = FakeSlurm(nodes: [:])
        let held = decision(.held, "gpu005")
        #expect(try Executor(store: store, action: SlurmAction(runner: slurm), now: clock).execute(held) == .audited)
        #expect(slurm.calls.isEmpty)
        #expect(try store.allIntents().isEmpty)
        #expect(try store.verifyAudit() == 1)
    }

    @Test func theAuditChainCatchesAnEditAndADeletion() throws {
        let (store, directory) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: directory) }
        for n in 0..<5 { try store.appendAudit(at: clock(), actor: "operator:alice", entry: "{\"n\": \(n)}") }
        #expect(try store.verifyAudit() == 5)
        // The table refuses edits...
        #expect(throws: (any Error).self) { try store.database.run("UPDATE audit SET entry = '{}' WHERE seq = 3") }
        // ...and when someone with the file drops the guard, the chain still tells.
        try store.database.execute("DROP TRIGGER audit_no_update")
        try store.database.run("UPDATE audit SET entry = '{\"n\": 99}' WHERE seq = 3")
        do {
            try store.verifyAudit()
            Issue.record("an edited entry passed")
        } catch let broken as AuditBreak {
            #expect(broken.seq == 3 && broken.reason.contains("changed"))
        }
        try store.database.run("UPDATE audit SET entry = '{\"n\": 2}' WHERE seq = 3")
        try store.database.execute("DROP TRIGGER audit_no_delete")
        try store.database.run("DELETE FROM audit WHERE seq = 2")
        #expect(throws: AuditBreak.self) { try store.verifyAudit() }
    }
}
