// `faultline executor run`: the policy's decisions (as `faultline replay --json` prints them) carried
// out through the configured action, with the intent log and audit in the store; pending intents
// of an earlier run (a crash) reconciled first. `faultline audit verify`: the audit chain checked.

import FleetModel
import Foundation
import Policy
import Remediation
import Service
import Store

struct ExecutorRunCommand: Command {
    static let name = "executor run"
    static let summary = "carry out recorded decisions through an action, with the intent log and audit"
    static let usage = "executor run --db FILE --decisions FILE [--action NAME] [--config FILE]"
    static let help = """
        Reconciles the intents an earlier run left pending (the scheduler's state decides whether each
        still needs doing), then carries out every quarantine and release decision of FILE (JSON lines
        as `faultline replay --json` prints them; finding lines are skipped) through the action:
        intent written, action run, state read back, outcome recorded, each step in the audit log.
        A decision already done is not done again, so a run that was killed can simply be run again.
        Other decisions (held, notify, awaiting-approval, ...) are audited only.

        options:
          --db FILE         the store (created if missing)
          --decisions FILE  the decisions, JSON lines (- for standard input)
          --action NAME     dry-run, slurm, exec or webhook (default: the config's, else dry-run)
          --config FILE     the service's config file: action settings (docs/service.md)

        Prints one line per decision: its intent and what happened. Exit 65 when any failed.
        """

    let databasePath: String
    let decisionsPath: String
    let actionName: String?
    let configPath: String?

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["db", "decisions", "action", "config"], flags: [])
        databasePath = try options.required("db")
        decisionsPath = try options.required("decisions")
        actionName = options.value("action")
        configPath = options.value("config")
    }

    func run(io: some CommandIO) throws(CommandError) {
        let configuration = try serviceConfiguration(file: configPath)
        let data =
            decisionsPath == "-" ? Data(try readAllInput(io: io, limit: 1 << 30)) : try readFile(decisionsPath, limit: 1 << 30)
        var decisions: [Decision] = []
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw CommandError.data("\(decisionsPath):\(index + 1): not a JSON object")
            }
            guard object["decision"] != nil else { continue }  // a finding line
            guard let decision = Self.decision(object) else {
                throw CommandError.data("\(decisionsPath):\(index + 1): not a decision (time, decision, id, class...)")
            }
            decisions.append(decision)
        }
        let executor: Executor
        do {
            let store = try Store(path: databasePath)
            let action = try configuration.makeAction(named: actionName)
            executor = Executor(store: store, action: action) { Timestamp(secondsSinceEpoch: Int64(Date().timeIntervalSince1970)) }
        } catch {
            throw CommandError.data("\(error)")
        }
        var failures = 0
        var output = ""
        do {
            for (intent, outcome) in try executor.reconcile() {
                output += "\(intent)  reconciled: \(Self.describe(outcome))\n"
                if case .failed = outcome { failures += 1 }
            }
            for decision in decisions {
                let outcome = try executor.execute(decision)
                if case .audited = outcome { continue }
                output += "\(Executor.intentID(decision) ?? decision.id)  \(Self.describe(outcome))\n"
                if case .failed = outcome { failures += 1 }
            }
        } catch {
            io.write(output)
            throw CommandError.io("store \(databasePath): \(error)")
        }
        io.write(output)
        if failures > 0 { throw CommandError.data("\(failures) intent(s) failed (see the audit log)") }
    }

    static func describe(_ outcome: Executor.Outcome) -> String {
        switch outcome {
        case .done(let state): "done: \(state.node) \(state.quarantined ? "out of service" : "in service")"
        case .alreadyDone: "already done"
        case .failed(let why): "FAILED: \(why)"
        case .audited: "audited"
        }
    }

    /// A decision from its JSON line's fields.
    static func decision(_ object: [String: Any]) -> Decision? {
        guard let timeText = object["time"] as? String, let time = Timestamp(rfc3339: timeText),
            let kindText = object["decision"] as? String, let kind = Decision.Kind(rawValue: kindText),
            let id = object["id"] as? String, let component = object["component"] as? String,
            let faultClass = object["class"] as? String, let reason = object["reason"] as? String
        else { return nil }
        let node: NodeName?
        if let name = object["node"] as? String {
            guard let parsed = NodeName(name) else { return nil }
            node = parsed
        } else {
            node = nil
        }
        return Decision(time: time, kind: kind, id: id, node: node, component: component, faultClass: faultClass, reason: reason)
    }
}

struct AuditVerifyCommand: Command {
    static let name = "audit verify"
    static let summary = "check the store's hash-chained audit log"
    static let usage = "audit verify --db FILE"
    static let help = """
        Checks every entry of the audit log: numbered without gaps, each one carrying the SHA-256 of
        the one before, each hash matching its content. Prints the number of entries and the last
        hash; exit 65 naming the first broken entry otherwise.
        """

    let databasePath: String

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["db"], flags: [])
        databasePath = try options.required("db")
    }

    func run(io: some CommandIO) throws(CommandError) {
        do {
            let store = try Store(path: databasePath, mode: .existing, migrate: false)
            let count = try store.verifyAudit()
            let last = try store.auditEntries().last?.hash ?? AuditEntry.genesis
            io.write("audit log intact: \(count) entries, last hash \(last)\n")
        } catch let broken as AuditBreak {
            throw CommandError.data("audit log broken at \(broken)")
        } catch {
            throw CommandError.data("store \(databasePath): \(error)")
        }
    }
}
