// What the service tests share: the small-16 scenario's fleet and reports, a token per node and an
// admin token, a temporary store, a manual clock, and calls through the router without sockets.

import Engine
import FleetModel
import Foundation
import Net
import Remediation
import Simulation
import Testing

@testable import Service

let scenariosDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scenarios")

/// The small-16 scenario (16 nodes × 4 rails, an endpoint slowed and a fabric link dead for a while).
let smallSimulator: FleetSimulator = loadSmallSimulator()

private func loadSmallSimulator() -> FleetSimulator {
    do {
        let scenario = try Scenario(
            json: Data(contentsOf: scenariosDirectory.appendingPathComponent("small-16.json")))
        return try FleetSimulator(
            scenario: scenario, topology: scenario.loadTopology(relativeTo: scenariosDirectory))
    } catch {
        fatalError("scenarios/small-16.json: \(error)")
    }
}

let adminToken = "admin-0123456789abcdef"
func nodeToken(_ node: String) -> String { "agent-\(node)-0123456789" }

func tokensText(_ topology: Topology) -> String {
    "# test tokens\n@admin \(adminToken)\n"
        + topology.nodes.map { "\($0.name) \(nodeToken($0.name.rawValue))\n" }.joined()
}

func bearer(_ token: String) -> HTTPHeaders { ["Authorization": "Bearer \(token)"] }

/// A temporary directory removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "faultline-service-\(UUID().uuidString)"
            )
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A correlator over a temporary store with the small-16 fleet, its router, and a manual clock.
final class ServiceFixture {
    let directory: TemporaryDirectory
    let simulator = smallSimulator
    let clock: ManualClock
    let inputs: CorrelatorInputs
    private(set) var correlator: Correlator
    private(set) var router: Router
    var databasePath: String { directory.path + "/faultline.db" }

    /// With `action`, the correlator runs the remediation policy and executor through it.
    let action: (any QuarantineAction)?

    init(settings: Correlator.Settings = Correlator.Settings(), action: (any QuarantineAction)? = nil) throws {
        self.action = action
        directory = try TemporaryDirectory()
        let topology = smallSimulator.topology
        inputs = CorrelatorInputs(
            topology: topology, topologyText: String(decoding: topology.jsonData(), as: UTF8.self),
            rules: .defaults, tokens: try Tokens(text: tokensText(topology), file: "tokens"))
        clock = ManualClock(smallSimulator.windowStart(0))
        correlator = try Correlator(
            databasePath: directory.path + "/faultline.db", inputs: inputs, settings: settings, clock: clock,
            remediator: try action.map { [path = directory.path + "/faultline.db", clock, inputs] action in
                try Remediator(
                    databasePath: path, topology: topology, rules: inputs.rules.policy, action: action, clock: clock,
                    log: .silent)
            })
        router = ServiceAPI.router(correlator)
    }

    /// Closes the correlator and opens a new one on the same store (a restart).
    func restart(settings: Correlator.Settings = Correlator.Settings()) throws {
        correlator.close()
        correlator = try Correlator(
            databasePath: databasePath, inputs: inputs, settings: settings, clock: clock,
            remediator: try action.map { action in
                try Remediator(
                    databasePath: databasePath, topology: inputs.topology, rules: inputs.rules.policy, action: action,
                    clock: clock, log: .silent)
            })
        router = ServiceAPI.router(correlator)
    }

    deinit {
        correlator.close()
        directory.remove()
    }

    /// One request through the router and its handler, as the server would run it.
    func call(
        _ method: String, _ target: String, headers: HTTPHeaders = [:], body: [UInt8] = []
    ) -> HTTPResponse {
        let request = HTTPRequest(method: method, target: target, headers: headers, body: body)
        switch router.resolve(request) {
        case .failed(let error): return .error(error)
        case .handler(let routed, _, let handler):
            do { return try handler(routed) } catch let error as HTTPError { return .error(error) } catch {
                return .error(500, "internal error")
            }
        }
    }

    /// POSTs one report as JSON with its node's token.
    func post(_ report: Report, token: String? = nil) -> HTTPResponse {
        post(Array(report.jsonLine.utf8), token: token ?? nodeToken(report.node.rawValue))
    }

    func post(_ body: [UInt8], token: String?, contentType: String = "application/json") -> HTTPResponse {
        var headers: HTTPHeaders = ["Content-Type": contentType]
        if let token { headers.add("Authorization", "Bearer \(token)") }
        return call("POST", "/v1/reports", headers: headers, body: body)
    }

    /// Posts every report of `window` (all must be 202), then sets the clock to the window's end and ticks.
    func feed(window: Int) {
        for report in simulator.reports(window: window) {
            let response = post(report)
            #expect(response.status == 202, "\(report.node) window \(window): \(text(response))")
        }
        clock.set(simulator.windowStart(window + 1))
        correlator.tick()
    }

    /// Moves the clock far past the last window and ticks: every window closes.
    func finish() {
        clock.set(simulator.windowStart(simulator.scenario.windows + 10))
        correlator.tick()
    }
}

func text(_ response: HTTPResponse) -> String { String(decoding: response.body, as: UTF8.self) }

/// The JSON object of a response body.
func object(_ response: HTTPResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
}

/// What replay gives for the same reports: the stream the live service must match.
func replayedFindings(_ simulator: FleetSimulator, windows: Range<Int>) -> [String] {
    var engine = Engine(
        topology: simulator.topology, rules: .defaults, windowSeconds: simulator.scenario.windowSeconds)
    var findings: [Finding] = []
    for window in windows {
        for report in simulator.reports(window: window) { findings += engine.replay(report).findings }
    }
    findings += engine.finish()
    return findings.map(\.jsonLine)
}
