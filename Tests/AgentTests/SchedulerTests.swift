// The scheduler as a state machine on a manual clock: rates and jitter, windows aligned to the
// epoch, replies, timeouts, late replies, send failures, the in-flight cap, finishing on stop.

import FleetModel
import Foundation
import QuantileSketch
import Testing
import Verbs

@testable import Agent

let second: UInt64 = 1_000_000_000
let n1 = NodeName("n1")!
func endpoint(_ text: String) -> EndpointID { EndpointID(text)! }

/// A scheduler whose monotonic 0 is wall time 1_000_000 s (a multiple of every window length used).
func makeScheduler(_ settings: SchedulerSettings) -> ProbeScheduler {
    ProbeScheduler(
        node: n1, settings: settings, transport: .udp, agentVersion: "test",
        wallOffset: 1_000_000 * Int64(second))
}

let loopback = ProbeTarget(src: endpoint("n1/0"), dst: endpoint("n1/0"))
let peer = ProbeTarget(
    src: endpoint("n1/0"), dst: endpoint("n2/0"),
    path: [SwitchName("l1")!, SwitchName("s1")!, SwitchName("l2")!])

/// Drives `scheduler` from `clock` to `end` in `step`s, answering each probe after `rtt(order)`
/// (nil: never). Returns the reports.
func drive(
    _ scheduler: inout ProbeScheduler, _ clock: ManualClock, until end: UInt64, step: UInt64 = 1_000_000,
    rtt: (ProbeOrder) -> UInt64?
) -> [Report] {
    var reports: [Report] = []
    var pending: [(due: UInt64, reply: ProbeReply)] = []
    while clock.nanoseconds < end {
        clock.advance(by: step)
        let now = clock.nanoseconds
        for item in pending where item.due <= now { scheduler.receive(item.reply) }
        pending.removeAll { $0.due <= now }
        let (orders, closed) = scheduler.poll(now: now)
        reports += closed
        for order in orders {
            if let delay = rtt(order) {
                pending.append(
                    (now + delay, ProbeReply(sequence: order.sequence, sentAt: now, receivedAt: now + delay)))
            }
        }
    }
    return reports
}

func quantile(_ pair: Report.Pair, _ q: Double) throws -> Double {
    let bytes = try #require(pair.rttMicros?.decodedBytes)
    return try #require(try QuantileSketch(decoding: bytes).quantile(q))
}

@Suite struct SchedulerTests {
    @Test func ratesWindowsAndRTTs() throws {
        var scheduler = makeScheduler(SchedulerSettings(windowSeconds: 10, timeoutNanoseconds: 100_000_000))
        let clock = ManualClock()
        scheduler.setTargets([peer, loopback], now: 0)
        let reports = drive(&scheduler, clock, until: 20 * second + 200_000_000) { order in
            order.target.isLoopback ? 50_000 : 2_000_000
        }
        #expect(reports.count == 2)
        for (index, report) in reports.enumerated() {
            #expect(report.windowStart.secondsSinceEpoch == 1_000_000 + Int64(index) * 10)
            #expect(report.windowSeconds == 10 && report.transport == .udp && report.node == n1)
            #expect(report.pairs.map(\.dst) == [endpoint("n1/0"), endpoint("n2/0")])  // sorted
            let lo = report.pairs[0]
            let far = report.pairs[1]
            #expect((97...103).contains(lo.sent), "loopback 10/s over 10 s: \(lo.sent)")
            #expect((18...22).contains(far.sent), "peer 2/s over 10 s: \(far.sent)")
            #expect(lo.lost == 0 && far.lost == 0)
            #expect(abs(try quantile(lo, 0.5) - 50) <= 1)
            #expect(abs(try quantile(far, 0.5) - 2000) <= 20)
            #expect(far.path == peer.path && lo.path == nil)
        }
        #expect(scheduler.counters.replies == scheduler.counters.sent - scheduler.inFlight)
    }

