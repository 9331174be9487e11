// The remediation policy on event streams: the guards cap a storm exactly, a flapping finding
// quarantines once and never flaps, approvals wait and expire, the breaker holds until reset and
// drops what went stale, fabric findings only notify, and the same stream gives the same decisions.

import Engine
import FleetModel
import Foundation
import Testing

@testable import Policy

/// 1,024 nodes × 2 rails, 32 nodes a leaf: 32 scalable units.
private let fleet = try! Topology.railOptimized(.init(nodes: 1024, rails: 2, nodesPerLeaf: 32, spines: 4))
private let windowSeconds: Int64 = 10

private func window(_ n: Int) -> Timestamp { Timestamp(secondsSinceEpoch: 1_790_000_000 + Int64(n) * windowSeconds) }

private func node(_ n: Int) -> NodeName { fleet.nodes[n].name }

private func finding(
    _ event: Finding.Event, _ component: Component, at n: Int, faultClass: String = "node.unreachable",
    confidence: Double = 0.9
) -> Finding {
    Finding(
        window: window(n), event: event, component: component, faultClass: faultClass, confidence: confidence,
        evidence: [:])
}

/// Settings that let the named guard bind alone.
private func settings(_ change: (inout PolicyRules) -> Void = { _ in }) -> PolicyRules {
    var rules = PolicyRules.defaults
    rules.maxQuarantined = 1000
    rules.maxQuarantinedShare = 1
    rules.rateBurst = 1000
    rules.ratePerHour = 100_000
    rules.leafPeriodSeconds = 1
    rules.approvalAboveLeafQuarantined = 1000
    change(&rules)
    return rules
}

private func kinds(_ decisions: [Decision]) -> [Decision.Kind: Int] {
    decisions.reduce(into: [:]) { $0[$1.kind, default: 0] += 1 }
}

struct PolicyGuardTests {
    @Test(arguments: [("count", 16), ("share", 20), ("rate", 7)])
    func aStormOnAThousandNodesQuarantinesExactlyTheCap(guardName: String, cap: Int) throws {
        let rules = settings {
            switch guardName {
            case "count": $0.maxQuarantined = cap
            case "share": $0.maxQuarantinedShare = Double(cap) / Double(fleet.nodes.count) + 1e-9
            default: $0.rateBurst = cap
            }
        }
        var policy = Policy(topology: fleet, settings: rules)
        let storm = (0..<1000).map { finding(.opened, .node(node($0)), at: 0) }
        var decisions = policy.step(window: window(0), findings: storm)
        // More windows of the same open findings: still nothing beyond the cap.
        for n in 1...20 { decisions += policy.step(window: window(n), findings: []) }
        // Approving every quarantine that waits (one per leaf and period) changes nothing: the
        // approved ones meet the open breaker.
        for waiting in decisions where waiting.kind == .awaitingApproval {
            decisions += try policy.apply(.approve(id: waiting.id), at: window(21))
        }
        for n in 22...40 { decisions += policy.step(window: window(n), findings: []) }
        let counted = kinds(decisions)
        #expect(counted[.quarantine] == cap)
        #expect(counted[.held] == 1000 - cap)
        #expect(policy.quarantined.count == cap)
        #expect(policy.breaker != nil)
    }

    @Test func aNodeWithTwoFindingsInOneWindowIsJudgedOnTheMoreConfident() throws {
        var policy = Policy(topology: fleet, settings: settings { $0.approvalBelowConfidence = 0.5 })
        let target = node(3)
        let endpoint = try #require(fleet.node(target)?.rails.first?.endpoint)
        let link = try #require(fleet.accessLink(of: endpoint))
        // The node's own finding sorts before its access link's (components order node < link) and
        // is below the approval threshold; the link's, in the same window, is sure.
        #expect(Component.node(target) < Component.link(link))
        let decisions = policy.step(
            window: window(0),
            findings: [
                finding(.opened, .node(target), at: 0, faultClass: "node.loss", confidence: 0.25),
                finding(.opened, .link(link), at: 0, faultClass: "link.loss", confidence: 0.9),
            ])
        #expect(decisions.map(\.kind) == [.quarantine])
        #expect(decisions.first?.faultClass == "link.loss")
        #expect(policy.quarantined[target] != nil)
    }

