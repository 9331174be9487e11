// The quarantine action a configuration names (`action = slurm` and its settings), built once for
// `faultline serve`'s executor and for `faultline action run`.

import Foundation
import Net
import Remediation

extension ServiceConfiguration {
    /// The configured action (or `name`, when given), or what is missing for it; with `dry-run =
    /// true`, a dry run that records what that action would run.
    public func makeAction(
        named name: String? = nil, runner: any CommandRunner = SubprocessRunner()
    ) throws(ConfigurationError) -> any QuarantineAction {
        let live = try makeLiveAction(named: name, runner: runner)
        return dryRun && live.name != "dry-run" ? DryRunAction(planning: live) : live
    }

    private func makeLiveAction(
        named name: String?, runner: any CommandRunner
    ) throws(ConfigurationError) -> any QuarantineAction {
        let chosen = name ?? action
        let timeout = Duration.seconds(actionTimeoutSeconds)
        switch chosen {
        case "dry-run":
            return DryRunAction()
        case "slurm":
            return SlurmAction(
                scontrol: slurmScontrol, timeout: timeout,
                environment: slurmConf.map { ["SLURM_CONF": $0] } ?? [:], runner: runner)
        case "exec":
            guard let execScript else {
                throw ConfigurationError(location: nil, message: "the exec action needs 'exec-script = PATH'")
            }
            return ExecAction(script: execScript, timeout: timeout, runner: runner)
        case "webhook":
            guard let webhookURL else {
                throw ConfigurationError(location: nil, message: "the webhook action needs 'webhook-url = http://HOST:PORT/PATH'")
            }
            let token = try webhookTokenFile.map { (path) throws(ConfigurationError) in try Self.token(path, "webhook-token-file") }
            do {
                return try WebhookAction(url: webhookURL, token: token, timeout: timeout)
            } catch {
                throw ConfigurationError(location: nil, message: error.description)
            }
        case "kubernetes":
            return try makeKubernetesAction(timeout: timeout, runner: runner)
        default:
            throw ConfigurationError(
                location: nil,
                message: "unknown action '\(chosen)' (known: \(Self.actionNames.joined(separator: ", ")))")
        }
    }

    /// The kubernetes action through the one way to the API server the configuration gives.
    private func makeKubernetesAction(
        timeout: Duration, runner: any CommandRunner
    ) throws(ConfigurationError) -> KubernetesAction {
        let ways = [kubernetesProxy != nil, kubernetesKubeconfig != nil, kubernetesInCluster].filter { $0 }.count
        guard ways == 1 else {
            throw ConfigurationError(
                location: nil,
                message: "the kubernetes action needs exactly one of 'kubernetes-proxy = http://HOST:PORT' (kubectl proxy), "
                    + "'kubernetes-kubeconfig = PATH' or 'kubernetes-in-cluster = true'")
        }
        let token = try kubernetesTokenFile.map { (path) throws(ConfigurationError) in
            try Self.token(path, "kubernetes-token-file")
        }
        do throws(ActionError) {
            if let kubernetesProxy {
                return try KubernetesAction(proxy: kubernetesProxy, token: token, timeout: timeout)
            }
            let credentials =
                if let kubernetesKubeconfig {
                    try KubernetesCredentials.kubeconfig(
                        kubernetesKubeconfig, context: kubernetesContext, privateDirectory: try Self.privateDirectory())
                } else {
                    try KubernetesCredentials.inCluster()
                }
            return KubernetesAction(credentials: credentials, curl: kubernetesCurl, timeout: timeout, runner: runner)
        } catch {
            throw ConfigurationError(location: nil, message: error.description)
        }
    }

    /// A new directory only this process's user can enter (mkdtemp: made 0700 atomically, so no
    /// one can have made it, or a link in its place, first), for a kubeconfig's decoded certificates.
    /// It goes when the process exits normally (SIGTERM included: the service exits through main).
    private static func privateDirectory() throws(ActionError) -> String {
        var template = Array((NSTemporaryDirectory() + "faultline-kubernetes-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ActionError(.failed, "kubernetes: cannot make a private directory: \(String(cString: strerror(errno)))")
        }
        let path = String(cString: made)
        _ = removalAtExit
        directoriesRemovedAtExit.withLock { $0.append(path) }
        return path
    }

    /// A bearer token: the first line of a file.
    private static func token(_ path: String, _ key: String) throws(ConfigurationError) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(location: nil, message: "cannot read \(key) \(path)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What carries out each ladder step the configuration names (`webhook.NAME`, `exec.NAME`).
    public func makeEscalations(runner: any CommandRunner = SubprocessRunner()) throws(ConfigurationError)
        -> [String: any Escalation]
    {
        let timeout = Duration.seconds(actionTimeoutSeconds)
        let token = try webhookTokenFile.map { (path) throws(ConfigurationError) in try Self.token(path, "webhook-token-file") }
        var built: [String: any Escalation] = [:]
        for (step, target) in escalations.sorted(by: { $0.key < $1.key }) {
            if step.hasPrefix("webhook:") {
                do {
                    built[step] = try WebhookAction(url: target, token: token, timeout: timeout)
                } catch {
                    throw ConfigurationError(location: nil, message: "\(step): \(error)")
                }
            } else {
                built[step] = ExecAction(script: target, timeout: timeout, runner: runner)
            }
        }
        return built
    }
}

/// Directories `privateDirectory` made: removed, with what they hold, at exit.
private let directoriesRemovedAtExit = Locked<[String]>([])
private let removalAtExit: Void = {
    atexit {
        for directory in directoriesRemovedAtExit.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: directory) }
    }
}()
