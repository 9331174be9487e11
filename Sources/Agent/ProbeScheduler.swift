// The probe scheduler and aggregator as a pure state machine: time (monotonic nanoseconds) and
// events in, probe orders and finished window reports out. Per target a rate with seeded jitter; a
// cap on probes in flight; a timeout that counts a probe lost; per (src, dst) a sketch of RTTs in µs
// and sent/lost/errors; windows aligned to multiples of windowSeconds since the epoch, each closed
// once every probe sent in it has a reply or has timed out. No clock, no I/O, no threads.

import FleetModel
import Foundation
import QuantileSketch

/// How the scheduler paces and judges probes.
public struct SchedulerSettings: Hashable, Sendable {
    public var windowSeconds: Int
    /// Probes per second to a loopback target (src == dst).
    public var loopbackRate: Double
    /// Probes per second to any other target (intra-host and peers).
    public var peerRate: Double
    /// Each gap between two probes of a target is the rate's interval times 1 ± jitter (uniform).
    public var jitter: Double
    /// The most probes without a reply or timeout at once; a probe due beyond it is skipped (counted).
    public var maxInFlight: Int
    public var timeoutNanoseconds: UInt64
    public var seed: UInt64

    public init(
        windowSeconds: Int = 10, loopbackRate: Double = 10, peerRate: Double = 2, jitter: Double = 0.2,
        maxInFlight: Int = 4096, timeoutNanoseconds: UInt64 = 500_000_000, seed: UInt64 = 1
    ) {
        self.windowSeconds = windowSeconds
        self.loopbackRate = loopbackRate
        self.peerRate = peerRate
        self.jitter = jitter
        self.maxInFlight = maxInFlight
        self.timeoutNanoseconds = timeoutNanoseconds
        self.seed = seed
    }

    /// Nil when valid, else what is wrong, naming the setting.
    public var problem: String? {
        if !(1...3600).contains(windowSeconds) { return "windowSeconds \(windowSeconds) is outside 1...3600" }
        if !(loopbackRate > 0 && loopbackRate <= 100_000) { return "loopbackRate must be in (0, 100000]" }
        if !(peerRate > 0 && peerRate <= 100_000) { return "peerRate must be in (0, 100000]" }
        if !(jitter >= 0 && jitter < 1) { return "jitter must be in [0, 1)" }
        if maxInFlight < 1 { return "maxInFlight must be at least 1" }
        if timeoutNanoseconds == 0 || timeoutNanoseconds >= UInt64(windowSeconds) * 1_000_000_000 {
            return "the probe timeout must be positive and shorter than the window"
        }
        return nil
    }
}

/// Totals since start, for /metrics.
public struct SchedulerCounters: Hashable, Sendable {
    public var sent = 0
    public var lost = 0
    public var errors = 0
    public var replies = 0
    /// Replies after their probe was counted lost: not counted again, in no window.
    public var late = 0
    /// Replies whose sequence this agent never sent (or already matched).
    public var unknown = 0
    /// Probes due while `maxInFlight` were outstanding: not sent.
    public var skippedAtCap = 0
    public var reports = 0

    public init() {}
}

/// One pair's figures in one window.
struct PairWindow: Sendable {
    var sent = 0
    var lost = 0
    var errors = 0
    var rtt: QuantileSketch
    var path: [SwitchName]?
}

public struct ProbeScheduler: Sendable {
    public let node: NodeName
    public private(set) var settings: SchedulerSettings
    public let transport: Report.Transport
    public let agentVersion: String
    /// Wall-clock nanoseconds since the epoch minus monotonic nanoseconds: maps monotonic times to
    /// windows. Fixed for the scheduler's life (a wall-clock step does not move windows mid-run).
    public let wallOffset: Int64
    public private(set) var counters = SchedulerCounters()

    private var targets: [ProbeTarget] = []
    private var nextDue: [UInt64] = []
    private var random: SplitMix64
    private var nextSequence: UInt64 = 1
    private struct Outstanding {
        var target: ProbeTarget
        var sentAt: UInt64
        var window: Int64
    }
    private var outstanding: [UInt64: Outstanding] = [:]
    /// Sequences in the order sent (so in order of sentAt): timeouts expire from the front.
    private var sentOrder: [UInt64] = []
    private var sentOrderHead = 0
    /// Open windows by index (window k starts at k * windowSeconds since the epoch).
    private var windows: [Int64: [ProbeTarget: PairWindow]] = [:]
    /// No probe is ordered at or after this time (shutdown: the end of the current window).
    private var stopAt: UInt64?

    public init(
        node: NodeName, settings: SchedulerSettings, transport: Report.Transport, agentVersion: String,
        wallOffset: Int64
    ) {
        precondition(settings.problem == nil, settings.problem ?? "")
        self.node = node
        self.settings = settings
        self.transport = transport
        self.agentVersion = agentVersion
        self.wallOffset = wallOffset
        random = SplitMix64(seed: settings.seed)
    }

