// The correlator's core: one store and one engine on one serial queue (the engine's executor).
// Ingest validates and authorizes on the caller's thread, then appends (committed before 202) and
// feeds the engine on the queue; a tick closes windows by an injected clock and records findings,
// window closes and node states in one transaction; at start the engine is rebuilt by replaying the
// stored reports of the recent windows through `Engine.replay`, the code `faultline replay` runs.

import Dispatch
import Engine
import FleetModel
import Foundation
import Net
import Policy
import QuantileSketch
import Store

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What the correlator is configured with: the fabric, the rules, who may talk to it.
public struct CorrelatorInputs: Sendable {
    public var topology: Topology
    /// The topology's text as read (recorded in the store's configurations).
    public var topologyText: String
    public var rules: Rules
    public var tokens: Tokens

    public init(topology: Topology, topologyText: String, rules: Rules, tokens: Tokens) {
        self.topology = topology
        self.topologyText = topologyText
        self.rules = rules
        self.tokens = tokens
    }
}

/// A node as `GET /v1/nodes` shows it.
public struct NodeStatus: Sendable, Equatable {
    public var node: NodeName
    /// `quarantined` (by Faultline's policy), `healthy`, `suspect` (an open finding names it, one of
    /// its endpoints or their links),
    /// `silent` (no report for `silent-after-windows` windows), `unknown` (never reported).
    public var state: String
    public var lastReportWindow: Timestamp?
    /// The open findings behind `suspect`, e.g. `gpu-a017/3 gpu.loopback-degraded`.
    public var reasons: [String]
}

/// Counters the correlator keeps for /metrics (besides the engine's and the server's).
public struct CorrelatorCounters: Sendable, Equatable {
    /// Responses to POST /v1/reports, by status.
    public var reportRequestsByStatus: [Int: Int] = [:]
    /// Reports by what the store did: stored, duplicate-same, conflict.
    public var reportsByOutcome: [String: Int] = [:]
    /// Reports stored but too old for the engine (before its earliest open window could be).
    public var reportsTooOld = 0
    /// Reports bodies refused because the ingest queue was full (503).
    public var ingestQueueRejections = 0
    /// Store writes that failed (a window's findings not recorded, an append answered 500).
    public var storeErrors = 0
    public var engine = EngineCounters()
    public var windowClose = DurationHistogram()
}

/// The correlator: validated, authorized reports in; findings, node states and the store out.
///
/// Threads: `ingest` and the read methods run on the caller's thread (a connection thread); the store
/// and the engine are touched only on `queue`, serially, in arrival order. Reads that must not wait
/// behind ingest (`openFindings`, `findingEvents`) use a published snapshot or a second, read-only
/// connection on a queue of its own.
public final class Correlator: Sendable {
    /// Limits and timings.
    public struct Settings: Sendable {
        public var windowSeconds = 10
        public var rebuildWindows = 16
        public var ingestQueueCapacity = 512
        public var maxReportsPerRequest = 1_000
        public var silentAfterWindows = 3

        public init() {}

        public init(_ configuration: ServiceConfiguration) {
            windowSeconds = configuration.windowSeconds
            rebuildWindows = configuration.rebuildWindows
            ingestQueueCapacity = configuration.ingestQueueCapacity
            maxReportsPerRequest = configuration.maxReportsPerRequest
            silentAfterWindows = configuration.silentAfterWindows
        }
    }

    /// What other threads may read without the engine's queue.
    struct Published: Sendable {
        var inputs: CorrelatorInputs
        /// The planner's pinglist for the topology in force.
        var pinglist: Pinglist
        /// Each open finding's latest event, sorted by component and class.
        var openFindings: [Finding] = []
        /// Whether the engine has been rebuilt and the store is open.
        var ready = false
        /// When the ticker last ran (by the service's clock).
        var lastTick: Timestamp?
    }

