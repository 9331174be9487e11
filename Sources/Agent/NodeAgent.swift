// The running agent: wires the pinglist, the scheduler, a transport (UDP, or verbs on the rails
// discovery finds), host health, the spool and uploader, the metrics endpoint and reloads together.
// Threads: the probe loop (the caller's thread in `run`), the transport's threads (UDP: receive and
// delay; verbs: the one that posts and polls), the host health queue, the upload thread,
// the pinglist refresher and the metrics server's threads. Shared state sits behind `Locked`; none
// of it runs on Swift's cooperative pool.

import Dispatch
import FleetModel
import Foundation
import Glibc
import Net
import Probe
import Verbs

/// Everything the command line gives the agent.
public struct AgentOptions: Hashable, Sendable {
    public var node: NodeName
    public var listen: SocketAddress
    public var correlator: SocketAddress
    public var tokenFile: String
    public var transport: Report.Transport = .udp
    public var windowSeconds: Int?
    public var pinglistFile: String?
    public var peersFile: String?
    public var spoolDirectory: String
    public var configFile: String?
    public var faultsFile: String?
    public var metrics: SocketAddress?
    public var agentVersion: String

    public init(
        node: NodeName, listen: SocketAddress, correlator: SocketAddress, tokenFile: String,
        spoolDirectory: String,
        agentVersion: String
    ) {
        self.node = node
        self.listen = listen
        self.correlator = correlator
        self.tokenFile = tokenFile
        self.spoolDirectory = spoolDirectory
        self.agentVersion = agentVersion
    }
}

public final class NodeAgent: Sendable {
    public let options: AgentOptions
    let log: AgentLog
    let clock = SystemMonotonicClock()
    let transport: any ProbeTransport
    /// The same transport as its own type: exactly one is set.
    let udp: UDPTransport?
    let verbs: VerbsTransport?
    let uploader: Uploader
    let scheduler: Locked<ProbeScheduler>
    /// Adds host health to each closed window's report before it goes to the uploader.
    let health: HostHealthWorker
    private let control = Locked(Control())
    private let wake = DispatchSemaphore(value: 0)
    private let refresherDone = DispatchSemaphore(value: 0)
    private let metricsServer: HTTPServer?
    private let metricsAddress: SocketAddress?
    /// What the last load of each input gave (kept when a reload fails).
    private let inputs: Locked<Inputs>

    /// The probe loop's shortest sleep.
    static let tickNanoseconds: UInt64 = 5_000_000

    struct Control: Sendable {
        var stopRequested = false
        var reloadRequested = false
        var sendFailuresLogged = 0
    }

    struct Inputs: Sendable {
        var config = AgentConfigFile()
        var pinglist: AgentPinglist?
        var peers = AddressBook()
        var verbsPeers = VerbsAddressBook()
    }