    public var targetList: [ProbeTarget] { targets }
    public var inFlight: Int { outstanding.count }

    // MARK: Windows

    private var windowNanoseconds: Int64 { Int64(settings.windowSeconds) * 1_000_000_000 }

    /// The window index of a monotonic time.
    public func window(at time: UInt64) -> Int64 {
        let wall = Int64(bitPattern: time) &+ wallOffset
        return wall >= 0 ? wall / windowNanoseconds : (wall - windowNanoseconds + 1) / windowNanoseconds
    }

    /// The monotonic time window `index` starts.
    public func windowStart(_ index: Int64) -> UInt64 {
        UInt64(clamping: index * windowNanoseconds - wallOffset)
    }

    // MARK: Inputs

    /// Replaces the pairs to probe. Targets that stay keep their pace; new ones start at a seeded
    /// random phase within their interval. Probes in flight to removed targets still resolve.
    public mutating func setTargets(_ newTargets: [ProbeTarget], now: UInt64) {
        let sorted = Array(Set(newTargets)).sorted()
        var due: [UInt64] = []
        due.reserveCapacity(sorted.count)
        var old = 0
        for target in sorted {
            while old < targets.count, targets[old] < target { old += 1 }
            if old < targets.count, targets[old] == target {
                due.append(nextDue[old])
            } else {
                due.append(now + UInt64(Double(interval(target)) * random.nextUnit()))
            }
        }
        targets = sorted
        nextDue = due
    }

    /// New rates, jitter, cap or timeout (a reload). The window length and seed stay as started.
    public mutating func update(_ newSettings: SchedulerSettings) {
        var newSettings = newSettings
        newSettings.windowSeconds = settings.windowSeconds
        newSettings.seed = settings.seed
        precondition(newSettings.problem == nil, newSettings.problem ?? "")
        settings = newSettings
    }

    /// Stop ordering probes at the end of the window `now` is in; `isFinished` once that window is
    /// closed and reported.
    public mutating func finish(now: UInt64) {
        stopAt = windowStart(window(at: now) + 1)
    }

    public var isFinished: Bool { stopAt != nil && outstanding.isEmpty && windows.isEmpty }

    /// Expires timed-out probes, closes every window whose probes have all resolved, and orders the
    /// probes due by `now`. Orders are in target order; each is in flight from here on.
    public mutating func poll(now: UInt64) -> (orders: [ProbeOrder], reports: [Report]) {
        expire(now: now)
        let reports = closeWindows(now: now)
        var orders: [ProbeOrder] = []
        for index in targets.indices where nextDue[index] <= now {
            if let stopAt, now >= stopAt { break }
            let target = targets[index]
            let step = interval(target)
            var next = nextDue[index] + jittered(step)
            if next <= now { next = now + jittered(step) }  // fell behind: no burst to catch up
            nextDue[index] = next
            guard outstanding.count < settings.maxInFlight else {
                counters.skippedAtCap += 1
                continue
            }
            let sequence = nextSequence
            nextSequence += 1
            let windowIndex = window(at: now)
            outstanding[sequence] = Outstanding(target: target, sentAt: now, window: windowIndex)
            sentOrder.append(sequence)
            update(windowIndex, target) { $0.sent += 1 }
            counters.sent += 1
            orders.append(ProbeOrder(sequence: sequence, target: target, scheduledAt: now))
        }
        return (orders, reports)
    }

    /// The transport could not send `sequence`: an error, not a sent probe.
    public mutating func sendFailed(_ sequence: UInt64) {
        guard let probe = outstanding.removeValue(forKey: sequence) else { return }
        counters.sent -= 1
        counters.errors += 1
        update(probe.window, probe.target) {
            $0.sent -= 1
            $0.errors += 1
        }
    }

    public enum ReplyOutcome: Equatable, Sendable {
        case matched(rttNanoseconds: UInt64)
        case late
        case unknown
    }

    /// A reply to `reply.sequence`. Matched while the probe is in flight (its RTT goes into the
    /// window it was sent in); late once it timed out; unknown otherwise.
    @discardableResult
    public mutating func receive(_ reply: ProbeReply) -> ReplyOutcome {
        guard let probe = outstanding[reply.sequence] else {
            if reply.sequence < nextSequence, reply.sequence > 0, expired.contains(reply.sequence) {
                counters.late += 1
                return .late
            }
            counters.unknown += 1
            return .unknown
        }
        // The probe carried its own send time: use it when it is consistent with ours (the
        // transport stamps the moment of sending, a little after ordering).
        let sentAt = reply.sentAt >= probe.sentAt && reply.sentAt <= reply.receivedAt ? reply.sentAt : probe.sentAt
        guard reply.receivedAt >= sentAt else {
            counters.unknown += 1
            return .unknown
        }
        outstanding[reply.sequence] = nil
        let rtt = reply.pathTime(sentAt: sentAt)
        counters.replies += 1
        update(probe.window, probe.target) {
            try? $0.rtt.add(Double(rtt) / 1000)
        }
        return .matched(rttNanoseconds: rtt)
    }