    /// State owned by the two queues: `store` and `persistedStates` by `storeQueue`, the rest by
    /// `queue` (the engine's). Start, rebuild and reload hold both.
    private final class QueueState {
        var store: Store?
        var persistedStates: [NodeName: NodeState] = [:]
        var engine: Engine
        var lastReport: [NodeName: Timestamp] = [:]
        var open: [OpenKey: Finding] = [:]

        init(store: Store, engine: Engine) {
            self.store = store
            self.engine = engine
        }
    }

    private struct OpenKey: Hashable, Comparable {
        let component: Component
        let faultClass: String
        static func < (a: OpenKey, b: OpenKey) -> Bool {
            (a.component, a.faultClass) < (b.component, b.faultClass)
        }
    }

    public let settings: Settings
    /// The engine's executor: every engine call runs here, one at a time, in commit order.
    public let queue: DispatchQueue
    /// The store's writer: appends (committed before 202) and window records, one at a time.
    public let storeQueue: DispatchQueue
    /// The bound on ingest work waiting for `storeQueue`.
    public let ingestQueue: WorkQueue
    /// Reports committed but not yet taken by the engine; past `maxEngineBacklog` the store's
    /// queue waits for the engine (backpressure) instead of queueing more.
    private let engineBacklog = Locked(0)
    static let maxEngineBacklog = 20_000
    public let databasePath: String
    private let clock: any ServiceClock
    private let log: ServiceLog
    /// Touched only on the queue that owns each field (the invariant that makes this `Sendable`).
    private nonisolated(unsafe) let state: QueueState
    /// A second, read-only connection for reads that must not wait behind ingest; only on `readQueue`.
    private nonisolated(unsafe) var reader: Store?
    private let readQueue = DispatchQueue(label: "faultline.correlator.reader")
    private let published: Locked<Published>
    private let counters = Locked(CorrelatorCounters())
    /// The policy and the executor; nil runs the correlator without remediation (tests).
    public let remediator: Remediator?

    /// Opens (creating and migrating when needed) the store at `databasePath`, records the topology
    /// and rules in force, and rebuilds the engine from the stored reports of the recent windows.
    public init(
        databasePath: String, inputs: CorrelatorInputs, settings: Settings = Settings(),
        clock: any ServiceClock = SystemClock(), log: ServiceLog = .silent, remediator: Remediator? = nil
    ) throws {
        self.settings = settings
        self.remediator = remediator
        self.databasePath = databasePath
        self.clock = clock
        self.log = log
        queue = DispatchQueue(label: "faultline.correlator.engine")
        storeQueue = DispatchQueue(label: "faultline.correlator.store")
        ingestQueue = WorkQueue(
            label: "faultline.correlator.ingest", capacity: settings.ingestQueueCapacity, queue: storeQueue)
        let store = try Store(path: databasePath)
        reader = try Store(path: databasePath, mode: .existing, migrate: false)
        state = QueueState(
            store: store,
            engine: Engine(
                topology: inputs.topology, rules: inputs.rules, windowSeconds: settings.windowSeconds))
        published = Locked(Published(inputs: inputs, pinglist: inputs.topology.pinglist()))
        try storeQueue.sync {
            try queue.sync {
                try recordConfiguration(inputs)
                try rebuild()
            }
        }
        published.withLock { $0.ready = true }
    }

    // MARK: Ingest

    /// What a reports request gets back.
    public struct IngestResult: Sendable, Equatable {
        public var stored = 0
        public var duplicates = 0
    }

    /// Handles one `POST /v1/reports` body (wire-v1 §3) for whoever holds `authorization`: 401 for a
    /// missing or unknown token, 400 naming the field (and line) of an invalid report, 403 for a
    /// report of another node, 413 for too many reports, 503 when the queue is full, 409 when a
    /// report conflicts with the stored one; otherwise every report is stored (committed) and the
    /// result says how many were new. Every answer is counted by status.
    public func ingest(
        body: [UInt8], contentType: String?, authorization: String?
    ) throws(HTTPError) -> IngestResult {
        do {
            let result = try ingestCounted(body: body, contentType: contentType, authorization: authorization)
            counters.withLock { $0.reportRequestsByStatus[202, default: 0] += 1 }
            return result
        } catch {
            counters.withLock { $0.reportRequestsByStatus[error.status, default: 0] += 1 }
            throw error
        }
    }

