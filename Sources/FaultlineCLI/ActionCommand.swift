// `faultline action run ACTION quarantine|release|status NODE`: one quarantine action by hand, to
// try a configuration before the executor uses it, and for tests. The same code the executor runs:
// the state is read back after acting, and only Faultline's own quarantines are released.

import Foundation
import Remediation
import Service

struct ActionRunCommand: Command {
    static let name = "action run"
    static let summary = "run one quarantine action (slurm, kubernetes, exec, webhook, dry-run) on one node by hand"
    static let usage = "action run ACTION quarantine|release|status NODE [--reason TEXT] [--config FILE] [--json]"
    static let help = """
        Runs ACTION (dry-run, slurm, kubernetes, exec or webhook) once on NODE and prints the node's state as read
        back afterwards. quarantine takes the node out with Faultline's mark (faultline:<intent>
        <class>); release puts it back only when that mark is Faultline's; status only reads.

        options:
          --reason TEXT   for quarantine: what the mark says after the intent (default 'manual')
          --config FILE   the service's config file (docs/service.md): slurm-scontrol, slurm-conf,
                          exec-script, webhook-url, webhook-token-file, kubernetes-proxy,
                          kubernetes-token-file, kubernetes-kubeconfig, kubernetes-context,
                          kubernetes-in-cluster, kubernetes-curl, action-timeout-seconds
          --json          {"node": ..., "quarantined": ..., "ours": ..., "reason": ...}

        Exit status 0 when the action did what was asked (verified), 65 when it did not or refused
        (a node out of service for someone else is left alone), 64 for a usage error.
        """

    let actionName: String
    let verb: String
    let node: String
    let reason: String
    let configPath: String?
    let json: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["reason", "config"], flags: ["json"], positionals: 3)
        guard options.positionals.count == 3 else {
            throw CommandError.usage("expected ACTION, quarantine|release|status and NODE")
        }
        actionName = options.positionals[0]
        verb = options.positionals[1]
        node = options.positionals[2]
        guard ServiceConfiguration.actionNames.contains(actionName) else {
            throw CommandError.usage(
                "unknown action '\(actionName)' (known: \(ServiceConfiguration.actionNames.joined(separator: ", ")))")
        }
        guard ["quarantine", "release", "status"].contains(verb) else {
            throw CommandError.usage("expected quarantine, release or status, got '\(verb)'")
        }
        reason = options.value("reason") ?? "manual"
        configPath = options.value("config")
        json = options.flag("json")
    }

    func run(io: some CommandIO) throws(CommandError) {
        let configuration = try serviceConfiguration(file: configPath)
        let action: any QuarantineAction
        do {
            action = try configuration.makeAction(named: actionName)
        } catch {
            throw CommandError.data("\(error)")
        }
        let state: SchedulerState
        do {
            switch verb {
            case "quarantine":
                let stamp = ISO8601DateFormatter().string(from: Date())
                state = try action.quarantine(
                    QuarantineRequest(
                        node: node, intent: "\(node)@\(stamp)", faultClass: "manual", component: node, reason: reason))
            case "release": state = try action.release(node: node)
            default: state = try action.status(node: node)
            }
        } catch {
            throw CommandError.data("\(error)")
        }
        if json {
            io.write(state.jsonLine + "\n")
        } else {
            let summary = state.quarantined ? (state.ours ? "out of service (Faultline's)" : "out of service (not Faultline's)") : "in service"
            io.write("\(state.node): \(summary)\(state.reason.isEmpty ? "" : ", reason: \(state.reason)")\n")
        }
    }
}
