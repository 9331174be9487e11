// The UDP transport on loopback addresses: two agents' sockets on 127.0.1.x probe each other, replies
// match by session and sequence, injected delay and drops happen at the responder.

import Dispatch
import FleetModel
import Foundation
import Net
import Testing
import Verbs

@testable import Agent

@Suite(.serialized) struct UDPTransportTests {
    /// Two transports, a (n1) probing b (n2) whose responder has `faults`. Returns RTTs of replies.
    func exchange(count: Int, faults: FaultPlan) throws -> (rtts: [UInt64], b: UDPTransport) {
        let b = try UDPTransport(
            node: NodeName("n2")!, listen: try SocketAddress.parse("127.0.1.2:0"), addresses: AddressBook(),
            faults: faults)
        let a = try UDPTransport(
            node: NodeName("n1")!, listen: try SocketAddress.parse("127.0.1.1:0"),
            addresses: AddressBook(["n2": b.listenAddress]), faults: .none)
        let replies = Locked<[ProbeReply]>([])
        try a.start(onReply: { reply in replies.withLock { $0.append(reply) } }, onSendFailed: { _, _ in })
        try b.start(onReply: { _ in }, onSendFailed: { _, _ in })
        defer {
            a.stop()
            b.stop()
        }
        let target = ProbeTarget(src: EndpointID("n1/0")!, dst: EndpointID("n2/1")!)
        for sequence in 1...count {
            #expect(a.send(ProbeOrder(sequence: UInt64(sequence), target: target, scheduledAt: 0)) == .sent)
            Thread.sleep(forTimeInterval: 0.001)
        }
        Thread.sleep(forTimeInterval: 0.2)
        let got = replies.withLock { $0 }
        #expect(Set(got.map(\.sequence)).count == got.count)
        return (got.map { $0.pathTime(sentAt: $0.sentAt) }, b)
    }

    @Test func repliesComeBackMatched() throws {
        let (rtts, b) = try exchange(count: 50, faults: .none)
        #expect(rtts.count == 50)
        #expect(b.counters.answered == 50)
        // The responder answers in passes 5 ms apart; the hold it reports takes that wait off, so
        // the median is the loopback path's (~0.1 ms), not half a pass.
        #expect(rtts.sorted()[25] < 1_500_000)
    }

    @Test func injectedDelayAndDrop() throws {
        let delayed = try exchange(
            count: 40, faults: FaultPlan(rules: [FaultRule(rail: 1, delayMicros: 3000)]))
        #expect(delayed.rtts.count == 40)
        // The injected delay stays in the RTT; how late a pass sent the answer does not.
        #expect(delayed.rtts.allSatisfy { (3_000_000...4_000_000).contains($0) })
        #expect(delayed.b.counters.delayed == 40)
        let dropped = try exchange(
            count: 200, faults: FaultPlan(seed: 5, rules: [FaultRule(peer: "n1/0", drop: 0.5)]))
        #expect((60...140).contains(dropped.rtts.count))
        #expect(dropped.b.counters.faultDrops == 200 - dropped.rtts.count)
        // A rule for another rail or peer leaves these probes alone.
        let other = try exchange(
            count: 20,
            faults: FaultPlan(rules: [FaultRule(rail: 0, drop: 1), FaultRule(peer: "n3", drop: 1)]))
        #expect(other.rtts.count == 20)
    }

    @Test func whatAPeersFileSaysOfANodeWinsOverThePinglistsEndpoints() throws {
        let pinglist = AddressBook([
            "n2/0": try SocketAddress.parse("10.0.0.2:7400"), "n2/1": try SocketAddress.parse("10.1.0.2:7400"),
            "n3/0": try SocketAddress.parse("10.0.0.3:7400"),
        ])
        let book = pinglist.merging(AddressBook(["n2": try SocketAddress.parse("127.0.1.2:7400")]))
        #expect(book.address(of: EndpointID("n2/0")!) == (try SocketAddress.parse("127.0.1.2:7400")))
        #expect(book.address(of: EndpointID("n2/1")!) == (try SocketAddress.parse("127.0.1.2:7400")))
        #expect(book.address(of: EndpointID("n3/0")!) == (try SocketAddress.parse("10.0.0.3:7400")))
        // An endpoint entry over a node entry: the endpoint's wins for it alone.
        let finer = book.merging(AddressBook(["n2/1": try SocketAddress.parse("10.9.0.2:7400")]))
        #expect(finer.address(of: EndpointID("n2/1")!) == (try SocketAddress.parse("10.9.0.2:7400")))
        #expect(finer.address(of: EndpointID("n2/0")!) == (try SocketAddress.parse("127.0.1.2:7400")))
    }

    @Test func stopWithoutStartReturns() throws {
        let transport = try UDPTransport(
            node: NodeName("n1")!, listen: try SocketAddress.parse("127.0.1.1:0"), addresses: AddressBook(),
            faults: .none)
        transport.stop()
        transport.stop()
    }

    @Test func aDestinationWithoutAddressIsASendFailure() throws {
        let a = try UDPTransport(
            node: NodeName("n1")!, listen: try SocketAddress.parse("127.0.1.1:0"), addresses: AddressBook(),
            faults: .none)
        let order = ProbeOrder(
            sequence: 1, target: ProbeTarget(src: EndpointID("n1/0")!, dst: EndpointID("n9/0")!),
            scheduledAt: 0)
        #expect(a.send(order) == .failed("no address for n9/0"))
    }
}