    @Test func windowClosesOnlyAfterItsTimeout() {
        var scheduler = makeScheduler(SchedulerSettings(windowSeconds: 1, timeoutNanoseconds: 300_000_000))
        let clock = ManualClock()
        scheduler.setTargets([loopback], now: 0)
        var reports = drive(&scheduler, clock, until: second + 299_000_000) { _ in nil }
        #expect(reports.isEmpty)
        reports = drive(&scheduler, clock, until: second + 301_000_000) { _ in nil }
        #expect(reports.count == 1)
        #expect(reports.first?.pairs.first.map { $0.lost == $0.sent && $0.rttMicros == nil } == true)
    }

    @Test func lateRepliesAreCountedButInNoWindow() throws {
        var scheduler = makeScheduler(
            SchedulerSettings(windowSeconds: 1, loopbackRate: 10, jitter: 0, timeoutNanoseconds: 100_000_000))
        let clock = ManualClock()
        scheduler.setTargets([loopback], now: 0)
        // Every other probe answers after 150 ms: past the timeout, so lost, and its reply late.
        let reports = drive(&scheduler, clock, until: 3 * second + 200_000_000) { order in
            order.sequence.isMultiple(of: 2) ? 150_000_000 : 1_000_000
        }
        #expect(reports.count == 3)
        let totals = reports.flatMap(\.pairs).reduce(into: (sent: 0, lost: 0)) {
            $0.sent += $1.sent
            $0.lost += $1.lost
        }
        #expect(totals.lost == scheduler.counters.lost)
        #expect(scheduler.counters.late == scheduler.counters.lost)
        for pair in reports.flatMap(\.pairs) {
            let bytes = try #require(pair.rttMicros?.decodedBytes)
            let sketch = try QuantileSketch(decoding: bytes)
            #expect(Int(sketch.count) == pair.sent - pair.lost)  // late replies never enter a sketch
            #expect(try #require(try sketch.quantile(1)) < 2_000)
        }
        #expect(scheduler.receive(ProbeReply(sequence: 999_999, sentAt: 0, receivedAt: 1)) == .unknown)
    }

