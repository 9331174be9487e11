// The other actions: `exec` runs a site's script with the finding in its environment, `webhook`
// posts the event to a ticketing or chat system, `dry-run` records and touches nothing.

import Foundation
import Net

/// Runs a script (a file in runbooks/, by convention) as `SCRIPT quarantine|release|status`, with
/// FAULTLINE_NODE, FAULTLINE_INTENT, FAULTLINE_CLASS, FAULTLINE_COMPONENT, FAULTLINE_RUNBOOK and
/// FAULTLINE_REASON in its environment. `status` must print one JSON object
/// `{"quarantined": true|false, "reason": "..."}`; the state is read back that way after acting.
public struct ExecAction: QuarantineAction, Escalation {
    public let name = "exec"
    public let script: String
    public let timeout: Duration
    private let runner: any CommandRunner

    public init(script: String, timeout: Duration = .seconds(30), runner: any CommandRunner) {
        self.script = script
        self.timeout = timeout
        self.runner = runner
    }

    public func status(node: String) throws(ActionError) -> SchedulerState {
        let result = try run("status", environment: ["FAULTLINE_NODE": node])
        guard result.succeeded else {
            throw ActionError(.failed, "exec: \(script) status \(node): \(result.outcome): \(result.standardError.prefix(200))")
        }
        struct Printed: Decodable {
            let quarantined: Bool
            let reason: String?
        }
        guard let printed = try? JSONDecoder().decode(Printed.self, from: Data(result.standardOutput.utf8)) else {
            throw ActionError(
                .failed, "exec: \(script) status \(node) must print {\"quarantined\": true|false, \"reason\": \"...\"}")
        }
        let reason = printed.reason ?? ""
        return SchedulerState(
            node: node, quarantined: printed.quarantined, ours: printed.quarantined && QuarantineMark.isOurs(reason),
            reason: reason)
    }

    public func quarantine(_ request: QuarantineRequest) throws(ActionError) -> SchedulerState {
        let before = try status(node: request.node)
        if before.quarantined {
            guard before.ours else { throw ActionError(.notOurs, "exec: \(request.node) is out for someone else: left alone") }
            return before
        }
        let result = try run(
            "quarantine",
            environment: [
                "FAULTLINE_NODE": request.node, "FAULTLINE_INTENT": request.intent,
                "FAULTLINE_CLASS": request.faultClass, "FAULTLINE_COMPONENT": request.component,
                "FAULTLINE_RUNBOOK": request.runbook, "FAULTLINE_REASON": request.mark,
            ])
        let after = try status(node: request.node)
        guard after.quarantined, after.ours else {
            throw ActionError(.notVerified, "exec: \(script) quarantine \(request.node) (\(result.outcome)) did not take")
        }
        return after
    }

    public func plan(quarantine request: QuarantineRequest) -> String {
        "FAULTLINE_NODE=\(request.node) FAULTLINE_CLASS=\(request.faultClass) \(script) quarantine"
    }

    public func plan(release node: String) -> String { "FAULTLINE_NODE=\(node) \(script) release" }

    public func release(node: String) throws(ActionError) -> SchedulerState {
        let before = try status(node: node)
        guard before.quarantined else { return before }
        guard before.ours else { throw ActionError(.notOurs, "exec: \(node) is out for someone else: left alone") }
        let result = try run("release", environment: ["FAULTLINE_NODE": node])
        let after = try status(node: node)
        guard !after.quarantined else {
            throw ActionError(.notVerified, "exec: \(script) release \(node) (\(result.outcome)) did not take")
        }
        return after
    }

    /// `SCRIPT escalate` with the finding in the environment and FAULTLINE_STEP.
    public func escalate(_ request: QuarantineRequest, step: String) throws(ActionError) {
        let result = try run(
            "escalate",
            environment: [
                "FAULTLINE_NODE": request.node, "FAULTLINE_INTENT": request.intent, "FAULTLINE_STEP": step,
                "FAULTLINE_CLASS": request.faultClass, "FAULTLINE_COMPONENT": request.component,
                "FAULTLINE_RUNBOOK": request.runbook, "FAULTLINE_REASON": request.mark,
            ])
        guard result.succeeded else { throw ActionError(.failed, "exec: \(script) escalate: \(result.outcome)") }
    }

    private func run(_ verb: String, environment: [String: String]) throws(ActionError) -> CommandResult {
        let result: CommandResult
        do {
            result = try runner.run([script, verb], environment: environment, timeout: timeout)
        } catch {
            throw ActionError(.failed, "exec: cannot run \(script): \(error)")
        }
        if result.timedOut { throw ActionError(.failed, "exec: \(script) \(verb) timed out after \(timeout)") }
        return result
    }
}

/// Posts `{"event": "quarantine"|"release", "node", "intent", "class", "component", "runbook",
/// "reason"}` to a URL (http only: no TLS in this build) with a bearer token, retrying with backoff.
/// A webhook keeps no state: `status` says not quarantined, and a quarantine "verifies" by the
/// endpoint's 2xx answer. It is a ladder step (a ticket, a page), not a way to drain a node.
public struct WebhookAction: QuarantineAction, Escalation {
    public let name = "webhook"
    public let address: SocketAddress
    public let path: String
    public let token: String?
    public let timeout: Duration
    public let attempts: Int

