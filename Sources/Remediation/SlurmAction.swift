// Quarantine through Slurm: `scontrol update NodeName=X State=DRAIN Reason="faultline:<intent>
// <class>"`, one node per call, and the state always read back with `scontrol show node X`, because
// scontrol's exit codes do not tell the truth (RESUME on an idle node returns 1; RESUME on an
// UNKNOWN+DRAIN node returns 1 yet clears the drain). A node drained for any other reason is never
// touched; release (RESUME, then UNDRAIN if the drain is still there) only when the reason is ours.

import Net

public struct SlurmAction: QuarantineAction {
    public let name = "slurm"
    /// The scontrol program (a path, or a name in PATH).
    public let scontrol: String
    /// Per scontrol call: with slurmctld down, scontrol gives up after about 9 s by itself.
    public let timeout: Duration
    /// Added to scontrol's environment, e.g. `SLURM_CONF` for a cluster other than the default.
    public let environment: [String: String]
    private let runner: any CommandRunner

    public init(
        scontrol: String = "scontrol", timeout: Duration = .seconds(20), environment: [String: String] = [:],
        runner: any CommandRunner
    ) {
        self.scontrol = scontrol
        self.timeout = timeout
        self.environment = environment
        self.runner = runner
    }

    public func plan(quarantine request: QuarantineRequest) -> String {
        "\(scontrol) update NodeName=\(request.node) State=DRAIN Reason=\"\(request.mark)\""
    }

    public func plan(release node: String) -> String {
        "\(scontrol) update NodeName=\(node) State=RESUME (then UNDRAIN if still drained), only if the reason is ours"
    }

    public func status(node: String) throws(ActionError) -> SchedulerState {
        try Self.checkName(node)
        let result = try run(["show", "node", node])
        guard result.succeeded else {
            if result.standardError.contains("not found") || result.standardOutput.contains("not found") {
                throw ActionError(.unknownNode, "slurm: node \(node) not found")
            }
            throw ActionError(
                .failed, "slurm: scontrol show node \(node): \(result.outcome): \(Self.firstLine(result.standardError))")
        }
        guard let state = Self.parseNode(result.standardOutput, node: node) else {
            throw ActionError(.failed, "slurm: scontrol show node \(node) printed no State= for it")
        }
        return state
    }

    public func quarantine(_ request: QuarantineRequest) throws(ActionError) -> SchedulerState {
        let before = try status(node: request.node)
        if before.quarantined {
            guard before.ours else {
                throw ActionError(
                    .notOurs, "slurm: \(request.node) is already out of service (\(before.reason)): left alone")
            }
            return before  // ours already: a retried intent changes nothing
        }
        let update = try run(["update", "NodeName=\(request.node)", "State=DRAIN", "Reason=\(request.mark)"])
        let after = try status(node: request.node)
        guard after.quarantined, after.ours else {
            throw ActionError(
                .notVerified,
                "slurm: drained \(request.node) (\(update.outcome)) but it reads back "
                    + "\(after.quarantined ? "out of service" : "in service") with reason '\(after.reason)'")
        }
        return after
    }

    public func release(node: String) throws(ActionError) -> SchedulerState {
        let before = try status(node: node)
        guard before.quarantined else { return before }
        guard before.ours else {
            throw ActionError(.notOurs, "slurm: \(node) is out of service for someone else (\(before.reason)): left alone")
        }
        var after = before
        // RESUME clears DRAIN; on an UNKNOWN or DOWN node UNDRAIN is what does. Exit codes ignored:
        // the state read back decides.
        for state in ["RESUME", "UNDRAIN"] where after.quarantined {
            _ = try run(["update", "NodeName=\(node)", "State=\(state)"])
            after = try status(node: node)
        }
        guard !after.quarantined else {
            throw ActionError(.notVerified, "slurm: \(node) still reads back out of service (\(after.reason))")
        }
        return after
    }

    private func run(_ arguments: [String]) throws(ActionError) -> CommandResult {
        do {
            let result = try runner.run([scontrol] + arguments, environment: environment, timeout: timeout)
            if result.timedOut {
                throw ActionError(.failed, "slurm: scontrol \(arguments.joined(separator: " ")) timed out after \(timeout)")
            }
            return result
        } catch let error as ActionError {
            throw error
        } catch {
            throw ActionError(.failed, "slurm: cannot run \(scontrol): \(error)")
        }
    }

    /// Node names go into `NodeName=` as one argument: no spaces, commas or brackets (a hostlist
    /// expression would touch several nodes at once).
    static func checkName(_ node: String) throws(ActionError) {
        let allowed = node.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        guard !node.isEmpty, node.utf8.count <= 255, allowed else {
            throw ActionError(.unknownNode, "slurm: '\(node)' is not a single node name")
        }
    }

    /// The node's state from `scontrol show node` output: `State=IDLE+DRAIN` (any of DRAIN, DOWN,
    /// FAIL counts as out of service) and the `Reason=` line (its trailing `[user@time]` dropped).
    static func parseNode(_ output: String, node: String) -> SchedulerState? {
        var state: String?
        var reason = ""
        for line in output.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("Reason=") {
                var text = String(trimmed.dropFirst("Reason=".count))
                if text.hasSuffix("]"), let open = text.lastIndex(of: "[") {
                    text = String(text[..<open])
                    while text.hasSuffix(" ") { text.removeLast() }
                }
                reason = text
                continue
            }
            for field in trimmed.split(separator: " ") where field.hasPrefix("State=") {
                state = String(field.dropFirst("State=".count))
            }
        }
        guard let state else { return nil }
        let flags = state.split(whereSeparator: { $0 == "+" || $0 == "*" }).map { $0.uppercased() }
        let out = flags.contains { $0.hasPrefix("DRAIN") || $0 == "DOWN" || $0 == "FAIL" || $0 == "FAILING" }
        return SchedulerState(node: node, quarantined: out, ours: out && QuarantineMark.isOurs(reason), reason: reason)
    }

    private static func firstLine(_ text: String) -> String {
        String(text.split(separator: "\n").first ?? "")
    }
}
