// The kubernetes action against a local HTTP server standing in for the API server's proxy (no real
// API server can run here): it checks the exact requests (paths, merge-patch content type, the
// resourceVersion guard) and keeps the node objects as the API server would.

import Foundation
import Net
import Synchronization
import Testing

@testable import Remediation

/// Nodes as the API server keeps them (as JSON); PATCH is a JSON merge patch guarded by resourceVersion.
final class FakeAPIServer: @unchecked Sendable {
    private let stored: Mutex<[String: Data]>
    let requests = Mutex<[(method: String, path: String, contentType: String?, authorization: String?, body: String)]>([])
    private var server: HTTPServer?
    private(set) var address: SocketAddress?

    /// A node's object as stored now.
    func node(_ name: String) -> [String: Any]? {
        stored.withLock { $0[name] }.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }

    init(nodes: [String: [String: Any]]) throws {
        stored = Mutex(try nodes.mapValues { try JSONSerialization.data(withJSONObject: $0) })
        var router = Router()
        router.get("/api/v1/nodes/{name}") { [self] request in
            record(request)
            let name = request.pathParameters["name"] ?? ""
            guard let data = self.stored.withLock({ $0[name] }) else { return HTTPResponse(status: 404) }
            return HTTPResponse(status: 200, body: Array(data))
        }
        router.add("PATCH", "/api/v1/nodes/{name}") { [self] request in
            record(request)
            let name = request.pathParameters["name"] ?? ""
            guard request.headers["Content-Type"] == "application/merge-patch+json" else { return HTTPResponse(status: 415) }
            let patchData = Data(request.body)
            return self.stored.withLock { stored -> HTTPResponse in
                guard let data = stored[name], var node = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                    let patch = (try? JSONSerialization.jsonObject(with: patchData)) as? [String: Any]
                else { return HTTPResponse(status: 404) }
                var metadata = node["metadata"] as? [String: Any] ?? [:]
                let version = metadata["resourceVersion"] as? String ?? "0"
                if let wanted = (patch["metadata"] as? [String: Any])?["resourceVersion"] as? String, wanted != version {
                    return HTTPResponse(status: 409)
                }
                var spec = node["spec"] as? [String: Any] ?? [:]
                for (key, value) in patch["spec"] as? [String: Any] ?? [:] { spec[key] = value }
                node["spec"] = spec
                metadata["resourceVersion"] = String((Int(version) ?? 0) + 1)
                node["metadata"] = metadata
                let written = (try? JSONSerialization.data(withJSONObject: node)) ?? Data()
                stored[name] = written
                return HTTPResponse(status: 200, body: Array(written))
            }
        }
        let server = try HTTPServer(router: router)
        address = try server.start()
        self.server = server
    }

    private func record(_ request: HTTPRequest) {
        requests.withLock {
            $0.append((
                request.method, request.target, request.headers["Content-Type"], request.headers["Authorization"],
                String(decoding: request.body, as: UTF8.self)
            ))
        }
    }

    func stop() { server?.stop() }

    static func node(_ name: String, unschedulable: Bool = false, taints: [[String: Any]] = []) -> [String: Any] {
        ["metadata": ["name": name, "resourceVersion": "7"], "spec": ["unschedulable": unschedulable, "taints": taints]]
    }
}

private func request(_ node: String) -> QuarantineRequest {
    QuarantineRequest(node: node, intent: "\(node)@2026-11-22T05:00:00Z", faultClass: "link.loss", component: node, reason: "test")
}

struct KubernetesActionTests {
    @Test func cordonAndTaintThenReleaseOnlyOurs() throws {
        let api = try FakeAPIServer(nodes: [
            "gpu-1": FakeAPIServer.node("gpu-1", taints: [["key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"]])
        ])
        defer { api.stop() }
        let action = try KubernetesAction(proxy: "http://\(api.address!)", token: "t0k")
        let state = try action.quarantine(request("gpu-1"))
        #expect(state.quarantined && state.ours)
        let patch = try #require(api.requests.withLock { $0.first { $0.method == "PATCH" } })
        #expect(patch.path == "/api/v1/nodes/gpu-1" && patch.contentType == "application/merge-patch+json")
        #expect(patch.body.contains("\"resourceVersion\":\"7\"") && patch.authorization == "Bearer t0k")
        // The site's own taint is kept beside ours.
        let taints = KubernetesAction.taints(of: try #require(api.node("gpu-1")))
        #expect(taints.compactMap { $0["key"] as? String } == ["nvidia.com/gpu", "faultline.io/quarantine"])
        #expect(taints.last?["value"] as? String == "link.loss" && taints.last?["effect"] as? String == "NoSchedule")
        // Again: nothing changes.
        _ = try action.quarantine(request("gpu-1"))
        #expect(api.requests.withLock { $0.filter { $0.method == "PATCH" }.count } == 1)
        // Release: uncordoned, our taint gone, theirs kept.
        #expect(try !action.release(node: "gpu-1").quarantined)
        let after = try #require(api.node("gpu-1"))
        #expect((after["spec"] as? [String: Any])?["unschedulable"] as? Bool == false)
        #expect(KubernetesAction.taints(of: after).compactMap { $0["key"] as? String } == ["nvidia.com/gpu"])
    }

    @Test func aNodeCordonedBySomeoneElseIsLeftAlone() throws {
        let api = try FakeAPIServer(nodes: ["gpu-2": FakeAPIServer.node("gpu-2", unschedulable: true)])
        defer { api.stop() }
        let action = try KubernetesAction(proxy: "http://\(api.address!)", token: nil)
        #expect(throws: ActionError.self) { try action.quarantine(request("gpu-2")) }
        #expect(throws: ActionError.self) { try action.release(node: "gpu-2") }
        #expect(api.requests.withLock { $0.allSatisfy { $0.method == "GET" } })
        #expect(throws: ActionError.self) { try action.status(node: "gpu-404") }
        #expect(throws: ActionError.self) { try KubernetesAction(proxy: "https://10.0.0.1:6443", token: nil) }
    }
}