    @Test func theBreakerHoldsUntilResetAndDropsWhatWentStale() throws {
        var policy = Policy(topology: fleet, settings: settings { $0.maxQuarantined = 1 })
        var decisions = policy.step(
            window: window(0), findings: [finding(.opened, .node(node(0)), at: 0), finding(.opened, .node(node(40)), at: 0)])
        #expect(decisions.map(\.kind) == [.quarantine, .held])
        // Still held while the breaker is open, however long.
        for n in 1..<400 { decisions = policy.step(window: window(n), findings: []); #expect(decisions.isEmpty) }
        // An hour later the operator resets: the held quarantine is stale and dropped, not run.
        decisions = try policy.apply(.resetBreaker, at: window(400))
        #expect(decisions.map(\.kind) == [.breakerReset, .dropped])
        #expect(policy.step(window: window(401), findings: []).isEmpty)
        #expect(policy.quarantined.keys.sorted() == [node(0)])
    }

    @Test func aFreshHeldQuarantineRunsAfterTheResetThroughTheGuardsAgain() throws {
        var policy = Policy(topology: fleet, settings: settings { $0.maxQuarantined = 1 })
        _ = policy.step(
            window: window(0), findings: [finding(.opened, .node(node(0)), at: 0), finding(.opened, .node(node(40)), at: 0)])
        _ = try policy.apply(.release(node(0)), at: window(1))
        _ = try policy.apply(.resetBreaker, at: window(1))
        let decisions = policy.step(window: window(2), findings: [])
        #expect(decisions.map(\.kind) == [.quarantine])
        #expect(decisions.first?.node == node(40))
    }

    @Test func oneNewQuarantinePerLeafPerPeriodUnlessApproved() throws {
        var policy = Policy(topology: fleet, settings: settings { $0.leafPeriodSeconds = 3600 })
        // Nodes 0 and 1 share their leaves; node 32 is in the next scalable unit.
        let decisions = policy.step(
            window: window(0),
            findings: [0, 1, 32].map { finding(.opened, .node(node($0)), at: 0) })
        #expect(decisions.map(\.kind) == [.quarantine, .awaitingApproval, .quarantine])
        let waiting = try #require(decisions.first { $0.kind == .awaitingApproval })
        #expect(waiting.node == node(1))
        _ = try policy.apply(.approve(id: waiting.id), at: window(1))
        #expect(policy.step(window: window(2), findings: []).map(\.kind) == [.quarantine])
        #expect(policy.quarantined[node(1)] != nil)
    }

    @Test func lowConfidenceWaitsAndAnUnapprovedQuarantineLapses() throws {
        var policy = Policy(topology: fleet, settings: settings { $0.approvalExpirySeconds = 600 })
        let decisions = policy.step(
            window: window(0), findings: [finding(.opened, .node(node(5)), at: 0, confidence: 0.3)])
        #expect(decisions.map(\.kind) == [.awaitingApproval])
        var later: [Decision] = []
        for n in 1...60 { later += policy.step(window: window(n), findings: []) }
        #expect(later.map(\.kind) == [.dropped])
        #expect(throws: PolicyCommandError.self) { try policy.apply(.approve(id: decisions[0].id), at: window(61)) }
        #expect(policy.quarantined.isEmpty)
    }

    @Test func aMoreConfidentFindingTakesAWaitingQuarantineWithoutApproval() throws {
        var policy = Policy(topology: fleet, settings: settings())
        let first = policy.step(
            window: window(0), findings: [finding(.opened, .node(node(5)), at: 0, faultClass: "node.loss", confidence: 0.3)])
        #expect(first.map(\.kind) == [.awaitingApproval])
        // A less confident finding on the node changes nothing; a more confident one takes it out.
        #expect(
            policy.step(
                window: window(1),
                findings: [finding(.opened, .endpoint(EndpointID(node: node(5), rail: 0)!), at: 1, faultClass: "gpu.loss", confidence: 0.2)]
            ).isEmpty)
        let second = policy.step(
            window: window(2),
            findings: [finding(.opened, .endpoint(EndpointID(node: node(5), rail: 1)!), at: 2, faultClass: "gpu.down", confidence: 0.95)])
        #expect(second.map(\.kind) == [.quarantine])
        #expect(second.first?.id == first.first?.id, "the same quarantine, not a second one")
        #expect(second.first?.faultClass == "gpu.down")
        #expect(policy.quarantined[node(5)]?.faultClass == "gpu.down")
        #expect(policy.pending.isEmpty)
    }

