// Quarantine through Kubernetes: cordon (`spec.unschedulable`) and the taint
// `faultline.io/quarantine=<class>:NoSchedule`, through the API server's REST API. Two ways to it:
// plain HTTP to an API server proxy (`kubectl proxy`, which adds credentials and TLS), or HTTPS to
// the API server itself with a kubeconfig's or the pod's service-account credentials. This build
// has no TLS of its own (no packages, no C library but SQLite and verbs), so HTTPS goes through the
// `curl` program, configured on its standard input (the token never appears in a command line). The
// node is read back after every change; the patch carries the node's resourceVersion, so a
// concurrent change by someone else makes it fail (409) rather than overwrite theirs. A node
// cordoned without our taint is someone else's: left alone. Release removes our taint, and
// uncordons only when we cordoned (our taint's presence says so).

import Foundation
import Net

public struct KubernetesAction: QuarantineAction {
    public let name = "kubernetes"
    public static let taintKey = "faultline.io/quarantine"
    public let endpoint: Endpoint
    public let timeout: Duration
    private let runner: any CommandRunner

    public enum Endpoint: Sendable {
        /// Plain HTTP to an API server proxy, with a bearer token when the proxy wants one.
        case proxy(SocketAddress, token: String?)
        /// HTTPS to the API server, through the curl program at `curl`.
        case apiServer(KubernetesCredentials, curl: String)
    }

    /// `proxy`: `http://HOST:PORT` of the API server's proxy.
    public init(proxy: String, token: String?, timeout: Duration = .seconds(10)) throws(ActionError) {
        guard proxy.hasPrefix("http://") else {
            throw ActionError(.failed, "kubernetes: a proxy is http://HOST:PORT (kubectl proxy), got '\(proxy)'; for https give a kubeconfig or in-cluster")
        }
        let authority = proxy.dropFirst("http://".count).prefix { $0 != "/" }
        let parts = authority.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let port = UInt16(parts[1]),
            let address = try? SocketAddress(host: String(parts[0]), port: port)
        else { throw ActionError(.failed, "kubernetes: '\(proxy)' is not http://HOST:PORT") }
        self.endpoint = .proxy(address, token: token)
        self.timeout = timeout
        self.runner = SubprocessRunner()
    }

    /// The API server itself over HTTPS, with `credentials`, through `curl`.
    public init(
        credentials: KubernetesCredentials, curl: String = "curl", timeout: Duration = .seconds(10),
        runner: any CommandRunner = SubprocessRunner(outputLimit: 4 << 20)
    ) {
        self.endpoint = .apiServer(credentials, curl: curl)
        self.timeout = timeout
        self.runner = runner
    }

    public func status(node: String) throws(ActionError) -> SchedulerState {
        try state(of: try read(node), node: node)
    }

    public func quarantine(_ request: QuarantineRequest) throws(ActionError) -> SchedulerState {
        let object = try read(request.node)
        let before = try state(of: object, node: request.node)
        if before.quarantined {
            guard before.ours else {
                throw ActionError(.notOurs, "kubernetes: \(request.node) is cordoned by someone else: left alone")
            }
            return before
        }
        var taints = Self.taints(of: object).filter { ($0["key"] as? String) != Self.taintKey }
        taints.append(["key": Self.taintKey, "value": Self.taintValue(request.faultClass), "effect": "NoSchedule"])
        try patch(request.node, object: object, unschedulable: true, taints: taints)
        let after = try status(node: request.node)
        guard after.quarantined, after.ours else {
            throw ActionError(.notVerified, "kubernetes: cordoned \(request.node) but it reads back \(after.reason)")
        }
        return after
    }

    public func release(node: String) throws(ActionError) -> SchedulerState {
        let object = try read(node)
        let before = try state(of: object, node: node)
        guard before.quarantined else { return before }
        guard before.ours else { throw ActionError(.notOurs, "kubernetes: \(node) is cordoned by someone else: left alone") }
        let taints = Self.taints(of: object).filter { ($0["key"] as? String) != Self.taintKey }
        try patch(node, object: object, unschedulable: false, taints: taints)
        let after = try status(node: node)
        guard !after.quarantined else { throw ActionError(.notVerified, "kubernetes: \(node) still reads back cordoned") }
        return after
    }

