// The quarantine action a configuration names (`action = slurm` and its settings), built once for
// `faultline serve`'s executor and for `faultline action run`.

import Foundation
import Net
import Remediation

extension ServiceConfiguration {
    /// The configured action (or `name`, when given), or what is missing for it.
    public func makeAction(
        named name: String? = nil, runner: any CommandRunner = SubprocessRunner()
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
            var token: String?
            if let webhookTokenFile {
                guard let text = try? String(contentsOfFile: webhookTokenFile, encoding: .utf8) else {
                    throw ConfigurationError(location: nil, message: "cannot read webhook-token-file \(webhookTokenFile)")
                }
                token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            do {
                return try WebhookAction(url: webhookURL, token: token, timeout: timeout)
            } catch {
                throw ConfigurationError(location: nil, message: error.description)
            }
        default:
            throw ConfigurationError(
                location: nil,
                message: "unknown action '\(chosen)' (known: \(Self.actionNames.joined(separator: ", ")))")
        }
    }
}