    private func ingestCounted(
        body: [UInt8], contentType: String?, authorization: String?
    ) throws(HTTPError) -> IngestResult {
        let inputs = published.withLock { $0.inputs }
        guard let principal = inputs.tokens.principal(authorization: authorization) else {
            throw HTTPError(
                401, authorization == nil ? "missing bearer token" : "unknown token", field: "Authorization",
                headers: ["WWW-Authenticate": "Bearer"])
        }
        let mediaType = contentType?.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        let reports: [Report]
        switch mediaType {
        case nil, "application/json":
            do {
                reports = [try Report(json: Data(body), topology: inputs.topology)]
            } catch {
                throw HTTPError(400, error.reason, field: error.field.isEmpty ? "body" : error.field)
            }
        case "application/x-ndjson":
            let lines = body.split(separator: UInt8(ascii: "\n")).count
            guard lines <= settings.maxReportsPerRequest else {
                throw HTTPError(
                    413,
                    "\(lines) lines, over the limit of \(settings.maxReportsPerRequest) reports a request",
                    field: "body")
            }
            do {
                reports = try Report.parseLines(Data(body), name: "line", topology: inputs.topology)
            } catch {
                let line =
                    error.location.map { $0.replacingOccurrences(of: "line:", with: "line ") + ": " } ?? ""
                throw HTTPError(400, line + error.reason, field: error.field.isEmpty ? "body" : error.field)
            }
            guard !reports.isEmpty else { throw HTTPError(400, "no report in the body", field: "body") }
        default:
            throw HTTPError(
                415, "Content-Type must be application/json or application/x-ndjson", field: "Content-Type")
        }
        if case .node(let name) = principal {
            for (index, report) in reports.enumerated() where report.node != name {
                let line =
                    reports.count > 1 || mediaType == "application/x-ndjson" ? "line \(index + 1): " : ""
                throw HTTPError(
                    403, line + "this token may report for \(name) only, not \(report.node)", field: "node")
            }
        }
        // Encoding is most of an append's cost: done here, in parallel, not on the engine's queue.
        let prepared = reports.map(PreparedReport.init)
        let outcome: Result<[AppendOutcome], any Error>?
        outcome = ingestQueue.run { Result { try self.appendAndIngest(prepared) } }
        guard let outcome else {
            counters.withLock { $0.ingestQueueRejections += 1 }
            throw HTTPError(
                503, "busy: the ingest queue is full",
                headers: ["Retry-After": "\(ingestQueue.retryAfterSeconds)"])
        }
        let outcomes: [AppendOutcome]
        switch outcome {
        case .success(let value): outcomes = value
        case .failure(let error):
            counters.withLock { $0.storeErrors += 1 }
            log.log("store-error", ["operation": .string("append"), "error": .string("\(error)")])
            throw HTTPError(500, "the store could not take the report")
        }
        counters.withLock {
            for outcome in outcomes { $0.reportsByOutcome[outcome.rawValue, default: 0] += 1 }
        }
        if let conflict = outcomes.firstIndex(of: .conflict) {
            let report = reports[conflict]
            let line =
                reports.count > 1 || mediaType == "application/x-ndjson" ? "line \(conflict + 1): " : ""
            throw HTTPError(
                409,
                line
                    + "a different report of \(report.node) for the window \(report.windowStart) is stored already",
                field: "windowStart")
        }
        var result = IngestResult()
        for outcome in outcomes {
            if outcome == .stored { result.stored += 1 } else { result.duplicates += 1 }
        }
        return result
    }