    @Test func fabricFindingsNotifyAndDrainNothing() throws {
        var policy = Policy(topology: fleet, settings: settings())
        let spine = fleet.switches.first { fleet.tier(of: $0.name) == .spine }!.name
        let fabricLink = fleet.links.first { link in
            if case .switch = link.a, case .switch = link.b { return true } else { return false }
        }!
        let decisions = policy.step(
            window: window(0),
            findings: [
                finding(.opened, .switch(spine), at: 0, faultClass: "switch.loss"),
                finding(.opened, .link(fabricLink.id), at: 0, faultClass: "link.degraded"),
            ])
        #expect(decisions.map(\.kind) == [.notify, .notify])
        #expect(decisions.allSatisfy { $0.node == nil })
        // The same class again is not news; a worse class is.
        #expect(policy.step(window: window(1), findings: [finding(.updated, .switch(spine), at: 1, faultClass: "switch.loss")]).isEmpty)
        #expect(
            policy.step(window: window(2), findings: [finding(.updated, .switch(spine), at: 2, faultClass: "switch.down")])
                .map(\.kind) == [.notify])
        #expect(policy.quarantined.isEmpty)
    }

    @Test func anAccessLinkQuarantinesItsNode() throws {
        var policy = Policy(topology: fleet, settings: settings())
        let access = fleet.links.first { link in
            if case .endpoint(let endpoint) = link.a { return endpoint.node == node(7) }
            if case .endpoint(let endpoint) = link.b { return endpoint.node == node(7) }
            return false
        }!
        let decisions = policy.step(
            window: window(0), findings: [finding(.opened, .link(access.id), at: 0, faultClass: "link.loss")])
        #expect(decisions.map(\.kind) == [.quarantine])
        #expect(decisions.first?.node == node(7))
    }
}

struct PolicyReleaseTests {
    @Test func aFindingFlappingEveryThirtySecondsForAnHourQuarantinesOnceAndNeverReleases() {
        var policy = Policy(topology: fleet, settings: settings())
        var decisions: [Decision] = []
        // Opened for 3 windows, closed for 3 (a 60 s cycle: it flaps every 30 s), for an hour.
        for n in 0..<360 {
            let phase = n % 6
            let events =
                phase == 0
                ? [finding(.opened, .node(node(9)), at: n)]
                : phase == 3 ? [finding(.closed, .node(node(9)), at: n)] : []
            decisions += policy.step(window: window(n), findings: events)
        }
        #expect(kinds(decisions) == [.quarantine: 1])
        #expect(policy.quarantined[node(9)] != nil)
    }

    @Test func aCleanNodeGoesBackAfterTheCleanWindowsAndTheDelay() {
        var policy = Policy(
            topology: fleet, settings: settings { $0.releaseCleanWindows = 6; $0.releaseDelaySeconds = 300 })
        _ = policy.step(window: window(0), findings: [finding(.opened, .node(node(3)), at: 0)])
        _ = policy.step(window: window(1), findings: [finding(.closed, .node(node(3)), at: 1)])
        var released: Int?
        for n in 2..<100 where released == nil {
            if policy.step(window: window(n), findings: []).contains(where: { $0.kind == .release }) { released = n }
        }
        // Clean from window 1: six clean windows by window 6, but 300 s only at window 30.
        #expect(released == 30)
        #expect(policy.quarantined.isEmpty)
    }

    @Test func aNodeQuarantinedTooOftenIsParkedForAHuman() throws {
        var policy = Policy(
            topology: fleet,
            settings: settings {
                $0.releaseCleanWindows = 1
                $0.releaseDelaySeconds = 1
                $0.parkAfterQuarantines = 3
            })
        var decisions: [Decision] = []
        for cycle in 0..<3 {
            let start = cycle * 10
            decisions += policy.step(window: window(start), findings: [finding(.opened, .node(node(2)), at: start)])
            decisions += policy.step(window: window(start + 1), findings: [finding(.closed, .node(node(2)), at: start + 1)])
            for n in (start + 2)..<(start + 10) { decisions += policy.step(window: window(n), findings: []) }
        }
        #expect(decisions.map(\.kind) == [.quarantine, .release, .quarantine, .release, .quarantine, .parked])
        #expect(policy.quarantined[node(2)]?.parked == true)
        // Only a human brings it back.
        #expect(try policy.apply(.release(node(2)), at: window(40)).map(\.kind) == [.release])
        #expect(throws: PolicyCommandError.self) { try policy.apply(.release(node(2)), at: window(41)) }
    }