    /// Sequences that timed out recently (bounded), so a late reply is told from a stranger's.
    private var expired = RecentSet(capacity: 65_536)

    /// When `poll` next has something to do: a probe due, a timeout, a window to close.
    public var nextDeadline: UInt64? {
        var deadline: UInt64? = nil
        func consider(_ time: UInt64) { deadline = min(deadline ?? time, time) }
        if let earliest = nextDue.min(), stopAt.map({ earliest < $0 }) ?? true { consider(earliest) }
        if sentOrderHead < sentOrder.count, let first = outstanding[sentOrder[sentOrderHead]] {
            consider(first.sentAt + settings.timeoutNanoseconds)
        }
        if let oldest = windows.keys.min() {
            consider(windowStart(oldest + 1) + settings.timeoutNanoseconds)
        }
        return deadline
    }

    // MARK: Internals

    private func interval(_ target: ProbeTarget) -> UInt64 {
        let rate = target.isLoopback ? settings.loopbackRate : settings.peerRate
        return UInt64(1e9 / rate)
    }

    private mutating func jittered(_ step: UInt64) -> UInt64 {
        let factor = 1 + settings.jitter * (2 * random.nextUnit() - 1)
        return max(1, UInt64(Double(step) * factor))
    }

    /// Changes one pair's figures in place (a copy of the window's dictionary per probe would cost
    /// O(pairs) each time).
    private mutating func update(
        _ windowIndex: Int64, _ target: ProbeTarget, _ change: (inout PairWindow) -> Void
    ) {
        change(
            &windows[windowIndex, default: [:]][
                target, default: PairWindow(rtt: Self.emptySketch, path: target.path)])
    }

    /// The default accuracy and bin limit are valid: this cannot fail.
    private static let emptySketch: QuantileSketch = {
        do { return try QuantileSketch() } catch { preconditionFailure("the default sketch: \(error)") }
    }()

    private mutating func expire(now: UInt64) {
        while sentOrderHead < sentOrder.count {
            let sequence = sentOrder[sentOrderHead]
            if let probe = outstanding[sequence] {
                guard probe.sentAt + settings.timeoutNanoseconds <= now else { break }
                outstanding[sequence] = nil
                expired.insert(sequence)
                counters.lost += 1
                update(probe.window, probe.target) { $0.lost += 1 }
            }
            sentOrderHead += 1
        }
        if sentOrderHead > 4096, sentOrderHead * 2 > sentOrder.count {
            sentOrder.removeFirst(sentOrderHead)
            sentOrderHead = 0
        }
    }

    /// Closes windows that ended at least a timeout ago (so every probe sent in them resolved).
    private mutating func closeWindows(now: UInt64) -> [Report] {
        var reports: [Report] = []
        for index in windows.keys.sorted() {
            guard windowStart(index + 1) + settings.timeoutNanoseconds <= now else { break }
            let pairs = windows.removeValue(forKey: index)!
            let wirePairs = pairs.keys.sorted().compactMap { target -> Report.Pair? in
                let pair = pairs[target]!
                guard pair.sent > 0 || pair.errors > 0 else { return nil }
                let sketch = pair.rtt.count > 0 ? WireSketch.bytes(pair.rtt.encoded()) : nil
                return Report.Pair(
                    src: target.src, dst: target.dst, sent: pair.sent, lost: pair.lost, errors: pair.errors,
                    rttMicros: sketch, path: pair.path)
            }
            guard !wirePairs.isEmpty else { continue }
            counters.reports += 1
            reports.append(
                Report(
                    node: node,
                    windowStart: Timestamp(secondsSinceEpoch: index * Int64(settings.windowSeconds)),
                    windowSeconds: settings.windowSeconds, agentVersion: agentVersion, transport: transport,
                    pairs: wirePairs))
        }
        return reports
    }
}

/// A bounded set of recent values (oldest forgotten first).
struct RecentSet: Sendable {
    private var members: Set<UInt64> = []
    private var order: [UInt64] = []
    private var head = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func contains(_ value: UInt64) -> Bool { members.contains(value) }

    mutating func insert(_ value: UInt64) {
        guard members.insert(value).inserted else { return }
        order.append(value)
        if members.count > capacity {
            members.remove(order[head])
            head += 1
            if head > capacity {
                order.removeFirst(head)
                head = 0
            }
        }
    }
}