    /// On the store's queue: commit, then hand what was new to the engine's queue, in commit order.
    /// The answer does not wait for the engine (a window close there does not hold up agents).
    private func appendAndIngest(_ prepared: [PreparedReport]) throws -> [AppendOutcome] {
        dispatchPrecondition(condition: .onQueue(storeQueue))
        guard let store = state.store else { throw StoreClosed() }
        let now = clock.now()
        let outcomes = try store.append(prepared: prepared, receivedAt: now)
        let new = zip(prepared, outcomes).filter { $0.1 == .stored }.map(\.0.report)
        guard !new.isEmpty else { return outcomes }
        let backlog = engineBacklog.withLock { value -> Int in
            value += new.count
            return value
        }
        let work: @Sendable () -> Void = { [self] in ingestIntoEngine(new, now: now) }
        if backlog > Self.maxEngineBacklog { queue.sync(execute: work) } else { queue.async(execute: work) }
        return outcomes
    }

    /// Returns once the engine has taken every report committed so far.
    public func waitForEngine() {
        storeQueue.sync {}
        queue.sync {}
    }

    /// On the engine's queue: committed reports into the engine.
    private func ingestIntoEngine(_ reports: [Report], now: Timestamp) {
        dispatchPrecondition(condition: .onQueue(queue))
        var tooOld = 0
        let oldest = now.secondsSinceEpoch - Engine.maxOpenWindows * Int64(settings.windowSeconds)
        for report in reports {
            if state.lastReport[report.node].map({ $0 < report.windowStart }) ?? true {
                state.lastReport[report.node] = report.windowStart
            }
            // A window long past would make the engine close every window since (before its first
            // close it starts from the earliest report): stored for replay, not fed live.
            if report.windowStart.secondsSinceEpoch < oldest {
                tooOld += 1
            } else {
                state.engine.ingest(report)
            }
        }
        let engineCounters = state.engine.counters
        counters.withLock {
            $0.engine = engineCounters
            $0.reportsTooOld += tooOld
        }
        engineBacklog.withLock { $0 -= reports.count }
    }

    private struct StoreClosed: Error, CustomStringConvertible {
        var description: String { "the store is closed" }
    }

    // MARK: Windows

    /// Closes every window the clock says is over (plus the grace period) and records what that
    /// caused; the service's ticker calls this, tests call it after moving a manual clock.
    /// Returns once what it closed is recorded.
    public func tick() {
        queue.sync { tickOnQueue() }
        storeQueue.sync {}
    }

    private func tickOnQueue() {
        guard published.withLock({ $0.ready }) else { return }
        let now = clock.now()
        let started = ContinuousClock.now
        let before = state.engine.nextWindowToClose
        let findings = state.engine.advance(to: now)
        let after = state.engine.nextWindowToClose
        published.withLock { $0.lastTick = now }
        guard let before, let after, after > before else { return }
        let closed = windowStarts(from: before, to: after)
        let rollups = state.engine.takeRollups()
        apply(findings)
        remediator?.windowsClosed(closed, findings: findings)
        let statuses = nodeStatuses(now: now)
        let engineCounters = state.engine.counters
        counters.withLock { $0.engine = engineCounters }
        storeQueue.async { [self] in
            persist(closed: closed, findings: findings, rollups: rollups, statuses: statuses, closedAt: now)
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            counters.withLock { $0.windowClose.observe(seconds) }
            log.log(
                "windows-closed",
                [
                    "from": .string(before.description), "count": .number(Double(closed.count)),
                    "events": .number(Double(findings.count)),
                    "seconds": .number((seconds * 1e4).rounded() / 1e4),
                ])
        }
    }

    private func windowStarts(from: Timestamp, to: Timestamp) -> [Timestamp] {
        stride(
            from: from.secondsSinceEpoch, to: to.secondsSinceEpoch, by: Int(settings.windowSeconds)
        ).map { Timestamp(secondsSinceEpoch: $0) }
    }

    /// On the engine's queue: findings events into the open findings, published.
    private func apply(_ findings: [Finding]) {
        for finding in findings {
            let key = OpenKey(component: finding.component, faultClass: finding.faultClass)
            if let previous = finding.previousClass {
                state.open[OpenKey(component: finding.component, faultClass: previous)] = nil
            }
            if finding.event == .closed { state.open[key] = nil } else { state.open[key] = finding }
        }
        let openFindings = state.open.keys.sorted().map { state.open[$0]! }
        published.withLock { $0.openFindings = openFindings }
    }

