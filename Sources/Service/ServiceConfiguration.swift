// The service's settings: defaults, the config file (`key = value` lines, `#` comments, every problem
// as `file:line: message`, like the rules files), and command-line flags over both.

import Foundation
import Net

/// A problem in the config file, or a missing setting; prints as `file:line: message`.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let location: String?
    public let message: String

    public init(location: String?, message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { location.map { "\($0): \(message)" } ?? message }
}

/// Every setting of `faultline serve`. docs/service.md lists them.
public struct ServiceConfiguration: Sendable, Equatable {
    /// The store file (`db`).
    public var databasePath: String?
    /// `listen`: `HOST:PORT`; 127.0.0.1:8080 by default (loopback only).
    public var listen = "127.0.0.1:8080"
    public var topologyPath: String?
    public var tokensPath: String?
    /// A rules directory or file; nil for the built-in rules.
    public var rulesPath: String?
    /// `runbooks`: the runbooks directory whose headers give each class's release policy; nil for
    /// none (every class released automatically).
    public var runbooksPath: String?
    /// `window-seconds`: the engine's window length.
    public var windowSeconds = 10
    /// `ingest-queue`: reports requests that may wait for the engine's queue; past it, 503.
    public var ingestQueueCapacity = 512
    /// `max-body-bytes`: one request body; past it, 413.
    public var maxBodyBytes = 8 << 20
    /// `max-reports-per-request`: lines of one NDJSON body; past it, 413.
    public var maxReportsPerRequest = 1_000
    /// `max-connections`: open connections; past it, 503.
    public var maxConnections = 256
    /// `agent-port`: the UDP port every agent of the fleet answers probes on; when set (not 0), a
    /// served pinglist says where each peer answers (its rail's topology `address` and this port).
    public var agentPort = 0
    /// `rebuild-windows`: windows of stored reports replayed into the engine at start.
    public var rebuildWindows = 16
    /// `silent-after-windows`: a node whose last report is older than this many windows is silent.
    public var silentAfterWindows = 3
    /// `tick-milliseconds`: how often the window ticker looks at the clock.
    public var tickMilliseconds = 1_000
    /// `action`: how a quarantine is carried out: dry-run (the default), slurm, exec or webhook.
    public var action = "dry-run"
    /// `dry-run`: evaluate everything as live but only record (and log) what `action` would run.
    public var dryRun = false
    /// `action-timeout-seconds`: one call of the action (scontrol, the script, the webhook).
    public var actionTimeoutSeconds = 20
    /// `slurm-scontrol`: the scontrol program; `slurm-conf`: SLURM_CONF for it, when not the default.
    public var slurmScontrol = "scontrol"
    public var slurmConf: String?
    /// `exec-script`: the script of the exec action.
    public var execScript: String?
    /// `webhook-url` (http://HOST:PORT/PATH) and `webhook-token-file` (the bearer token, one line).
    public var webhookURL: String?
    public var webhookTokenFile: String?
    /// How the kubernetes action reaches the API server, one of: `kubernetes-proxy` (http://HOST:PORT
    /// of `kubectl proxy` or another API server proxy, with `kubernetes-token-file` when the proxy
    /// wants a bearer token); `kubernetes-kubeconfig` (a kubeconfig file, `kubernetes-context` or its
    /// current-context); `kubernetes-in-cluster = true` (the pod's service account). The last two
    /// speak HTTPS through the `kubernetes-curl` program (default `curl`).
    public var kubernetesProxy: String?
    public var kubernetesTokenFile: String?
    public var kubernetesKubeconfig: String?
    public var kubernetesContext: String?
    public var kubernetesInCluster = false
    public var kubernetesCurl = "curl"

    /// The ladder steps runbooks may name, by step (`webhook:hw-ticket`): a URL for a webhook, a
    /// script for exec. Set as `webhook.hw-ticket = http://...` and `exec.reboot = /path/script`.
    public var escalations: [String: String] = [:]

    /// The actions `action` may name.
    public static let actionNames = ["dry-run", "exec", "kubernetes", "slurm", "webhook"]

    public init() {}

