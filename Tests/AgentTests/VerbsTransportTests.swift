// The verbs transport on FakeVerbs: its engine with the real ProbeScheduler on the fake's manual
// clock (loopback, NIC↔NIC and peer pairs get the fake's RTTs; lost work requests end as lost
// probes; failed posts and unaddressed peers are errors; the report says verbs-ud), the threaded
// transport (replies and a failed post come back from its thread), and the inputs' UD addresses.

import Dispatch
import FleetModel
import Foundation
import Net
import Probe
import QuantileSketch
import Testing
import Verbs

@testable import Agent

#if canImport(Glibc)
import Glibc
#endif

private func fakeDevice(_ name: String, lid: UInt16) -> DeviceInfo {
    DeviceInfo(
        name: name, guid: UInt64(lid),
        ports: [
            PortInfo(
                number: 1, state: .active, linkLayer: .infiniband, activeSpeed: 128, activeWidth: 2,
                mtu: 4096, lid: lid)
        ])
}

/// Two rails on two NICs (lids 7 and 8); peers n2/0 (answers after 1 µs) and n2/1 (every packet
/// towards it lost) as remote responders.
private func makeEngine(_ verbs: FakeVerbs) throws -> VerbsProbeEngine {
    let echo: (UInt32) -> UInt32? = { $0 & ProbeImmediate.replyBit == 0 ? $0 | ProbeImmediate.replyBit : nil }
    verbs.addRemoteResponder(
        FakeRemoteResponder(address: QueuePairAddress(lid: 20, qpNumber: 0x9001), reply: echo))
    verbs.addRemoteResponder(
        FakeRemoteResponder(address: QueuePairAddress(lid: 21, qpNumber: 0x9002), reply: echo))
    verbs.pathOverrides[0x9002] = FakeFabric(lossRate: 1)
    let engine = try VerbsProbeEngine(
        api: verbs, clock: verbs.clock, node: n1,
        rails: [VerbsRail(rail: 0, device: "mlx5_0"), VerbsRail(rail: 1, device: "mlx5_1")],
        configuration: ProbeConfiguration(spinPolls: 3, slots: 64))
    engine.setPeers(
        VerbsAddressBook([
            endpoint("n2/0"): QueuePairAddress(lid: 20, qpNumber: 0x9001),
            endpoint("n2/1"): QueuePairAddress(lid: 21, qpNumber: 0x9002),
        ]))
    return engine
}

/// Runs `scheduler` and `engine` on the fake's clock until `end`, as the agent's loop and the
/// transport's thread do together. `beforePoll` may change the fake between steps.
private func run(
    _ scheduler: inout ProbeScheduler, _ engine: VerbsProbeEngine, _ verbs: FakeVerbs, until end: UInt64,
    beforePoll: (UInt64) -> Void = { _ in }
) -> [Report] {
    var reports: [Report] = []
    while verbs.clock.nanoseconds < end {
        let now = verbs.clock.nanoseconds
        beforePoll(now)
        let (orders, closed) = scheduler.poll(now: now)
        reports += closed
        for order in orders {
            if case .failed = engine.post(order) { scheduler.sendFailed(order.sequence) }
        }
        let deadline = max(now + 1, min(scheduler.nextDeadline ?? now + 1_000_000, now + 1_000_000))
        // Returns at the first completions (the clock then stands at them), else at the deadline.
        for reply in engine.serve(until: deadline) { scheduler.receive(reply) }
    }
    return reports
}

private func verbsScheduler(_ targets: [ProbeTarget], loopbackRate: Double = 100, peerRate: Double = 50)
    -> ProbeScheduler
{
    var scheduler = ProbeScheduler(
        node: n1,
        settings: SchedulerSettings(
            windowSeconds: 1, loopbackRate: loopbackRate, peerRate: peerRate, jitter: 0.2,
            timeoutNanoseconds: 100_000_000),
        transport: .verbsUD, agentVersion: "test", wallOffset: 1_000_000 * Int64(second))
    scheduler.setTargets(targets, now: 0)
    return scheduler
}