    /// On the store's queue: closed windows with their findings and the node states that changed,
    /// in one transaction; then the windows' rollups, for the weekly report.
    private func persist(
        closed: [Timestamp], findings: [Finding], rollups: [WindowRollup], statuses: [NodeStatus], closedAt: Timestamp
    ) {
        var byWindow: [Timestamp: [Finding]] = [:]
        for finding in findings { byWindow[finding.window, default: []].append(finding) }
        let windows = closed.map { (start: $0, findings: byWindow[$0] ?? []) }
        let lastClosed = closed.last ?? closedAt
        var changed: [NodeState] = []
        for status in statuses {
            let previous = state.persistedStates[status.node]
            guard previous?.state != status.state || previous?.lastReportWindow != status.lastReportWindow
            else { continue }
            let since = previous?.state == status.state ? previous!.since : lastClosed
            let node = NodeState(
                node: status.node, state: status.state, since: since,
                lastReportWindow: status.lastReportWindow,
                reason: status.reasons.isEmpty ? nil : status.reasons.joined(separator: "; "))
            changed.append(node)
        }
        do {
            try state.store?.recordWindowsClosed(
                windows, seconds: settings.windowSeconds, closedAt: closedAt, nodeStates: changed)
            for node in changed { state.persistedStates[node.node] = node }
            try state.store?.record(rollups: rollups)
        } catch {
            counters.withLock { $0.storeErrors += 1 }
            log.log("store-error", ["operation": .string("close-windows"), "error": .string("\(error)")])
        }
    }

    // MARK: Start and reload

    private func recordConfiguration(_ inputs: CorrelatorInputs) throws {
        let now = clock.now()
        try state.store?.recordConfiguration(.topology, text: inputs.topologyText, effectiveFrom: now)
        try state.store?.recordConfiguration(
            .rules, text: inputs.rules.canonicalText, effectiveFrom: now)
    }