    /// The keys the file and the flags know, each with how to set it.
    static let keys: [String: @Sendable (inout ServiceConfiguration, String) -> String?] = [
        "db": {
            $0.databasePath = $1; return nil
        },
        "listen": { config, value in
            do { _ = try SocketAddress.parse(value) } catch { return "\(error)" }
            config.listen = value
            return nil
        },
        "topology": {
            $0.topologyPath = $1; return nil
        },
        "tokens": {
            $0.tokensPath = $1; return nil
        },
        "rules": {
            $0.rulesPath = $1; return nil
        },
        "runbooks": {
            $0.runbooksPath = $1; return nil
        },
        "window-seconds": integer(\.windowSeconds, 1...3600),
        "ingest-queue": integer(\.ingestQueueCapacity, 1...1_000_000),
        "max-body-bytes": integer(\.maxBodyBytes, 1024...(1 << 30)),
        "max-reports-per-request": integer(\.maxReportsPerRequest, 1...1_000_000),
        "max-connections": integer(\.maxConnections, 1...100_000),
        "agent-port": integer(\.agentPort, 0...65_535),
        "rebuild-windows": integer(\.rebuildWindows, 0...10_000),
        "silent-after-windows": integer(\.silentAfterWindows, 1...10_000),
        "tick-milliseconds": integer(\.tickMilliseconds, 10...60_000),
        "action": { config, value in
            guard actionNames.contains(value) else { return "expected one of \(actionNames.joined(separator: ", ")), found '\(value)'" }
            config.action = value
            return nil
        },
        "action-timeout-seconds": integer(\.actionTimeoutSeconds, 1...600),
        "dry-run": { config, value in
            guard value == "true" || value == "false" else { return "expected true or false, found '\(value)'" }
            config.dryRun = value == "true"
            return nil
        },
        "slurm-scontrol": {
            $0.slurmScontrol = $1; return nil
        },
        "slurm-conf": {
            $0.slurmConf = $1; return nil
        },
        "exec-script": {
            $0.execScript = $1; return nil
        },
        "webhook-url": {
            $0.webhookURL = $1; return nil
        },
        "webhook-token-file": {
            $0.webhookTokenFile = $1; return nil
        },
        "kubernetes-proxy": {
            $0.kubernetesProxy = $1; return nil
        },
        "kubernetes-token-file": {
            $0.kubernetesTokenFile = $1; return nil
        },
        "kubernetes-kubeconfig": {
            $0.kubernetesKubeconfig = $1; return nil
        },
        "kubernetes-context": {
            $0.kubernetesContext = $1; return nil
        },
        "kubernetes-in-cluster": { config, value in
            guard value == "true" || value == "false" else { return "expected true or false, found '\(value)'" }
            config.kubernetesInCluster = value == "true"
            return nil
        },
        "kubernetes-curl": {
            $0.kubernetesCurl = $1; return nil
        },
    ]

    private static func integer(
        _ path: any WritableKeyPath<ServiceConfiguration, Int> & Sendable, _ range: ClosedRange<Int>
    ) -> @Sendable (inout ServiceConfiguration, String) -> String? {
        { config, value in
            guard let number = Int(value), range.contains(number) else {
                return "expected an integer in \(range.lowerBound)...\(range.upperBound), found '\(value)'"
            }
            config[keyPath: path] = number
            return nil
        }
    }

    /// The setting names, sorted (for help and errors); `webhook.NAME` and `exec.NAME` besides.
    public static var keyNames: [String] { keys.keys.sorted() }

    /// The setter of `key`: a fixed key, or a ladder step's `webhook.NAME` / `exec.NAME`.
    static func setter(for key: String) -> (@Sendable (inout ServiceConfiguration, String) -> String?)? {
        if let set = keys[key] { return set }
        for kind in ["webhook", "exec"] where key.hasPrefix(kind + ".") {
            let name = key.dropFirst(kind.count + 1)
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                return nil
            }
            return { config, value in
                if kind == "webhook" && !value.hasPrefix("http://") { return "expected an http:// URL, found '\(value)'" }
                config.escalations["\(kind):\(name)"] = value
                return nil
            }
        }
        return nil
    }

    /// Applies a config file's text over `self`. Lines are `key = value`, blank, or `#` comments;
    /// every problem (unknown key, key set twice, bad value, no `=`) is collected, then all thrown.
    public mutating func apply(fileText text: String, file: String) throws(InvalidConfiguration) {
        var errors: [ConfigurationError] = []
        var seen: [String: Int] = [:]
        for (index, rawLine) in text.split(
            omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }
        ).enumerated() {
            let number = index + 1
            let location = "\(file):\(number)"
            let line = rawLine.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                errors.append(ConfigurationError(location: location, message: "expected 'key = value'"))
                continue
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard let set = Self.setter(for: key) else {
                errors.append(
                    ConfigurationError(
                        location: location,
                        message:
                            "unknown key '\(key)' (known: \(Self.keyNames.joined(separator: ", ")), webhook.NAME, exec.NAME)"))
                continue
            }
            if let earlier = seen[key] {
                errors.append(
                    ConfigurationError(location: location, message: "'\(key)' already set on line \(earlier)")
                )
                continue
            }
            seen[key] = number
            guard !value.isEmpty else {
                errors.append(ConfigurationError(location: location, message: "'\(key)' has no value"))
                continue
            }
            if let problem = set(&self, value) {
                errors.append(ConfigurationError(location: location, message: "\(key): \(problem)"))
            }
        }
        if !errors.isEmpty { throw InvalidConfiguration(errors: errors) }
    }

    /// Sets one setting from a command-line flag (`--window-seconds 10` is key `window-seconds`).
    public mutating func set(_ key: String, _ value: String) throws(ConfigurationError) {
        guard let set = Self.setter(for: key) else {
            throw ConfigurationError(location: "--\(key)", message: "unknown setting")
        }
        if let problem = set(&self, value) {
            throw ConfigurationError(location: "--\(key)", message: problem)
        }
    }

    /// Checks that the required settings are there.
    public func validated() throws(ConfigurationError) -> ServiceConfiguration {
        for (name, value) in [("db", databasePath), ("topology", topologyPath), ("tokens", tokensPath)]
        where value == nil {
            throw ConfigurationError(
                location: nil, message: "--\(name) is required (or '\(name) = ...' in --config)")
        }
        return self
    }
}

/// Every problem of a config file, in line order.
public struct InvalidConfiguration: Error, Sendable, Equatable, CustomStringConvertible {
    public let errors: [ConfigurationError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