    /// `url`: `http://HOST[:PORT]/PATH`.
    public init(url: String, token: String?, timeout: Duration = .seconds(5), attempts: Int = 3) throws(ActionError) {
        guard url.hasPrefix("http://") else {
            throw ActionError(.failed, "webhook: only http:// URLs are supported, got '\(url)'")
        }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        let hostPart = authority.split(separator: ":", maxSplits: 1)
        guard let host = hostPart.first.map(String.init), !host.isEmpty,
            let port = hostPart.count == 2 ? UInt16(hostPart[1]) : 80, port > 0,
            let address = try? SocketAddress(host: host, port: port)
        else {
            throw ActionError(.failed, "webhook: '\(url)' is not http://HOST[:PORT]/PATH with a numeric address")
        }
        self.address = address
        self.path = path.isEmpty ? "/" : String(path)
        self.token = token
        self.timeout = timeout
        self.attempts = max(1, attempts)
    }

    public func status(node: String) throws(ActionError) -> SchedulerState {
        SchedulerState(node: node, quarantined: false, ours: false, reason: "a webhook keeps no state")
    }

    public func quarantine(_ request: QuarantineRequest) throws(ActionError) -> SchedulerState {
        try post(
            event: "quarantine",
            fields: [
                "node": request.node, "intent": request.intent, "class": request.faultClass,
                "component": request.component, "runbook": request.runbook, "reason": request.reason,
            ])
        return SchedulerState(node: request.node, quarantined: false, ours: false, reason: "notified")
    }

    /// POSTs `{"event": "escalate", "step", ...}`.
    public func escalate(_ request: QuarantineRequest, step: String) throws(ActionError) {
        try post(
            event: "escalate",
            fields: [
                "node": request.node, "intent": request.intent, "class": request.faultClass, "step": step,
                "component": request.component, "runbook": request.runbook, "reason": request.reason,
            ])
    }

    public func release(node: String) throws(ActionError) -> SchedulerState {
        try post(event: "release", fields: ["node": node])
        return SchedulerState(node: node, quarantined: false, ours: false, reason: "notified")
    }

    private func post(event: String, fields: [String: String]) throws(ActionError) {
        var object = fields
        object["event"] = event
        let body = (try? JSONEncoder.sorted.encode(object)) ?? Data()
        var headers: HTTPHeaders = ["Content-Type": "application/json"]
        if let token { headers.add("Authorization", "Bearer \(token)") }
        var lastProblem = ""
        for attempt in 0..<attempts {
            if attempt > 0 { Thread.sleep(forTimeInterval: 0.2 * Double(1 << min(attempt, 5))) }
            do {
                let client = try HTTPClient(connectingTo: address, timeout: timeout)
                let response = try client.send("POST", path, headers: headers, body: Array(body))
                if (200..<300).contains(response.status) { return }
                lastProblem = "HTTP \(response.status)"
                if (400..<500).contains(response.status) && response.status != 429 { break }  // will not change
            } catch {
                lastProblem = "\(error)"
            }
        }
        throw ActionError(.failed, "webhook: POST http://\(address)\(path) failed: \(lastProblem)")
    }
}

extension JSONEncoder {
    /// Keys sorted: the same bytes for the same object.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}

/// Records what it would do and touches nothing: the policy's decisions are evaluated exactly as
/// live (the same guards), and this is where they stop. Given the action that would run live, it
/// records that action's plan: the exact scontrol command line, the script, the request.
public final class DryRunAction: QuarantineAction, @unchecked Sendable {
    public let name = "dry-run"
    /// The action a live run would use; nil for none.
    public let planning: (any QuarantineAction)?
    private let lock = NSLock()
    private var out: [String: String] = [:]
    /// What it would have run, in order: "quarantine gpu-0003 (faultline:...)", or the planned
    /// action's command line.
    public private(set) var log: [String] = []

    public init(planning: (any QuarantineAction)? = nil) { self.planning = planning }

    public func status(node: String) throws(ActionError) -> SchedulerState {
        lock.withLock {
            let reason = out[node]
            return SchedulerState(node: node, quarantined: reason != nil, ours: reason != nil, reason: reason ?? "")
        }
    }

    /// The state it pretends, with what it would have run as the reason (the executor's outcome,
    /// and so the audit, carry it).
    public func quarantine(_ request: QuarantineRequest) throws(ActionError) -> SchedulerState {
        let plan = planning?.plan(quarantine: request) ?? "quarantine \(request.node) (\(request.mark))"
        lock.withLock {
            if out[request.node] == nil {
                out[request.node] = request.mark
                log.append(plan)
            }
        }
        return SchedulerState(node: request.node, quarantined: true, ours: true, reason: "would run: \(plan)")
    }

    public func release(node: String) throws(ActionError) -> SchedulerState {
        let plan = planning?.plan(release: node) ?? "release \(node)"
        lock.withLock {
            if out.removeValue(forKey: node) != nil { log.append(plan) }
        }
        return SchedulerState(node: node, quarantined: false, ours: false, reason: "would run: \(plan)")
    }
}