    /// Replays the stored reports of the last `rebuildWindows` windows through a fresh engine with
    /// `Engine.replay` (as `faultline replay` does), then closes what the clock says is over.
    /// Windows the store already records as closed are not recorded again.
    private func rebuild() throws {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let store = state.store else { return }
        let started = ContinuousClock.now
        let inputs = published.withLock { $0.inputs }
        state.engine = Engine(
            topology: inputs.topology, rules: inputs.rules, windowSeconds: settings.windowSeconds)
        state.engine.rollUp = true
        state.open = [:]
        for finding in try store.openFindingsLatestEvents() {
            state.open[OpenKey(component: finding.component, faultClass: finding.faultClass)] = finding
        }
        state.persistedStates = [:]
        for node in try store.nodeStates() {
            state.persistedStates[node.node] = node
            if let last = node.lastReportWindow { state.lastReport[node.node] = last }
        }
        var replayed = 0
        var findings: [Finding] = []
        var first: Timestamp?
        let now = clock.now()
        if let latest = try store.latestReportWindow() {
            // Last reports of the recent past from the log itself (node states hold older ones).
            let recent = max(settings.rebuildWindows, Int(Engine.maxOpenWindows)) * settings.windowSeconds
            for (node, window) in try store.lastReportWindows(from: latest.adding(seconds: -Int64(recent)))
            where state.lastReport[node].map({ $0 < window }) ?? true {
                state.lastReport[node] = window
            }
            let span = Int64(settings.rebuildWindows) * Int64(settings.windowSeconds)
            let oldest = now.secondsSinceEpoch - Engine.maxOpenWindows * Int64(settings.windowSeconds)
            let from = Timestamp(secondsSinceEpoch: max(latest.secondsSinceEpoch - span, oldest))
            try store.forEachReport(from: from, sketches: .compact) { report in
                if first == nil { first = report.windowStart }
                if state.lastReport[report.node].map({ $0 < report.windowStart }) ?? true {
                    state.lastReport[report.node] = report.windowStart
                }
                findings += state.engine.replay(report).findings
                replayed += 1
            }
            let alreadyClosedStarts = try first.map { try store.closedWindowStarts(from: $0) } ?? []
            // Windows the store records as closed close here too, even if new rules (a longer grace)
            // would keep them open: they must not be closed, and recorded, a second time.
            var target = now
            if let last = alreadyClosedStarts.last {
                let reopenedUntil = last.adding(
                    seconds: Int64(settings.windowSeconds) * Int64(1 + inputs.rules.graceWindows))
                target = max(target, reopenedUntil)
            }
            findings += state.engine.advance(to: target)
            // Windows recorded before keep their rollups (recording one again changes nothing).
            try store.record(rollups: state.engine.takeRollups())
            if let first, let after = state.engine.nextWindowToClose {
                let alreadyClosed = Set(alreadyClosedStarts)
                let closed = windowStarts(from: first, to: after).filter { !alreadyClosed.contains($0) }
                let closedSet = Set(closed)
                // Windows recorded as closed that the policy never stepped (the process died between
                // the store's record and the policy's step, which runs on a queue of its own): stepped
                // now, in order, with their recorded findings, before the windows closed here.
                if let remediator, let stepped = remediator.lastSteppedWindow {
                    let missed = alreadyClosedStarts.filter { $0 > stepped }
                    if let firstMissed = missed.first, let lastMissed = missed.last {
                        let recorded = try store.findingEvents(
                            from: firstMissed, to: lastMissed.adding(seconds: Int64(settings.windowSeconds)))
                        remediator.windowsClosed(missed, findings: recorded)
                    }
                }
                apply(findings.filter { closedSet.contains($0.window) })
                remediator?.windowsClosed(closed, findings: findings.filter { closedSet.contains($0.window) })
                persist(
                    closed: closed, findings: findings.filter { closedSet.contains($0.window) }, rollups: [],
                    statuses: nodeStatuses(now: now), closedAt: now)
            }
        }
        let openFindings = state.open.keys.sorted().map { state.open[$0]! }
        let engineCounters = state.engine.counters
        published.withLock {
            $0.openFindings = openFindings
            $0.lastTick = now
        }
        counters.withLock { $0.engine = engineCounters }
        log.log(
            "rebuilt",
            [
                "reports": .number(Double(replayed)), "from": first.map { .string($0.description) } ?? .null,
                "seconds": .number(((ContinuousClock.now - started) / .milliseconds(1)).rounded() / 1000),
            ])
    }

    /// Takes new inputs (SIGHUP): tokens at once; a new topology or rules rebuild the engine from
    /// the store, as at start.
    public func reload(_ inputs: CorrelatorInputs) throws {
        let previous = published.withLock { $0.inputs }
        let engineChanged =
            inputs.topologyText != previous.topologyText || inputs.rules != previous.rules
        let pinglist = engineChanged ? inputs.topology.pinglist() : published.withLock { $0.pinglist }
        try storeQueue.sync {
            try queue.sync {
                published.withLock {
                    $0.inputs = inputs
                    $0.pinglist = pinglist
                }
                if engineChanged {
                    try recordConfiguration(inputs)
                    try rebuild()
                }
            }
        }
        log.log(
            "reloaded",
            [
                "engineRebuilt": .bool(engineChanged),
                "nodesWithTokens": .number(Double(inputs.tokens.nodes.count)),
            ])
    }

    /// Stops using the store: waits for the queue's work, then closes both connections.
    public func close() {
        published.withLock { $0.ready = false }
        storeQueue.sync { state.store = nil }
        readQueue.sync { reader = nil }
    }

    // MARK: Reads

    /// Who holds `authorization`, nil when nobody.
    public func principal(authorization: String?) -> Principal? {
        published.withLock { $0.inputs.tokens }.principal(authorization: authorization)
    }

