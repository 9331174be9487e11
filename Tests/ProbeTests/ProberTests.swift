// The loopback and peer probers on FakeVerbs: replies and RTTs, delays, lost work requests,
// timeouts, failed completions with reconnects, post failures, late replies, seeded loss.

@testable import Probe
import Testing
import Verbs

#if canImport(Glibc)
import Glibc
#endif

private func device(_ name: String = "mlx5_0", lid: UInt16 = 7) -> DeviceInfo {
    DeviceInfo(
        name: name, guid: 1,
        ports: [
            PortInfo(
                number: 1, state: .active, linkLayer: .infiniband, activeSpeed: 128, activeWidth: 2,
                mtu: 4096, lid: lid)
        ])
}

private let configuration = ProbeConfiguration(timeoutNanoseconds: 1_000_000, spinPolls: 3)

/// A UD prober on port 1 of `device` whose one peer, `peer`, answers at LID `lid` and `qpNumber`.
private func peerProber(
    _ verbs: FakeVerbs, _ device: String, peer: String, lid: UInt16, qpNumber: UInt32
) throws -> PeerProber {
    try PeerProber(
        api: verbs, clock: verbs.clock, deviceName: device, port: 1,
        peers: [PeerTarget(name: peer, address: QueuePairAddress(lid: lid, qpNumber: qpNumber))],
        configuration: configuration)
}

@Suite("Probers on the fake")
struct ProberTests {
    @Test("loopback: every probe answered, RTT is two one-way delays")
    func loopbackCompletes() throws {
        let verbs = FakeVerbs(devices: [device()], fabric: FakeFabric(oneWayNanoseconds: 2_000))
        let prober = try LoopbackProber(
            api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1, configuration: configuration)
        let tally = prober.probe(count: 100)
        #expect(tally.sent == 100 && tally.lost == 0 && tally.errors == 0)
        #expect(tally.rttNanoseconds == [UInt64](repeating: 4_000, count: 100))
        // Every receive consumed was posted again.
        #expect(verbs.pendingEvents <= 2)
    }

    @Test("loopback with RDMA WRITE with immediate")
    func loopbackWrite() throws {
        var writes = configuration
        writes.sendKind = .rdmaWriteWithImmediate
        let verbs = FakeVerbs(devices: [device()])
        let prober = try LoopbackProber(
            api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1, configuration: writes)
        let tally = prober.probe(count: 5)
        #expect(tally.sent == 5 && tally.lost == 0 && tally.rttNanoseconds.count == 5)
    }

    @Test("loopback: a delayed reply, a lost request (timeout) and its late reply")
    func loopbackDelayAndLoss() throws {
        let verbs = FakeVerbs(devices: [device()], fabric: FakeFabric(oneWayNanoseconds: 2_000))
        let prober = try LoopbackProber(
            api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1, configuration: configuration)
        // Probe 1: ping delayed 300 µs, pong normal. Probe 2: ping lost. Probe 3: pong arrives
        // after the timeout, while probe 4 (its ping delayed 600 µs) waits: late, not counted again.
        verbs.script = [
            .deliver(afterNanoseconds: 300_000), .deliver(afterNanoseconds: 2_000),
            .lose,
            .deliver(afterNanoseconds: 2_000), .deliver(afterNanoseconds: 1_500_000),
            .deliver(afterNanoseconds: 600_000), .deliver(afterNanoseconds: 2_000),
        ]
        let tally = prober.probe(count: 4)
        #expect(tally.sent == 4)
        #expect(tally.lost == 2)
        #expect(tally.rttNanoseconds == [302_000, 602_000])
        #expect(tally.late == 1)
    }

    @Test("loopback: a failed completion counts lost, the pair reconnects and probes on")
    func loopbackFailure() throws {
        let verbs = FakeVerbs(devices: [device()])
        let prober = try LoopbackProber(
            api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1, configuration: configuration)
        verbs.script = [.fail(.retryExceeded)]
        let tally = prober.probe(count: 3)
        #expect(tally.sent == 3 && tally.lost == 1 && tally.rttNanoseconds.count == 2)
        #expect(tally.failedCompletions >= 1)
        #expect(prober.reconnects == 1)
        // The loss was decided at the error, not by waiting out the timeout.
        #expect(verbs.clock.nanoseconds < configuration.timeoutNanoseconds)
    }

