// The live service's remediation: the policy's decisions on the windows the service closes are the
// ones a replay of the same reports gives; the dry-run action records the quarantine; the node shows
// as quarantined; the operator's admin API lists, releases, and is refused to nodes.

import Engine
import FleetModel
import Foundation
import Net
import Policy
import Remediation
import Simulation
import Store
import Testing

@testable import Service

@Suite("remediation in the service", .serialized)
struct RemediationServiceTests {
    @Test("live decisions equal the replay's; the node is quarantined in dry-run; the operator releases it")
    func liveEqualsReplayAndTheOperatorReleases() throws {
        let dryRun = DryRunAction()
        let fixture = try ServiceFixture(action: dryRun)
        let windows = fixture.simulator.scenario.windows
        for window in 0..<windows { fixture.feed(window: window) }
        fixture.finish()
        let remediator = try #require(fixture.correlator.remediator)
        remediator.waitUntilIdle()

        var reports: [Report] = []
        for window in 0..<windows { reports += fixture.simulator.reports(window: window) }
        let replayed = Replay.run(reports, topology: fixture.simulator.topology, rules: .defaults)
        #expect(!replayed.decisions.isEmpty)
        #expect(remediator.snapshot.recent.map(\.jsonLine) == replayed.decisions.map(\.jsonLine))

        // The slowed rail's node went out (dry-run), the dead fabric link only notified.
        let quarantines = replayed.decisions.filter { $0.kind == .quarantine }
        #expect(quarantines.map { $0.node?.rawValue } == ["gpu-0011"])
        #expect(replayed.decisions.contains { $0.kind == .notify && $0.component == "leaf-s1-r3~spine-00" })
        #expect(dryRun.log.first?.hasPrefix("quarantine gpu-0011 (faultline:gpu-0011@") == true)

        let list = try object(fixture.call("GET", "/v1/quarantine", headers: bearer(adminToken)))
        let out = try #require(list["quarantined"] as? [[String: Any]])
        // Still out at the end: release needs 30 clean windows and half an hour.
        let first = try #require(out.first)
        #expect(first["node"] as? String == "gpu-0011")
        let nodes = try object(fixture.call("GET", "/v1/nodes", headers: bearer(adminToken)))["nodes"] as? [[String: Any]]
        #expect(nodes?.first { $0["node"] as? String == "gpu-0011" }?["state"] as? String == "quarantined")
        // Only the operator may; then the release goes through the executor.
        #expect(fixture.call("POST", "/v1/quarantine/release/gpu-0011", headers: bearer(nodeToken("gpu-0011"))).status == 403)
        // New policy settings (SIGHUP) keep what the policy knew.
        var stricter = Rules.defaults.policy
        stricter.maxQuarantined = 0
        remediator.reload(topology: fixture.simulator.topology, rules: stricter, runbooks: [])
        #expect(remediator.snapshot.quarantined.keys.map(\.rawValue) == ["gpu-0011"])
        // A restart keeps what the policy knew: the node is still out, still Faultline's.
        try fixture.restart()
        let restarted = try #require(fixture.correlator.remediator)
        restarted.waitUntilIdle()
        #expect(restarted.snapshot.quarantined.keys.map(\.rawValue) == ["gpu-0011"])
        let released = fixture.call("POST", "/v1/quarantine/release/gpu-0011", headers: bearer(adminToken))
        #expect(released.status == 200, "\(text(released))")
        #expect(dryRun.log.last == "release gpu-0011")
        #expect(fixture.call("POST", "/v1/quarantine/release/gpu-0011", headers: bearer(adminToken)).status == 409)
        #expect(fixture.call("POST", "/v1/quarantine/approve/nothing", headers: bearer(adminToken)).status == 409)
        // The release is in the audit with the window it came after: a replay applies it there, and
        // decides what live decided, release included (a refused command is not recorded).
        let audit = try Store(path: fixture.databasePath).auditEntries()
        let commands = audit.compactMap { entry -> RecordedCommand? in
            guard case .command(let command) = RecordedCommand.read(auditEntry: entry.entry, at: entry.at) else { return nil }
            return command
        }
        #expect(commands.map(\.command) == [.release(NodeName("gpu-0011")!)])
        // The service went on closing windows past the last reports; the replay closes them too.
        let lastClosed = try #require(try Store(path: fixture.databasePath).windows().last { $0.closedAt != nil })
        #expect(commands.first?.afterWindow == lastClosed.start)
        var replayer = Replayer(topology: fixture.simulator.topology, rules: .defaults)
        // A command after a window long before the first stored report (pruned) is not applied.
        let early = RecordedCommand(
            at: fixture.simulator.windowStart(0).adding(seconds: -3_000),
            afterWindow: fixture.simulator.windowStart(0).adding(seconds: -3_600), command: .hold(NodeName("gpu-0011")!))
        replayer.add(commands: [early] + commands)
        for report in reports { replayer.add(report) }
        replayer.finish(through: lastClosed.start.adding(seconds: Int64(fixture.simulator.scenario.windowSeconds)))
        let withCommands = replayer
        #expect(withCommands.unappliedCommands.isEmpty && withCommands.refusedCommands.isEmpty)
        #expect(withCommands.commandsBeforeTheReplay == [early])
        #expect(withCommands.decisions.map(\.jsonLine) == replayed.decisions.map(\.jsonLine) + [restarted.snapshot.recent.last!.jsonLine])
        #expect(withCommands.decisions.last?.kind == .release && withCommands.decisions.last?.reason == "released by an operator")

        // Everything was written down: intents done, the audit chain intact.
        let store = try Store(path: fixture.databasePath)
        #expect(try store.allIntents().allSatisfy { $0.state == .done })
        #expect(try store.verifyAudit() > 0)
        // The quarantine's intent is audited with the finding's evidence and the guards' state.
        let intentEntry = try #require(
            try store.auditEntries().first { $0.entry.hasPrefix("{\"event\": \"intent\"") && $0.entry.contains("gpu-0011") })
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(intentEntry.entry.utf8)) as? [String: Any])
        let context = try #require(entry["context"] as? [String: Any])
        #expect((context["guards"] as? [String: Any])?["cap"] as? Int == 1)
        #expect((context["evidence"] as? [String: Any])?["runbook"] as? String == "runbooks/gpu.degraded.md")
    }

    @Test("a window recorded closed but never stepped by the policy (killed between the two) is stepped at restart")
    func aWindowRecordedButNotSteppedIsSteppedAtRestart() throws {
        let dryRun = DryRunAction()
        let fixture = try ServiceFixture(action: dryRun)
        let simulator = fixture.simulator
        var reports: [Report] = []
        for window in 0..<simulator.scenario.windows { reports += simulator.reports(window: window) }
        let replayed = Replay.run(reports, topology: simulator.topology, rules: .defaults)
        let quarantine = try #require(replayed.decisions.first { $0.kind == .quarantine })
        let window = try #require((0..<simulator.scenario.windows).first { simulator.windowStart($0) == quarantine.time })
        // Up to the window before the quarantine's, as usual; that window's reports stored too.
        for earlier in 0...window { fixture.feed(window: earlier) }
        let remediator = try #require(fixture.correlator.remediator)
        remediator.waitUntilIdle()
        #expect(remediator.lastSteppedWindow == simulator.windowStart(window - 1))
        #expect(!dryRun.log.contains { $0.hasPrefix("quarantine") })
        // The store records the quarantine's window closed with its findings, as the service does
        // just before it hands them to the policy; then the process dies.
        let store = try Store(path: fixture.databasePath)
        try store.recordWindowsClosed(
            [(start: quarantine.time, findings: replayed.events.filter { $0.window == quarantine.time })],
            seconds: simulator.scenario.windowSeconds, closedAt: quarantine.time, nodeStates: [])
        try fixture.restart()
        let restarted = try #require(fixture.correlator.remediator)
        restarted.waitUntilIdle()
        #expect(restarted.lastSteppedWindow == quarantine.time)
        #expect(restarted.snapshot.recent.map(\.jsonLine).contains(quarantine.jsonLine))
        #expect(dryRun.log.filter { $0.hasPrefix("quarantine \(quarantine.node?.rawValue ?? "")") }.count == 1)
    }
}