    public var topology: Topology { published.withLock { $0.inputs.topology } }
    public var pinglist: Pinglist { published.withLock { $0.pinglist } }

    /// Each open finding's latest event, by component and class (a snapshot: no waiting on ingest).
    public var openFindings: [Finding] { published.withLock { $0.openFindings } }

    /// Ready: the store is open, the engine rebuilt and caught up (fewer than `maxEngineBacklog`
    /// committed reports waiting for it), and the ticker ran within three windows.
    public var isReady: Bool {
        let (ready, lastTick) = published.withLock { ($0.ready, $0.lastTick) }
        guard ready, let lastTick, engineBacklog.withLock({ $0 }) < Self.maxEngineBacklog else {
            return false
        }
        return clock.now().secondsSinceEpoch - lastTick.secondsSinceEpoch <= 3 * Int64(settings.windowSeconds)
    }

    public var counterSnapshot: CorrelatorCounters { counters.withLock { $0 } }

    /// Every node of the topology with its state, by name (waits for the engine's queue).
    public func nodes() -> [NodeStatus] {
        queue.sync { nodeStatuses(now: clock.now()) }
    }

    private func nodeStatuses(now: Timestamp) -> [NodeStatus] {
        let topology = published.withLock { $0.inputs.topology }
        var reasons: [NodeName: [String]] = [:]
        for key in state.open.keys.sorted() {
            let text = "\(key.component) \(key.faultClass)"
            switch key.component {
            case .node(let node): reasons[node, default: []].append(text)
            case .endpoint(let endpoint): reasons[endpoint.node, default: []].append(text)
            case .link(let id):
                guard let link = topology.link(id) else { continue }
                for end in [link.a, link.b] {
                    if case .endpoint(let endpoint) = end { reasons[endpoint.node, default: []].append(text) }
                }
            case .switch: continue
            }
        }
        let silentAfter = Int64(settings.silentAfterWindows + 1) * Int64(settings.windowSeconds)
        let quarantined = remediator?.snapshot.quarantined ?? [:]
        return topology.nodes.map(\.name).sorted().map { node in
            let last = state.lastReport[node]
            var why = reasons[node] ?? []
            let status: String
            if let quarantine = quarantined[node] {
                status = "quarantined"
                why.insert("quarantined \(quarantine.id) for \(quarantine.component) \(quarantine.faultClass)", at: 0)
            } else if !why.isEmpty {
                status = "suspect"
            } else if let last {
                status = now.secondsSinceEpoch - last.secondsSinceEpoch > silentAfter ? "silent" : "healthy"
            } else {
                status = "unknown"
            }
            return NodeStatus(node: node, state: status, lastReportWindow: last, reasons: why)
        }
    }

    /// The findings stream as recorded for windows from `since` on (the read-only connection).
    public func findingEvents(since: Timestamp?) throws -> [Finding] {
        try readQueue.sync {
            guard let reader else { throw StoreClosed() }
            return try reader.findingEvents(from: since)
        }
    }

    /// A component's recorded findings events (the latest `limit`) and, for an endpoint or a node,
    /// the pairs of its node's latest stored report that involve it.
    public func componentHistory(
        _ component: Component, limit: Int = 50
    ) throws -> (findings: [Finding], report: Report?) {
        try readQueue.sync {
            guard let reader else { throw StoreClosed() }
            let findings = try reader.findingEvents(component: component, limit: limit)
            var report: Report?
            switch component {
            case .node(let node): report = try reader.latestReport(node: node)
            case .endpoint(let endpoint): report = try reader.latestReport(node: endpoint.node)
            case .link, .switch: report = nil
            }
            return (findings, report)
        }
    }

    /// The store's size on disk: the file and its WAL.
    public var storeBytes: Int64 {
        func size(_ path: String) -> Int64 {
            var status = stat()
            return stat(path, &status) == 0 ? Int64(status.st_size) : 0
        }
        return size(databasePath) + size(databasePath + "-wal")
    }
}