    @Test("loopback: a post that fails is an error, not a sent probe")
    func loopbackPostFailure() throws {
        let verbs = FakeVerbs(devices: [device()])
        let prober = try LoopbackProber(
            api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1, configuration: configuration)
        verbs.failNextCall("ibv_post_send", code: ENOMEM)
        let tally = prober.probe(count: 2)
        #expect(tally.errors == 1 && tally.sent == 1 && tally.lost == 0)
        #expect(tally.lastError?.call == "ibv_post_send")
    }

    @Test("loopback setup fails with the call's name; nothing is left behind")
    func loopbackSetupFailure() {
        let verbs = FakeVerbs(devices: [device()])
        verbs.failNextCall("ibv_modify_qp", code: EINVAL)
        #expect(throws: VerbsError.self) {
            _ = try LoopbackProber(api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1)
        }
        #expect(verbs.liveQueuePairs == 0)
        #expect(throws: VerbsError.self) {
            _ = try LoopbackProber(api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 2)
        }
    }

    @Test("NIC to NIC: the pair spans two devices and their CQs; replies, a failure and a reconnect")
    func nicToNIC() throws {
        let verbs = FakeVerbs(
            devices: [device("mlx5_0", lid: 7), device("mlx5_1", lid: 8)],
            fabric: FakeFabric(oneWayNanoseconds: 3_000))
        let prober = try LoopbackProber(
            api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1, responderDevice: "mlx5_1",
            responderPort: 1, configuration: configuration)
        #expect(prober.completionQueues.count == 2)
        #expect(prober.responderDeviceName == "mlx5_1" && prober.responderPort.lid == 8)
        verbs.script = [.deliver(afterNanoseconds: 3_000), .deliver(afterNanoseconds: 3_000), .fail(.retryExceeded)]
        let tally = prober.probe(count: 4)
        #expect(tally.sent == 4 && tally.lost == 1 && tally.errors == 0)
        #expect(tally.rttNanoseconds == [6_000, 6_000, 6_000])
        #expect(prober.reconnects == 1)
    }

    @Test("loopback over many seeds: sent = answered + lost, RTTs within the jitter")
    func loopbackSeeded() throws {
        for seed in UInt64(1)...20 {
            let fabric = FakeFabric(
                oneWayNanoseconds: 2_000, jitterNanoseconds: 1_000, lossRate: 0.05, failureRate: 0.01)
            let verbs = FakeVerbs(devices: [device()], fabric: fabric, seed: seed)
            let prober = try LoopbackProber(
                api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1, configuration: configuration)
            let tally = prober.probe(count: 200)
            #expect(tally.sent == 200)
            #expect(tally.sent - tally.lost == tally.rttNanoseconds.count, "seed \(seed)")
            #expect(tally.lost > 0 && tally.lost < 60, "seed \(seed): \(tally.lost) lost")
            #expect(tally.rttNanoseconds.allSatisfy { (4_000..<6_000).contains($0) }, "seed \(seed)")
            // The same seed gives the same result.
            let again = FakeVerbs(devices: [device()], fabric: fabric, seed: seed)
            let second = try LoopbackProber(
                api: again, clock: again.clock, deviceName: "mlx5_0", port: 1, configuration: configuration)
            #expect(second.probe(count: 200) == tally)
        }
    }

    @Test("peers over UD: replies matched per peer, a lossy path loses, a silent peer times out")
    func peers() throws {
        let verbs = FakeVerbs(devices: [device()], fabric: FakeFabric(oneWayNanoseconds: 5_000))
        let healthy = QueuePairAddress(lid: 20, qpNumber: 0x9001)
        let lossy = QueuePairAddress(lid: 21, qpNumber: 0x9002)
        let silent = QueuePairAddress(lid: 22, qpNumber: 0x9003)
        let echo: (UInt32) -> UInt32? = {
            $0 & ProbeImmediate.replyBit == 0 ? $0 | ProbeImmediate.replyBit : nil
        }
        verbs.addRemoteResponder(
            FakeRemoteResponder(address: healthy, turnaroundNanoseconds: 1_000, reply: echo))
        verbs.addRemoteResponder(
            FakeRemoteResponder(address: lossy, turnaroundNanoseconds: 1_000, reply: echo))
        verbs.addRemoteResponder(FakeRemoteResponder(address: silent, reply: { _ in nil }))
        verbs.pathOverrides[0x9002] = FakeFabric(oneWayNanoseconds: 5_000, lossRate: 1)
        let prober = try PeerProber(
            api: verbs, clock: verbs.clock, deviceName: "mlx5_0", port: 1,
            peers: [
                PeerTarget(name: "gpu-b/0", address: lossy), PeerTarget(name: "gpu-a/0", address: healthy),
                PeerTarget(name: "gpu-c/0", address: silent),
            ], configuration: configuration)
        for _ in 0..<3 {
            let round = prober.probeRound()
            #expect(round.map(\.peer.name) == ["gpu-a/0", "gpu-b/0", "gpu-c/0"])
            #expect(round[0].tally.sent == 1 && round[0].tally.lost == 0)
            #expect(round[0].tally.rttNanoseconds == [11_000])
            #expect(round[1].tally.sent == 1 && round[1].tally.lost == 1)
            #expect(round[2].tally.sent == 1 && round[2].tally.lost == 1)
        }
        #expect(verbs.liveAddressHandles == 3)
    }

    @Test(
        "peers: a prober answers a known peer's ping (the reply then counts late there); unknown senders are dropped"
    )
    func peersAnswer() throws {
        let verbs = FakeVerbs(devices: [
            device("mlx5_0", lid: 7), device("mlx5_1", lid: 8), device("mlx5_2", lid: 9),
        ])
        // The fake numbers queue pairs from 0x101 in creation order: A, B, C.
        let a = try peerProber(verbs, "mlx5_0", peer: "b/0", lid: 8, qpNumber: 0x102)
        let b = try peerProber(verbs, "mlx5_1", peer: "a/0", lid: 7, qpNumber: 0x101)
        let c = try peerProber(verbs, "mlx5_2", peer: "b/0", lid: 8, qpNumber: 0x102)
        #expect(a.address.qpNumber == 0x101 && b.address.qpNumber == 0x102 && c.address.qpNumber == 0x103)
        // One thread drives all three: B does not answer during A's round, so A's first ping is lost.
        #expect(a.probeRound()[0].tally.lost == 1)
        b.serve()
        #expect(b.answered == 1)
        let second = a.probeRound()[0].tally
        #expect(second.late == 1 && second.lost == 1)
        // C is not B's peer: B answers it anyway, through an address handle made from the completion.
        _ = c.probeRound()
        b.serve()
        #expect(b.unknownSenders == 1 && b.answered == 3 && b.failedAnswers == 0)
        c.serve()
        #expect(verbs.calls["ibv_create_ah_from_wc"] == 1)
    }

    @Test("peers are told apart by LID + QPN: the same QP number on another host is not the peer")
    func qpNumberCollision() throws {
        let verbs = FakeVerbs(devices: [device("mlx5_0", lid: 7), device("mlx5_1", lid: 8), device("mlx5_2", lid: 9)])
        verbs.numbersQueuePairsPerDevice = true  // each "host" numbers its QPs from 0x101
        let a = try peerProber(verbs, "mlx5_0", peer: "b/0", lid: 8, qpNumber: 0x101)
        let b = try peerProber(verbs, "mlx5_1", peer: "a/0", lid: 7, qpNumber: 0x101)
        let c = try peerProber(verbs, "mlx5_2", peer: "a/0", lid: 7, qpNumber: 0x101)
        #expect(a.address.qpNumber == 0x101 && b.address.qpNumber == 0x101 && c.address.qpNumber == 0x101)
        // C (lid 9, qpn 0x101) pings A: A must not take it for B (lid 8, qpn 0x101), and answers it.
        _ = c.probeRound()
        a.serve()
        #expect(a.unknownSenders == 1 && a.answered == 1)
        // The answer reaches C (not B) and C's next round gets its reply in time.
        let tally = c.probeRound()[0].tally
        #expect(tally.late == 1)
        b.serve()
        #expect(b.unknownSenders == 0 && b.answered == 0)
    }

    @Test("a UD queue pair in error is reset once, not spun on; its flushed receives are not reposted")
    func udQueuePairInError() throws {
        let verbs = FakeVerbs(devices: [device("mlx5_0", lid: 7), device("mlx5_1", lid: 8)])
        let a = try peerProber(verbs, "mlx5_0", peer: "b/0", lid: 8, qpNumber: 0x102)
        let b = try peerProber(verbs, "mlx5_1", peer: "a/0", lid: 7, qpNumber: 0x101)
        verbs.forceError(b.queuePair)
        let receivesBefore = verbs.calls["ibv_post_recv", default: 0]
        b.serve()  // polls the flushes: no repost (the old code reposted each, flushing again forever)
        #expect(b.resets == 1 && !b.broken)
        #expect(verbs.calls["ibv_post_recv", default: 0] - receivesBefore == configuration.slots)  // the reset's ring
        #expect(verbs.state(of: b.queuePair) == .readyToSend)
        _ = a.probeRound()
        b.serve()
        #expect(b.answered == 1 && b.failedCompletions == 0)
    }
}