    /// Label values allow `[A-Za-z0-9._-]`, at most 63: a class like `gpu.down` fits as it is.
    static func taintValue(_ faultClass: String) -> String {
        String(faultClass.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" }.prefix(63))
    }

    static func taints(of object: [String: Any]) -> [[String: Any]] {
        ((object["spec"] as? [String: Any])?["taints"] as? [[String: Any]]) ?? []
    }

    private func state(of object: [String: Any], node: String) throws(ActionError) -> SchedulerState {
        let spec = object["spec"] as? [String: Any] ?? [:]
        let cordoned = spec["unschedulable"] as? Bool ?? false
        let ours = Self.taints(of: object).first { ($0["key"] as? String) == Self.taintKey }
        let reason = ours.map { "\(QuarantineMark.prefix) taint \(Self.taintKey)=\($0["value"] as? String ?? "")" }
            ?? (cordoned ? "cordoned" : "")
        return SchedulerState(node: node, quarantined: cordoned, ours: cordoned && ours != nil, reason: reason)
    }

    private func read(_ node: String) throws(ActionError) -> [String: Any] {
        try SlurmAction.checkName(node)
        let response = try send("GET", "/api/v1/nodes/\(node)", body: nil, contentType: nil)
        if response.status == 404 { throw ActionError(.unknownNode, "kubernetes: node \(node) not found") }
        guard response.status == 200,
            let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        else { throw ActionError(.failed, "kubernetes: GET node \(node): HTTP \(response.status)") }
        return object
    }

    /// A JSON merge patch of `spec.unschedulable` and the whole `spec.taints`, guarded by the
    /// resourceVersion read (a 409 means someone changed the node meanwhile).
    private func patch(
        _ node: String, object: [String: Any], unschedulable: Bool, taints: [[String: Any]]
    ) throws(ActionError) {
        let version = (object["metadata"] as? [String: Any])?["resourceVersion"] as? String ?? ""
        let body: [String: Any] = [
            "metadata": ["resourceVersion": version],
            "spec": ["unschedulable": unschedulable, "taints": taints],
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]) else {
            throw ActionError(.failed, "kubernetes: cannot encode the patch")
        }
        let response = try send("PATCH", "/api/v1/nodes/\(node)", body: Array(data), contentType: "application/merge-patch+json")
        guard response.status == 200 else {
            throw ActionError(
                .failed,
                response.status == 409
                    ? "kubernetes: \(node) changed while we patched it (409): not retried blindly"
                    : "kubernetes: PATCH node \(node): HTTP \(response.status)")
        }
    }

    private struct Response {
        var status: Int
        var body: [UInt8]
    }

    private func send(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws(ActionError)
        -> Response
    {
        var headers = [("Accept", "application/json")]
        if let contentType { headers.append(("Content-Type", contentType)) }
        switch endpoint {
        case .proxy(let address, let token):
            if let token { headers.append(("Authorization", "Bearer \(token)")) }
            do {
                let client = try HTTPClient(connectingTo: address, timeout: timeout)
                var httpHeaders = HTTPHeaders()
                for (name, value) in headers { httpHeaders.add(name, value) }
                let response = try client.send(method, path, headers: httpHeaders, body: body ?? [])
                return Response(status: response.status, body: response.body)
            } catch {
                throw ActionError(.failed, "kubernetes: \(method) \(path): \(error)")
            }
        case .apiServer(let credentials, let curl):
            if let token = try credentials.currentToken() { headers.append(("Authorization", "Bearer \(token)")) }
            let config = Self.curlConfig(
                method: method, url: credentials.server + path, headers: headers, body: body, credentials: credentials,
                timeout: timeout)
            let result: CommandResult
            do {
                result = try runner.run(
                    [curl, "-q", "--config", "-"], environment: [:], input: Array(config.utf8), timeout: timeout + .seconds(5))
            } catch {
                throw ActionError(.failed, "kubernetes: \(method) \(path): cannot run \(curl): \(error)")
            }
            guard result.succeeded else {
                let said = result.standardError.trimmingCharacters(in: .whitespacesAndNewlines)
                throw ActionError(
                    .failed, "kubernetes: \(method) \(path): \(said.isEmpty ? "curl \(result.outcome)" : said)")
            }
            let output = Array(result.standardOutput.utf8)
            guard let newline = output.lastIndex(of: UInt8(ascii: "\n")),
                let status = Int(String(decoding: output[(newline + 1)...], as: UTF8.self)), status > 0
            else { throw ActionError(.failed, "kubernetes: \(method) \(path): no HTTP status from curl") }
            return Response(status: status, body: Array(output[..<newline]))
        }
    }

    /// curl's configuration for one request (`curl -q --config -`): credentials stay off the command
    /// line; only https, TLS verified against the CA given; the HTTP status on a line of its own after
    /// the body.
    static func curlConfig(
        method: String, url: String, headers: [(String, String)], body: [UInt8]?, credentials: KubernetesCredentials,
        timeout: Duration
    ) -> String {
        func quoted(_ text: String) -> String {
            var out = "\""
            for character in text {
                switch character {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default: out.append(character)
                }
            }
            return out + "\""
        }
        var lines = [
            "url = \(quoted(url))", "request = \(quoted(method))", "proto = \"=https\"", "silent", "show-error",
            "max-time = \(max(1, timeout.components.seconds))", "write-out = \"\\n%{http_code}\"",
        ]
        for (name, value) in headers { lines.append("header = \(quoted("\(name): \(value)"))") }
        if let body { lines.append("data-raw = \(quoted(String(decoding: body, as: UTF8.self)))") }
        if let ca = credentials.certificateAuthority { lines.append("cacert = \(quoted(ca))") }
        if let certificate = credentials.clientCertificate { lines.append("cert = \(quoted(certificate))") }
        if let key = credentials.clientKey { lines.append("key = \(quoted(key))") }
        return lines.joined(separator: "\n") + "\n"
    }
}
