// Quarantine through Kubernetes: cordon (`spec.unschedulable`) and the taint
// `faultline.io/quarantine=<class>:NoSchedule`, through the API server's REST API. This build has no
// TLS client, so it talks plain HTTP to an API server proxy on the node or a sidecar (`kubectl proxy`,
// which adds the credentials and the TLS); a bearer token, when given, is sent as well. The node is
// read back after every change; the patch carries the node's resourceVersion, so a concurrent change
// by someone else makes it fail (409) rather than overwrite theirs. A node cordoned without our
// taint is someone else's: left alone. Release removes our taint, and uncordons only when we
// cordoned (our taint's presence says so).

import Foundation
import Net

public struct KubernetesAction: QuarantineAction {
    public let name = "kubernetes"
    public static let taintKey = "faultline.io/quarantine"
    public let address: SocketAddress
    public let token: String?
    public let timeout: Duration

    /// `proxy`: `http://HOST:PORT` of the API server's proxy.
    public init(proxy: String, token: String?, timeout: Duration = .seconds(10)) throws(ActionError) {
        guard proxy.hasPrefix("http://") else {
            throw ActionError(.failed, "kubernetes: only an http:// API server proxy is supported (kubectl proxy), got '\(proxy)'")
        }
        let authority = proxy.dropFirst("http://".count).prefix { $0 != "/" }
        let parts = authority.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let port = UInt16(parts[1]),
            let address = try? SocketAddress(host: String(parts[0]), port: port)
        else { throw ActionError(.failed, "kubernetes: '\(proxy)' is not http://HOST:PORT") }
        self.address = address
        self.token = token
        self.timeout = timeout
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

    private func send(_ method: String, _ path: String, body: [UInt8]?, contentType: String?) throws(ActionError)
        -> HTTPClient.Response
    {
        var headers: HTTPHeaders = ["Accept": "application/json"]
        if let contentType { headers.add("Content-Type", contentType) }
        if let token { headers.add("Authorization", "Bearer \(token)") }
        do {
            let client = try HTTPClient(connectingTo: address, timeout: timeout)
            return try client.send(method, path, headers: headers, body: body ?? [])
        } catch {
            throw ActionError(.failed, "kubernetes: \(method) \(path): \(error)")
        }
    }
}