    /// Loads every input and binds the sockets; an error names the input. `health` is where host
    /// health is read from (nil: this host's sysfs, nvidia-smi on PATH and /dev/kmsg); what cannot
    /// be read there is logged and left out of the reports, never an error.
    public init(options: AgentOptions, log: AgentLog = AgentLog(), health: HostHealthSources? = nil) throws {
        self.options = options
        self.log = log
        var config = AgentConfigFile()
        if let path = options.configFile { config = try AgentConfigFile.load(path) }
        var settings = config.settings(over: SchedulerSettings(timeoutNanoseconds: 500_000_000))
        if let window = options.windowSeconds { settings.windowSeconds = window }
        if let problem = settings.problem { throw AgentError("settings: \(problem)") }
        let token = try Self.readToken(options.tokenFile)
        let faults = try options.faultsFile.map(Self.loadFaults) ?? .none
        var inputs = Inputs(config: config)
        if let path = options.peersFile { (inputs.peers, inputs.verbsPeers) = try AgentPinglist.loadPeers(path) }
        if let path = options.pinglistFile {
            inputs.pinglist = try Self.loadPinglist(path, node: options.node)
        }
        let railOverrides = try config.railOverrides()
        // Discovered once, for both the verbs transport's devices and host health.
        let discovered = Result { () throws -> [RailInfo] in
            try discoverNode(health?.sysfs ?? SysfsReader(), overrides: railOverrides).rails
        }
        if options.transport == .udp {
            let udp = try UDPTransport(
                node: options.node, listen: options.listen, addresses: AddressBook(), faults: faults)
            (transport, self.udp, verbs) = (udp, udp, nil)
        } else {
            guard options.faultsFile == nil else {
                throw AgentError("--faults: only the UDP responder injects faults (not --transport verbs)")
            }
            let verbs = try VerbsTransport.system(
                node: options.node, rails: try Self.verbsRails(discovered),
                timeoutNanoseconds: settings.timeoutNanoseconds, maxInFlight: settings.maxInFlight, log: log)
            (transport, udp, self.verbs) = (verbs, nil, verbs)
        }
        let spool = try Spool(directory: options.spoolDirectory, limits: config.spoolLimits())
        var upload = UploadSettings(correlator: options.correlator)
        if let value = config.backoff?.initialMillis { upload.initialBackoff = .milliseconds(max(1, value)) }
        if let value = config.backoff?.maxMillis { upload.maxBackoff = .milliseconds(max(1, value)) }
        uploader = Uploader(settings: upload, spool: spool, token: token, log: log)
        let wallNow = Self.wallNanoseconds()
        scheduler = Locked(
            ProbeScheduler(
                node: options.node, settings: settings, transport: transport.kind,
                agentVersion: options.agentVersion, wallOffset: wallNow - Int64(bitPattern: clock.nanoseconds)
            ))
        self.inputs = Locked(inputs)
        self.health = HostHealthWorker(
            collector: Self.healthCollector(health, rails: discovered, log: log), log: log)
        let metricsText = config.metrics ?? options.metrics.map(\.description)
        if let text = metricsText {
            let address: SocketAddress
            do { address = try SocketAddress.parse(text) } catch {
                throw AgentError("metrics address: \(error)")
            }
            var router = Router()
            let box = WeakAgent()
            router.get("/metrics") { _ in
                guard let agent = box.agent else { return .text(503, "stopping\n") }
                var response = HTTPResponse.text(200, agent.metricsText())
                response.headers = ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"]
                return response
            }
            let server: HTTPServer
            do {
                server = try HTTPServer(configuration: .init(address: address), router: router)
                metricsAddress = try server.start()
            } catch { throw AgentError("cannot serve /metrics on \(address): \(error)") }
            metricsServer = server
            box.set(self)
        } else {
            metricsServer = nil
            metricsAddress = nil
        }
        applyInputs()
    }

    /// The address /metrics is served on, if any (the kernel's port when 0 was asked for).
    public var metricsBoundAddress: SocketAddress? { metricsAddress }
    /// The UDP address bound (the kernel's port when 0 was asked for); with verbs, `--listen` as
    /// given (nothing is bound).
    public var listenAddress: SocketAddress { udp?.listenAddress ?? options.listen }

    // MARK: Control

    /// SIGTERM: finish the current window, report it, flush the spool (bounded), stop.
    public func requestStop() {
        control.withLock { $0.stopRequested = true }
        wake.signal()
    }

    /// SIGHUP: re-read the config, token, faults, peers and pinglist files.
    public func requestReload() {
        control.withLock { $0.reloadRequested = true }
        wake.signal()
    }