    @Test func theRespondersHoldIsTakenOffAndImpossibleTimesAreNotBelieved() throws {
        var scheduler = makeScheduler(
            SchedulerSettings(windowSeconds: 1, loopbackRate: 10, jitter: 0, timeoutNanoseconds: 100_000_000))
        scheduler.setTargets([loopback], now: 0)
        let orders = scheduler.poll(now: 200_000_000).orders
        #expect(orders.count == 1)
        let sequence = try #require(orders.first?.sequence)
        // A reply stamped before its probe was ordered (a transport's clock gone wrong) is no match.
        #expect(
            scheduler.receive(ProbeReply(sequence: sequence, sentAt: 200_000_100, receivedAt: 150_000_000))
                == .unknown)
        // 5 ms from send to arrival, 4.9 of them in the responder: the path took 100 µs.
        #expect(
            scheduler.receive(
                ProbeReply(
                    sequence: sequence, sentAt: 200_000_000, receivedAt: 205_000_000, responderHold: 4_900_000))
                == .matched(rttNanoseconds: 100_000))
        let next = try #require(scheduler.poll(now: 300_000_000).orders.first?.sequence)
        // A hold longer than the round trip is not believed: the round trip counts whole.
        #expect(
            scheduler.receive(
                ProbeReply(sequence: next, sentAt: 300_000_000, receivedAt: 301_000_000, responderHold: 9_000_000))
                == .matched(rttNanoseconds: 1_000_000))
    }

    @Test func repliesAfterTheBoundaryCountInTheWindowTheProbeWasSentIn() throws {
        var scheduler = makeScheduler(
            SchedulerSettings(windowSeconds: 1, loopbackRate: 100, jitter: 0, timeoutNanoseconds: 500_000_000)
        )
        scheduler.setTargets([loopback], now: 0)
        let clock = ManualClock()
        // 200 ms RTT: every probe of a window's last fifth is answered in the next window.
        let reports = drive(&scheduler, clock, until: 3 * second + 600_000_000) { _ in 200_000_000 }
        #expect(reports.count == 3)
        for report in reports {
            let pair = report.pairs[0]
            #expect(pair.lost == 0)
            let bytes = try #require(pair.rttMicros?.decodedBytes)
            let sketch = try QuantileSketch(decoding: bytes)
            #expect(Int(sketch.count) == pair.sent)
            #expect(abs(try #require(try sketch.quantile(0.5)) - 200_000) < 2_000)
        }
        #expect(reports.dropFirst().allSatisfy { (99...101).contains($0.pairs[0].sent) })
    }

    @Test func sendFailuresAreErrorsNotSent() {
        var scheduler = makeScheduler(
            SchedulerSettings(windowSeconds: 1, loopbackRate: 20, timeoutNanoseconds: 100_000_000))
        scheduler.setTargets([loopback], now: 0)
        var now: UInt64 = 0
        var reports: [Report] = []
        while now < 2 * second {
            now += 1_000_000
            let (orders, closed) = scheduler.poll(now: now)
            reports += closed
            for order in orders { scheduler.sendFailed(order.sequence) }
        }
        let pair = reports[0].pairs[0]
        #expect(pair.sent == 0 && pair.lost == 0 && (18...22).contains(pair.errors))
        #expect(scheduler.counters.sent == 0)
    }

    @Test func inFlightCapSkipsAndCounts() {
        var scheduler = makeScheduler(
            SchedulerSettings(
                windowSeconds: 1, loopbackRate: 100, maxInFlight: 5, timeoutNanoseconds: 500_000_000))
        scheduler.setTargets([loopback], now: 0)
        let clock = ManualClock()
        _ = drive(&scheduler, clock, until: 400_000_000) { _ in nil }
        #expect(scheduler.inFlight == 5)
        #expect(scheduler.counters.skippedAtCap > 20)
    }

    @Test func finishStopsAtTheWindowsEndAndReportsIt() {
        var scheduler = makeScheduler(SchedulerSettings(windowSeconds: 2, timeoutNanoseconds: 100_000_000))
        scheduler.setTargets([loopback, peer], now: 0)
        let clock = ManualClock()
        _ = drive(&scheduler, clock, until: 2 * second + 500_000_000) { _ in 1_000_000 }
        scheduler.finish(now: clock.nanoseconds)
        #expect(!scheduler.isFinished)
        let reports = drive(&scheduler, clock, until: 4 * second + 99_000_000) { _ in 1_000_000 }
        #expect(reports.isEmpty)  // window 0 closed before the stop; window 1 waits for its timeout
        let last = drive(&scheduler, clock, until: 4 * second + 101_000_000) { _ in 1_000_000 }
        #expect(last.map(\.windowStart.secondsSinceEpoch) == [1_000_002])
        #expect(scheduler.isFinished)
        #expect(scheduler.poll(now: 5 * second).orders.isEmpty)
    }

    @Test func sameSeedSameOrders() {
        func run(_ seed: UInt64) -> [UInt64] {
            var scheduler = makeScheduler(SchedulerSettings(windowSeconds: 1, seed: seed))
            scheduler.setTargets([loopback, peer], now: 0)
            var times: [UInt64] = []
            var now: UInt64 = 0
            while now < 3 * second {
                now += 1_000_000
                times += scheduler.poll(now: now).orders.map { _ in now }
            }
            return times
        }
        #expect(run(7) == run(7))
        #expect(run(7) != run(8))
    }

    @Test func changingTargetsKeepsThePaceOfThoseThatStay() {
        var scheduler = makeScheduler(SchedulerSettings(windowSeconds: 10, timeoutNanoseconds: 100_000_000))
        scheduler.setTargets([loopback], now: 0)
        let clock = ManualClock()
        _ = drive(&scheduler, clock, until: 5 * second) { _ in 1_000 }
        scheduler.setTargets([loopback, peer], now: clock.nanoseconds)
        let reports = drive(&scheduler, clock, until: 10 * second + 200_000_000) { _ in 1_000 }
        let pairs = reports[0].pairs
        #expect((97...103).contains(pairs[0].sent))
        #expect((8...12).contains(pairs[1].sent))
    }
}