    @Test func aClassWhoseRunbookSaysManualIsParkedNotReleased() throws {
        var policy = Policy(
            topology: fleet, settings: settings { $0.releaseCleanWindows = 1; $0.releaseDelaySeconds = 1 },
            runbooks: [
                RunbookHeader(
                    faultClass: "gpu.off-bus", severity: .critical, ladder: [.init(action: "quarantine", afterSeconds: 0)],
                    release: .manual)
            ])
        var decisions = policy.step(
            window: window(0),
            findings: [
                finding(.opened, .node(node(4)), at: 0, faultClass: "gpu.off-bus"),
                finding(.opened, .node(node(40)), at: 0, faultClass: "gpu.down"),
            ])
        decisions += policy.step(
            window: window(1),
            findings: [
                finding(.closed, .node(node(4)), at: 1, faultClass: "gpu.off-bus"),
                finding(.closed, .node(node(40)), at: 1, faultClass: "gpu.down"),
            ])
        for n in 2..<10 { decisions += policy.step(window: window(n), findings: []) }
        #expect(decisions.map(\.kind) == [.quarantine, .quarantine, .parked, .release])
        #expect(decisions[2].node == node(4) && decisions[2].reason == "its runbook says a human releases it")
        #expect(policy.quarantined[node(4)]?.parked == true)
    }

    @Test func laterLadderStepsEscalateWhileTheNodeIsOutOrTheFabricFindingOpen() throws {
        let gpu = RunbookHeader(
            faultClass: "gpu.down", severity: .high,
            ladder: [
                .init(action: "quarantine", afterSeconds: 0), .init(action: "webhook:hw-ticket", afterSeconds: 1800),
                .init(action: "exec:reboot", afterSeconds: 7200),
            ], release: .auto)
        let spine = RunbookHeader(
            faultClass: "switch.loss", severity: .high,
            ladder: [.init(action: "notify", afterSeconds: 0), .init(action: "webhook:network-oncall", afterSeconds: 900)],
            release: .auto)
        var policy = Policy(
            topology: fleet, settings: settings { $0.releaseCleanWindows = 1; $0.releaseDelaySeconds = 1 },
            runbooks: [gpu, spine])
        let spineName = fleet.switches.first { fleet.tier(of: $0.name) == .spine }!.name
        var decisions = policy.step(
            window: window(0),
            findings: [
                finding(.opened, .node(node(6)), at: 0, faultClass: "gpu.down"),
                finding(.opened, .switch(spineName), at: 0, faultClass: "switch.loss"),
                finding(.opened, .switch(fleet.switches.first { fleet.tier(of: $0.name) == .spine && $0.name != spineName }!.name), at: 0, faultClass: "switch.loss"),
            ])
        // The second spine's finding closes after 10 minutes: it never escalates.
        for n in 1..<400 {
            let events =
                n == 60 ? [finding(.closed, .switch(fleet.switches.first { fleet.tier(of: $0.name) == .spine && $0.name != spineName }!.name), at: n, faultClass: "switch.loss")]
                : n == 360 ? [finding(.closed, .node(node(6)), at: n, faultClass: "gpu.down")] : []
            decisions += policy.step(window: window(n), findings: events)
        }
        let escalations = decisions.filter { $0.kind == .escalate }
        // 15 min = window 90 for the spine, 30 min = window 180 for the node; the node was released
        // at window 361, before its 2 h step.
        #expect(escalations.map(\.reason) == ["webhook:network-oncall", "webhook:hw-ticket"])
        #expect(escalations.map(\.time) == [window(90), window(180)])
        #expect(escalations[1].node == node(6) && escalations[1].id == "\(node(6))@\(window(0))")
        #expect(decisions.contains { $0.kind == .release && $0.node == node(6) })
    }