    /// Runs until stopped. Blocks the calling thread, which becomes the probe loop.
    public func run() throws {
        log(
            .info, "agent starting",
            [
                "node": options.node.rawValue, "listen": "\(listenAddress)",
                "transport": transport.kind.rawValue,
                "correlator": "\(options.correlator)",
                "windowSeconds": "\(scheduler.withLock { $0.settings.windowSeconds })",
                "spooled": "\(uploader.spoolDepth.reports)",
            ])
        if let verbs {
            // What peers need in their pinglist's or peers file's `addresses` to probe this node.
            log(.info, "verbs addresses", ["addresses": verbs.localAddresses.json])
        }
        try transport.start(
            onReply: { [scheduler] reply in _ = scheduler.withLock { $0.receive(reply) } },
            onSendFailed: { [self] order, reason in sendFailed(order.sequence, to: order.target.dst, reason: reason) })
        try uploader.start()
        if options.pinglistFile == nil { try startPinglistRefresher() }
        var finishing = false
        while true {
            let control = self.control.withLock { control -> Control in
                let copy = control
                control.reloadRequested = false
                return copy
            }
            if control.reloadRequested { reload() }
            let now = clock.nanoseconds
            let (orders, reports, deadline, finished) = scheduler.withLock { scheduler in
                if control.stopRequested, !finishing { scheduler.finish(now: now) }
                let (orders, reports) = scheduler.poll(now: now)
                return (orders, reports, scheduler.nextDeadline, scheduler.isFinished)
            }
            if control.stopRequested, !finishing {
                finishing = true
                log(.info, "stopping: finishing the current window")
            }
            for order in orders {
                if case .failed(let reason) = transport.send(order) {
                    sendFailed(order.sequence, to: order.target.dst, reason: reason)
                }
            }
            for report in reports {
                log(
                    .debug, "window closed",
                    ["windowStart": "\(report.windowStart)", "pairs": "\(report.pairs.count)"])
                health.submit(report) { [uploader] in uploader.enqueue($0) }
            }
            if finished { break }
            // Sleep until the next deadline, but at least a tick: probes due within it go out
            // together (each stamped when actually sent), so the loop wakes ~200 times a second
            // rather than once per probe. Replies and timeouts are unaffected in what they measure.
            let wait = max(deadline.map { $0 > now ? $0 - now : 0 } ?? 100_000_000, Self.tickNanoseconds)
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(min(wait, 100_000_000))))
        }
        transport.stop()
        health.drain()
        let flush = inputs.withLock { $0.config.flushSeconds } ?? 5
        uploader.stop(flushWithin: .seconds(flush))
        if options.pinglistFile == nil { refresherDone.wait() }
        metricsServer?.stop()
        let depth = uploader.spoolDepth
        log(
            .info, "agent stopped",
            ["spooled": "\(depth.reports)", "delivered": "\(uploader.counters.delivered)"])
    }

    /// A probe that could not be sent: an error in the scheduler, logged (the first 10, then every
    /// 1,000th).
    private func sendFailed(_ sequence: UInt64, to dst: EndpointID, reason: String) {
        scheduler.withLock { $0.sendFailed(sequence) }
        let logged = control.withLock { state -> Bool in
            state.sendFailuresLogged += 1
            return state.sendFailuresLogged <= 10 || state.sendFailuresLogged.isMultiple(of: 1000)
        }
        if logged {
            log(.warning, "probe not sent", ["dst": "\(dst)", "reason": reason])
        }
    }

    // MARK: Inputs

    /// The rails discovery found (with the config's overrides), as the verbs transport's devices;
    /// each probes from its NIC's first ACTIVE port.
    static func verbsRails(_ discovered: Result<[RailInfo], any Error>) throws -> [VerbsRail] {
        do {
            return try discovered.get().map { VerbsRail(rail: $0.rail, device: $0.nic) }
        } catch {
            throw AgentError("verbs: rail discovery: \(error)")
        }
    }

    /// The host health collector over `sources` (or this host's), for the rails discovery found in
    /// its sysfs at start. Rails are numbered then: a GPU already missing shifts the numbers.
    static func healthCollector(
        _ given: HostHealthSources?, rails discovered: Result<[RailInfo], any Error>, log: AgentLog
    ) -> HostHealthCollector {
        var sources: HostHealthSources
        if let given {
            sources = given
        } else {
            sources = HostHealthSources(kernelLog: nil)
            do { sources.kernelLog = try KernelMessageDevice() } catch {
                log(.warning, "host health: no kernel log, so no GPU XID events", ["error": "\(error)"])
            }
        }
        var rails: [RailInfo] = []
        do { rails = try discovered.get() } catch {
            log(.warning, "host health: sysfs discovery failed, so no rail health", ["error": "\(error)"])
        }
        log(
            .info, "host health",
            [
                "rails": "\(rails.count)", "sysfs": sources.sysfs.root,
                "nics": Set(rails.map(\.nic)).sorted().joined(separator: ","),
            ])
        return HostHealthCollector(rails: rails, sources: sources)
    }

    static func readToken(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError("--token-file \(path): cannot read")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw AgentError("--token-file \(path): expected one token (printable ASCII, no spaces)")
        }
        return token
    }

    static func loadFaults(_ path: String) throws -> FaultPlan {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError("--faults \(path): cannot read")
        }
        return try FaultPlan.parse(data, name: path)
    }

    static func loadPinglist(_ path: String, node: NodeName) throws -> AgentPinglist {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError("--pinglist \(path): cannot read")
        }
        return try AgentPinglist.parse(data, name: path, node: node)
    }

    /// Pushes the current pinglist and addresses into the scheduler and the transport. This node's
    /// own endpoints answer on its listen address unless the inputs say otherwise.
    private func applyInputs() {
        let (pinglist, peers, verbsPeers) = inputs.withLock { ($0.pinglist, $0.peers, $0.verbsPeers) }
        let targets = pinglist?.targets ?? []
        let unaddressed: [EndpointID]
        if let udp {
            var book = AddressBook([options.node.rawValue: udp.listenAddress])
            if let pinglist { book = book.merging(pinglist.addresses) }
            book = book.merging(peers)
            udp.setAddresses(book)
            unaddressed = Set(targets.map(\.dst).filter { book.address(of: $0) == nil }).sorted()
        } else {
            // This node's own endpoints need no address: loopback and NIC↔NIC pairs are RC.
            let book = (pinglist?.verbsAddresses ?? VerbsAddressBook()).merging(verbsPeers)
            verbs?.setPeers(book)
            unaddressed = Set(
                targets.map(\.dst).filter { $0.node != options.node && book.entries[$0] == nil }
            ).sorted()
        }
        let now = clock.nanoseconds
        scheduler.withLock { $0.setTargets(targets, now: now) }
        if !unaddressed.isEmpty {
            log(
                .warning, "no \(transport.kind == .udp ? "UDP" : "verbs") address for some destinations: their probes count as errors",
                [
                    "count": "\(unaddressed.count)",
                    "first": unaddressed.prefix(5).map(\.description).joined(separator: ","),
                ])
        }
    }

    private func reload() {
        log(.info, "reloading")
        do {
            var config = inputs.withLock { $0.config }
            if let path = options.configFile { config = try AgentConfigFile.load(path) }
            var settings = config.settings(over: scheduler.withLock { $0.settings })
            if let problem = settings.problem { throw AgentError("settings: \(problem)") }
            settings.windowSeconds = scheduler.withLock { $0.settings.windowSeconds }
            let limits = try config.spoolLimits()
            let token = try Self.readToken(options.tokenFile)
            let faults = try options.faultsFile.map(Self.loadFaults) ?? .none
            let (peers, verbsPeers) =
                try options.peersFile.map(AgentPinglist.loadPeers) ?? (AddressBook(), VerbsAddressBook())
            let pinglist = try options.pinglistFile.map { try Self.loadPinglist($0, node: options.node) }
            scheduler.withLock { $0.update(settings) }
            uploader.setLimits(limits)
            uploader.setToken(token)
            udp?.setFaults(faults)
            inputs.withLock {
                $0.config = config
                $0.peers = peers
                $0.verbsPeers = verbsPeers
                if let pinglist { $0.pinglist = pinglist }
            }
            applyInputs()
            log(.info, "reloaded", ["faultRules": "\(faults.rules.count)"])
        } catch {
            log(.error, "reload failed; keeping the previous settings", ["error": "\(error)"])
        }
    }

    /// Fetches GET /v1/pinglist/{node} now and then every pinglistRefreshSeconds (every 5 s while it
    /// fails).
    private func startPinglistRefresher() throws {
        do {
            try spawnThread { [self] in
                var failures = 0
                while !control.withLock({ $0.stopRequested }) {
                    var wait = inputs.withLock { $0.config.pinglistRefreshSeconds } ?? 60
                    do {
                        let pinglist = try fetchPinglist()
                        inputs.withLock { $0.pinglist = pinglist }
                        applyInputs()
                        if failures > 0 || pinglist.targets.isEmpty == false {
                            log(.info, "pinglist fetched", ["pairs": "\(pinglist.targets.count)"])
                        }
                        failures = 0
                    } catch {
                        failures += 1
                        if failures == 1 || failures.isMultiple(of: 12) {
                            log(
                                .warning, "cannot fetch the pinglist",
                                ["error": "\(error)", "failures": "\(failures)"])
                        }
                        wait = min(wait, 5)
                    }
                    let deadline = ContinuousClock.now + .seconds(wait)
                    while ContinuousClock.now < deadline, !control.withLock({ $0.stopRequested }) {
                        Thread.sleep(forTimeInterval: 0.2)
                    }
                }
                refresherDone.signal()
            }
        } catch {
            throw AgentError("cannot start the pinglist thread: \(error)")
        }
    }

    private func fetchPinglist() throws -> AgentPinglist {
        let token = try Self.readToken(options.tokenFile)
        let client = try HTTPClient(connectingTo: options.correlator, timeout: .seconds(5))
        let response = try client.send(
            "GET", "/v1/pinglist/\(options.node.rawValue)", headers: ["Authorization": "Bearer \(token)"])
        guard response.status == 200 else {
            throw AgentError("GET /v1/pinglist/\(options.node): HTTP \(response.status)")
        }
        return try AgentPinglist.parse(
            Data(response.body), name: "GET /v1/pinglist/\(options.node)", node: options.node)
    }

    // MARK: Metrics

    /// Prometheus text exposition of the agent's counters.
    public func metricsText() -> String {
        let probes = scheduler.withLock { ($0.counters, $0.inFlight, $0.targetList.count) }
        let upload = uploader.counters
        let spool = uploader.spoolDepth
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ value: String) {
            lines.append("# HELP faultline_agent_\(name) \(help)")
            lines.append("# TYPE faultline_agent_\(name) \(type)")
            lines.append("faultline_agent_\(name) \(value)")
        }
        metric("probes_sent_total", "counter", "Probes put on the wire.", "\(probes.0.sent)")
        metric(
            "probes_lost_total", "counter", "Probes without a reply within the timeout.", "\(probes.0.lost)")
        metric("probe_errors_total", "counter", "Probes that could not be sent.", "\(probes.0.errors)")
        metric(
            "probe_replies_total", "counter", "Replies matched to a probe in flight.", "\(probes.0.replies)")
        metric(
            "probe_late_replies_total", "counter", "Replies after their probe counted lost.",
            "\(probes.0.late)")
        metric(
            "probe_unknown_replies_total", "counter", "Replies to no probe of ours.", "\(probes.0.unknown)")
        metric(
            "probes_skipped_total", "counter", "Probes due while the in-flight cap was reached.",
            "\(probes.0.skippedAtCap)")
        metric("probes_in_flight", "gauge", "Probes awaiting a reply or timeout.", "\(probes.1)")
        metric("targets", "gauge", "Pairs in the pinglist.", "\(probes.2)")
        metric("reports_total", "counter", "Window reports produced.", "\(probes.0.reports)")
        if let udp = udp?.counters {
            metric("responder_answered_total", "counter", "Probes answered by the responder.", "\(udp.answered)")
            metric(
                "responder_fault_drops_total", "counter", "Probes dropped by injected faults.",
                "\(udp.faultDrops)")
            metric(
                "responder_delayed_total", "counter", "Probes answered after an injected delay.", "\(udp.delayed)"
            )
            metric(
                "responder_delay_queue_full_total", "counter", "Delayed answers dropped: queue full.",
                "\(udp.delayQueueFull)")
            metric("udp_malformed_total", "counter", "Datagrams that were not probes.", "\(udp.malformed)")
            metric("udp_send_errors_total", "counter", "Replies that could not be sent.", "\(udp.sendErrors)")
        }
        if let verbs = verbs?.counters {
            metric(
                "responder_answered_total", "counter", "Peers' probes answered by the UD queue pairs.",
                "\(verbs.answered)")
            metric(
                "verbs_unknown_senders_total", "counter", "Probes from queue pairs with no address here.",
                "\(verbs.unknownSenders)")
            metric(
                "verbs_reconnects_total", "counter", "RC pairs reset and reconnected after an error.",
                "\(verbs.reconnects)")
            metric(
                "verbs_failed_completions_total", "counter", "RC completions with an error status.",
                "\(verbs.failedCompletions)")
            metric(
                "verbs_poll_errors_total", "counter", "Failed completion polls or channel waits.",
                "\(verbs.pollErrors)")
            metric(
                "verbs_peer_errors_total", "counter", "Failed address-handle updates for new peers.",
                "\(verbs.peerErrors)")
            metric(
                "verbs_unmatched_replies_total", "counter", "Replies to probes no longer remembered.",
                "\(verbs.unmatchedReplies)")
        }
        metric("spool_reports", "gauge", "Reports waiting in the spool.", "\(spool.reports)")
        metric("spool_bytes", "gauge", "Bytes of reports waiting in the spool.", "\(spool.bytes)")
        metric("spool_dropped_total", "counter", "Reports dropped by the spool's limits.", "\(spool.dropped)")
        metric("uploads_total", "counter", "Reports delivered.", "\(upload.delivered)")
        metric(
            "upload_failures_total", "counter", "Upload attempts that failed and will be retried.",
            "\(upload.failures)")
        metric(
            "reports_rejected_total", "counter", "Reports the correlator refused (400, 409, 413): dropped.",
            "\(upload.rejected)")
        let hostHealth = health.counters.withLock { $0 }
        metric(
            "health_collections_total", "counter", "Windows whose report got host health.",
            "\(hostHealth.collections)")
        metric(
            "health_errors_total", "counter",
            "Host health that could not be read or parsed (named in the report).",
            "\(hostHealth.errors)")
        metric(
            "health_gpu_queries_skipped_total", "counter",
            "Windows without nvidia-smi: collection had fallen behind.",
            "\(hostHealth.gpuQueriesSkipped)")
        metric(
            "gpu_xid_events_total", "counter", "NVIDIA XID events read from the kernel log.",
            "\(hostHealth.xidEvents)")
        metric("cpu_seconds_total", "counter", "User and system CPU time of the agent process.", "\(cpu)")
        metric("max_rss_bytes", "gauge", "Peak resident set size.", "\(Int(usage.ru_maxrss) * 1024)")
        return lines.joined(separator: "\n") + "\n"
    }

    static func wallNanoseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}

/// The metrics route's way to the agent without a reference cycle (the server's router outlives
/// nothing but must not keep the agent alive).
final class WeakAgent: Sendable {
    private let box = Locked<Reference?>(nil)
    struct Reference: @unchecked Sendable { weak var agent: NodeAgent? }
    func set(_ agent: NodeAgent) { box.withLock { $0 = Reference(agent: agent) } }
    var agent: NodeAgent? { box.withLock { $0?.agent } }
}