@Suite struct VerbsTransportTests {
    @Test func loopbackNICToNICAndPeersGetTheFakesRTTsThroughTheScheduler() throws {
        let verbs = FakeVerbs(
            devices: [fakeDevice("mlx5_0", lid: 7), fakeDevice("mlx5_1", lid: 8)],
            fabric: FakeFabric(oneWayNanoseconds: 2_000))
        let engine = try makeEngine(verbs)
        let targets = [
            ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n1/0")),  // RC loopback on mlx5_0
            ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n1/1")),  // RC mlx5_0 -> mlx5_1
            ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n2/0")),  // UD, answered
            ProbeTarget(src: endpoint("n1/1"), dst: endpoint("n2/1")),  // UD, every packet lost
            ProbeTarget(src: endpoint("n1/1"), dst: endpoint("n3/0")),  // no address: errors
        ]
        var scheduler = verbsScheduler(targets)
        let reports = run(&scheduler, engine, verbs, until: 3 * second + 200_000_000)
        #expect(reports.count == 3)
        // The first window is partial (targets start at a random phase): judge the whole ones.
        for report in reports.dropFirst() {
            #expect(report.transport == .verbsUD)
            #expect(report.jsonLine.contains(#""transport":"verbs-ud""#) || report.jsonLine.contains(#""transport": "verbs-ud""#))
            let pairs = Dictionary(uniqueKeysWithValues: report.pairs.map { ("\($0.src)>\($0.dst)", $0) })
            let loop = try #require(pairs["n1/0>n1/0"])
            let nics = try #require(pairs["n1/0>n1/1"])
            let peer = try #require(pairs["n1/0>n2/0"])
            let lossy = try #require(pairs["n1/1>n2/1"])
            let unaddressed = try #require(pairs["n1/1>n3/0"])
            #expect((97...103).contains(loop.sent) && loop.lost == 0 && loop.errors == 0)
            #expect((47...53).contains(nics.sent) && nics.lost == 0)
            #expect((47...53).contains(peer.sent) && peer.lost == 0)
            // Two one-way delays of 2 µs; the peer adds its 1 µs turnaround. Sketches are ±1%.
            let (loopP50, nicsP50, peerP50) = (try quantile(loop, 0.5), try quantile(nics, 0.5), try quantile(peer, 0.5))
            #expect(abs(loopP50 - 4) <= 0.05, "\(loopP50) \(nicsP50) \(peerP50)")
            #expect(abs(try quantile(loop, 1) - 4) <= 0.05)
            #expect(abs(try quantile(nics, 0.5) - 4) <= 0.05)
            #expect(abs(try quantile(peer, 0.5) - 5) <= 0.06)
            #expect(lossy.sent > 40 && lossy.lost == lossy.sent && lossy.rttMicros == nil)
            #expect(unaddressed.sent == 0 && unaddressed.errors > 40)
        }
        #expect(scheduler.counters.late == 0 && scheduler.counters.unknown == 0)
        #expect(engine.counters.unmatchedReplies == 0)
    }