    @Test func aSavedAndRestoredPolicyDecidesAsTheOneThatKeptRunning() throws {
        var generator = SplitMix64(seed: 11)
        func events(_ n: Int) -> [Finding] {
            (0..<4).map { _ in
                let target = node(Int(generator.next() % 64))
                return finding(generator.next() % 3 == 0 ? .closed : .opened, .node(target), at: n,
                               confidence: Double(generator.next() % 100) / 100)
            }
        }
        let rules = settings { $0.maxQuarantined = 6; $0.releaseCleanWindows = 3; $0.releaseDelaySeconds = 30 }
        var running = Policy(topology: fleet, settings: rules)
        var stream: [[Finding]] = (0..<120).map(events)
        for n in 0..<60 { _ = running.step(window: window(n), findings: stream[n]) }
        _ = try running.apply(.hold(node(3)), at: window(60))
        #expect(running.breaker != nil, "the stream should trip the breaker")
        // Saved as JSON and taken back into a fresh policy...
        let saved = try JSONEncoder().encode(running.state)
        var restored = Policy(topology: fleet, settings: rules)
        restored.restore(try JSONDecoder().decode(PolicyState.self, from: saved))
        #expect(restored.state == running.state)
        // ...it decides the rest exactly as the one that kept running.
        stream = Array(stream[60...])
        for (offset, events) in stream.enumerated() {
            let n = 60 + offset
            #expect(restored.step(window: window(n), findings: events) == running.step(window: window(n), findings: events))
        }
        #expect(try restored.apply(.resetBreaker, at: window(200)) == running.apply(.resetBreaker, at: window(200)))
    }

    @Test func theSameStreamGivesTheSameDecisions() {
        func run() -> [String] {
            var policy = Policy(topology: fleet, settings: .defaults)
            var lines: [String] = []
            var generator = SplitMix64(seed: 7)
            for n in 0..<200 {
                let events = (0..<3).map { _ -> Finding in
                    let target = node(Int(generator.next() % 1024))
                    return finding(generator.next() % 3 == 0 ? .closed : .opened, .node(target), at: n,
                                   confidence: Double(generator.next() % 100) / 100)
                }
                lines += policy.step(window: window(n), findings: events).map(\.jsonLine)
            }
            return lines
        }
        let first = run()
        #expect(!first.isEmpty)
        #expect(first == run())
    }
}

struct RecordedCommandTests {
    @Test("every command's audit entry reads back as itself, with its window; older entries are unplaced, bad ones unreadable")
    func auditEntriesReadBack() throws {
        let at = Timestamp(secondsSinceEpoch: 1_795_000_123)
        let gpu = try #require(NodeName("gpu-0007"))
        let commands: [OperatorCommand] = [.approve(id: "gpu-0007@2026-11-21T10:00:00Z"), .resetBreaker, .release(gpu), .hold(gpu), .unhold(gpu)]
        for command in commands {
            for afterWindow in [nil, Timestamp(secondsSinceEpoch: 1_795_000_100)] {
                let recorded = RecordedCommand(at: at, afterWindow: afterWindow, command: command)
                #expect(RecordedCommand.read(auditEntry: recorded.auditEntry, at: at) == .command(recorded))
                #expect(OperatorCommand(verb: command.verb, target: command.target) == command)
            }
        }
        #expect(Set(OperatorCommand.verbs) == Set(commands.map(\.verb)) && OperatorCommand.verbs.count == commands.count)
        // As services before this wrote them; a window that is no time; not commands at all.
        #expect(RecordedCommand.read(auditEntry: #"{"event": "command", "command": "release(gpu-0007)"}"#, at: at) == .unplaced)
        #expect(
            RecordedCommand.read(
                auditEntry: #"{"event": "command", "verb": "release", "target": "gpu-0007", "afterWindow": "soon"}"#, at: at)
                == .unreadable)
        #expect(RecordedCommand.read(auditEntry: #"{"event": "command", "verb": "release", "target": "no such/node"}"#, at: at) == .unreadable)
        #expect(RecordedCommand.read(auditEntry: #"{"event": "command", "verb": "reboot", "target": ""}"#, at: at) == .unreadable)
        #expect(RecordedCommand.read(auditEntry: #"{"event": "intent"}"#, at: at) == .notACommand)
        #expect(RecordedCommand.read(auditEntry: "not json", at: at) == .notACommand)
    }
}