    @Test func lostRCWorkRequestsAreLostProbesAndAFailedPostIsAnError() throws {
        let verbs = FakeVerbs(
            devices: [fakeDevice("mlx5_0", lid: 7), fakeDevice("mlx5_1", lid: 8)],
            fabric: FakeFabric(oneWayNanoseconds: 2_000, lossRate: 0.1), seed: 3)
        let engine = try makeEngine(verbs)
        var scheduler = verbsScheduler(
            [ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n1/0"))], loopbackRate: 200)
        var failureInjected = false
        let reports = run(&scheduler, engine, verbs, until: 2 * second + 200_000_000) { now in
            // One post fails mid-window: an error in the report, and the next probes go on.
            if !failureInjected, now >= 1_500_000_000 {
                verbs.failNextCall("ibv_post_send", code: ENOMEM)
                failureInjected = true
            }
        }
        #expect(reports.count == 2)
        let pair = reports[1].pairs[0]
        #expect((195...205).contains(pair.sent + pair.errors))
        #expect(pair.errors == 1)
        // A lost RC send never completes: the scheduler's timeout counts it lost, nothing else.
        #expect(pair.lost > 5 && pair.lost < 60, "\(pair.lost) lost")
        let bytes = try #require(pair.rttMicros?.decodedBytes)
        #expect(Int(try QuantileSketch(decoding: bytes).count) == pair.sent - pair.lost)
        #expect(abs(try quantile(pair, 0.5) - 4) <= 0.05)
    }

    @Test func theThreadedTransportReportsRepliesAndFailedPosts() throws {
        let verbs = FakeVerbs(
            devices: [fakeDevice("mlx5_0", lid: 7), fakeDevice("mlx5_1", lid: 8)],
            fabric: FakeFabric(oneWayNanoseconds: 2_000))
        let engine = try makeEngine(verbs)
        verbs.failNextCall("ibv_post_send", code: ENOMEM)  // the first post
        let transport = try VerbsTransport(engine: engine)
        #expect(transport.kind == .verbsUD)
        #expect(
            transport.localAddresses.json
                == #"{"n1/0": {"lid": 7, "qpn": 257}, "n1/1": {"lid": 8, "qpn": 258}}"#)
        let replies = Locked<[ProbeReply]>([])
        let failures = Locked<[UInt64]>([])
        try transport.start(
            onReply: { reply in replies.withLock { $0.append(reply) } },
            onSendFailed: { order, _ in failures.withLock { $0.append(order.sequence) } })
        defer { transport.stop() }
        let targets = [
            ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n1/0")),
            ProbeTarget(src: endpoint("n1/1"), dst: endpoint("n1/0")),
            ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n2/0")),
        ]
        for sequence in UInt64(1)...30 {
            #expect(
                transport.send(ProbeOrder(sequence: sequence, target: targets[Int(sequence) % 3], scheduledAt: 0))
                    == .sent)
        }
        #expect(eventually { replies.withLock { $0.count } == 29 })
        #expect(failures.withLock { $0 } == [1])
        let got = replies.withLock { $0 }.sorted { $0.sequence < $1.sequence }
        #expect(got.map(\.sequence) == Array(2...30))
        for reply in got {
            let rtt: UInt64 = reply.sequence % 3 == 2 ? 5_000 : 4_000
            #expect(reply.receivedAt - reply.sentAt == rtt, "sequence \(reply.sequence)")
        }
    }

    @Test func addressesTakeUDQueuePairsBesideHostPort() throws {
        let data = Data(
            #"""
            {"node": "n1", "pairs": [{"src": "n1/0", "dst": "n2/0"}],
             "addresses": {"n2": "127.0.1.2:7400",
                           "n2/0": {"lid": 20, "qpn": 36865},
                           "n3/1": {"lid": 0, "qpn": 258, "gid": "fe80:0000:0000:0000:0e42:a1ff:fe2b:3c4d"}}}
            """#.utf8)
        let pinglist = try AgentPinglist.parse(data, name: "p", node: n1)
        let udp = try SocketAddress.parse("127.0.1.2:7400")
        #expect(pinglist.addresses.address(of: endpoint("n2/0")) == udp)
        #expect(pinglist.verbsAddresses.entries[endpoint("n2/0")] == QueuePairAddress(lid: 20, qpNumber: 0x9001))
        #expect(pinglist.verbsAddresses.entries[endpoint("n3/1")]?.gid?.description == "fe80:0000:0000:0000:0e42:a1ff:fe2b:3c4d")
        func refused(_ addresses: String) -> String? {
            let text = #"{"node": "n1", "pairs": [], "addresses": "# + addresses + "}"
            do {
                _ = try AgentPinglist.parse(Data(text.utf8), name: "p", node: n1)
                return nil
            } catch { return "\(error)" }
        }
        #expect(refused(#"{"n2": {"lid": 1, "qpn": 2}}"#) == "p: addresses.n2: a queue pair address belongs to an endpoint (node/rail)")
        #expect(refused(#"{"n2/0": {"lid": 1, "qpn": 0}}"#) == "p: addresses.n2/0: lid must be 0...65535 and qpn 1...16777215")
        #expect(refused(#"{"n2/0": {"lid": 1, "qpn": 2, "gid": "fe80::1"}}"#)?.hasPrefix("p: addresses.n2/0.gid:") == true)
    }

    @Test func devicesOpenOnceAndAFailedRCPairIsRetriedAfterItsBackoffWithoutLeaks() throws {
        let verbs = FakeVerbs(devices: [fakeDevice("mlx5_0", lid: 7), fakeDevice("mlx5_1", lid: 8)])
        let engine = try makeEngine(verbs)
        #expect(verbs.liveDevices == 2 && verbs.liveCompletionQueues == 2)
        let loop = ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n1/0"))
        verbs.failNextCall("ibv_create_qp", code: ENOMEM)
        #expect(engine.post(ProbeOrder(sequence: 1, target: loop, scheduledAt: 0)) != .sent)
        // Within the backoff: no new attempt, nothing opened or leaked.
        for sequence in UInt64(2)...20 {
            #expect(engine.post(ProbeOrder(sequence: sequence, target: loop, scheduledAt: 0)) != .sent)
        }
        #expect(verbs.calls["ibv_create_qp"] == 3)  // two UD pairs, one failed RC attempt
        #expect(verbs.calls["ibv_open_device"] == 2 && verbs.liveDevices == 2 && verbs.liveQueuePairs == 2)
        #expect(engine.counters.rcCreateErrors == 1)
        verbs.clock.advance(to: verbs.clock.nanoseconds + 1_000_000_000)
        #expect(engine.post(ProbeOrder(sequence: 21, target: loop, scheduledAt: 0)) == .sent)
        #expect(verbs.liveQueuePairs == 4 && verbs.calls["ibv_open_device"] == 2)
    }

    @Test func unansweredProbesAreForgottenAfterTheTimeoutAndCapped() throws {
        let verbs = FakeVerbs(devices: [fakeDevice("mlx5_0", lid: 7), fakeDevice("mlx5_1", lid: 8)])
        verbs.addRemoteResponder(
            FakeRemoteResponder(address: QueuePairAddress(lid: 21, qpNumber: 0x9002), reply: { _ in nil }))
        let engine = try VerbsProbeEngine(
            api: verbs, clock: verbs.clock, node: n1, rails: [VerbsRail(rail: 0, device: "mlx5_0")],
            configuration: ProbeConfiguration(spinPolls: 0, slots: 64), timeoutNanoseconds: 100_000_000,
            maxInFlight: 10)
        engine.setPeers(VerbsAddressBook([endpoint("n2/1"): QueuePairAddress(lid: 21, qpNumber: 0x9002)]))
        let lost = ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n2/1"))
        var sent = 0
        for sequence in UInt64(1)...30 where engine.post(ProbeOrder(sequence: sequence, target: lost, scheduledAt: 0)) == .sent {
            sent += 1
            _ = engine.serve(until: verbs.clock.nanoseconds + 1_000)
        }
        #expect(sent == 20 && engine.outstandingCount == 20 && engine.counters.outstandingDrops == 10)
        // The timeout (100 ms) plus its margin (1 s) later, all are forgotten and posts go again.
        verbs.clock.advance(to: verbs.clock.nanoseconds + 1_100_000_000)
        _ = engine.serve(until: verbs.clock.nanoseconds + 1_000)
        #expect(engine.outstandingCount == 0)
        #expect(engine.post(ProbeOrder(sequence: 31, target: lost, scheduledAt: 0)) == .sent)
    }

    @Test func noRDMAHereIsAClearError() {
        // This machine's kernel has no RDMA: the real verbs fail at the device list.
        #expect(throws: AgentError("no RDMA devices: ibv_get_device_list: Function not implemented")) {
            _ = try VerbsTransport.system(node: n1, rails: [VerbsRail(rail: 0, device: "mlx5_0")])
        }
    }
}
