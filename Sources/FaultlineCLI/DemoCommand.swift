// `faultline demo`: the whole system on this machine, for real: a generated topology, `faultline
// serve` with its SQLite store, one `faultline agent` process per node on its own 127.0.1.N address
// (UDP probes), faults injected on a schedule through the agents' fault files (a slow GPU rail, a
// lossy access link, a dead node), then healed; a timeline of what the correlator found and what the
// remediation policy decided, read from its API; a summary and the commands that replay the run.
// Every process it starts is in one process group that goes when the demo ends, is interrupted, or
// dies (a watchdog shell outlives it by a second).

import FleetModel
import Foundation
import Reports
import Store
import Net

struct DemoCommand: Command {
    static let name = "demo"
    static let summary = "the correlator and one agent per node on this machine, with injected faults"
    static let usage = "demo [--dir DIR] [--nodes N] [--rails R] [--window-seconds S] [--slurm]"
    static let help = """
        Starts `faultline serve` (its store at DIR/faultline.db) and one `faultline agent` per node,
        each on its own address 127.0.1.N with the UDP transport, for a generated topology of N
        nodes x R rails in 4 scalable units (4 leaves on each rail) and 2 spines. After a few healthy
        windows it injects a slow GPU rail, a lossy access link (only the flows over it) and a dead
        node (its agent killed), heals them after 22 windows, and ends after 36 (about 72 s with
        2 s windows). The timeline shows windows, findings with their confidence, and the
        remediation policy's decisions (dry-run: recorded, nothing is drained); the summary says
        what was injected, what was found and when, and how to replay the run from the store.

        options:
          --dir DIR           where the run's files go (default .faultline-demo; emptied of a
                              previous run's store, spools and logs)
          --nodes N           nodes, 8...200 (default 16)
          --rails R           rails per node, 2...8 (default 4)
          --window-seconds S  window length, 1...10 (default 2)
          --slurm             quarantine through Slurm (`action = slurm`; SLURM_CONF from the
                              environment): needs a running Slurm whose nodes are named as the
                              demo's (gpu-0000...)

        Processes: every child is in one process group, stopped on exit, on Ctrl-C and SIGTERM,
        and by a watchdog if the demo itself is killed. Logs: DIR/logs/.
        """

    let directory: String
    let nodes: Int
    let rails: Int
    let windowSeconds: Int
    let slurm: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(
            arguments, valued: ["dir", "nodes", "rails", "window-seconds"], flags: ["slurm"])
        directory = options.value("dir") ?? ".faultline-demo"
        nodes = try options.integer("nodes", default: 16, in: 8...200)
        rails = try options.integer("rails", default: 4, in: 2...8)
        windowSeconds = try options.integer("window-seconds", default: 2, in: 1...10)
        slurm = options.flag("slurm")
    }

    func run(io: some CommandIO) throws(CommandError) {
        let stop = DemoStopSignal()
        let fleet = try DemoFleet(
            directory: directory, nodes: nodes, rails: rails, windowSeconds: windowSeconds, slurm: slurm)
        defer { fleet.stop() }
        var timeline = DemoTimeline(fleet: fleet, io: io)
        try timeline.run(until: stop)
        fleet.stop()
        let report = try writeReport(io: io)
        try timeline.printSummary(report: report)
    }

    /// The fleet health report of the run (`faultline report` over the windows the store holds),
    /// written to DIR/report.html; the command that writes it again.
    private func writeReport(io: some CommandIO) throws(CommandError) -> (path: String, command: String)? {
        let database = directory + "/faultline.db"
        let output = directory + "/report.html"
        do {
            let store = try Store(path: database, mode: .readOnly, migrate: false)
            let windows = try store.windows()
            guard let first = windows.first?.start, let last = windows.last else { return nil }
            let to = last.start.adding(seconds: Int64(last.seconds))
            let report = try WeeklyReport.build(store: store, from: first, to: to, label: "the demo's run")
            try writeOutput(Data(report.html.utf8), to: output, io: io)
            return (output, "report --db \(database) --from \(first) --to \(to) -o \(output)")
        } catch {
            io.writeError("faultline demo: no report of the run: \(error)\n")
            return nil
        }
    }
}

/// SIGINT and SIGTERM end the demo's loop (which then stops its processes) instead of the process.
final class DemoStopSignal: Sendable {
    private let raised = Locked(false)
    /// Kept so that the handlers live as long as this does; touched only in `init`.
    private nonisolated(unsafe) let sources: [any DispatchSourceSignal]

    init() {
        sources = [SIGINT, SIGTERM].map { [raised] number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { raised.withLock { $0 = true } }
            source.resume()
            return source
        }
    }

    var isRaised: Bool { raised.withLock { $0 } }
}

/// A fault the demo injects, on one component of the generated fleet.
enum DemoFault: Equatable {
    /// The rail's GPU and NIC are slow: its probes are answered late, and it answers late.
    case slowRail(EndpointID, delayMicros: Int)
    /// The endpoint's access link drops a share of what crosses it, both ways (its own loopback
    /// probes do not cross it).
    case lossyLink(EndpointID, drop: Double)
    /// The node's agent is killed: nothing answers, nothing reports.
    case deadNode(NodeName)

    var description: String {
        switch self {
        case .slowRail(let endpoint, let delay): "slow GPU rail: \(endpoint) answers \(delay / 1000) ms late"
        case .lossyLink(let endpoint, let drop): "lossy access link of \(endpoint): \(Int(drop * 100))% of its probes dropped"
        case .deadNode(let node): "dead node: \(node)'s agent killed"
        }
    }

    /// Whether a finding on `component` names this fault: the endpoint or its access link (every
    /// probe to or from a rail crosses its link, so probes cannot tell the two apart), or the node
    /// it is on (blamed more coarsely, the same node to take out).
    func isNamed(by component: String) -> Bool {
        if component == node.rawValue { return true }
        switch self {
        case .slowRail(let endpoint, _), .lossyLink(let endpoint, _):
            return component == endpoint.description || component.hasPrefix(endpoint.description + "~")
        case .deadNode(let node): return component.hasPrefix(node.rawValue + "/")
        }
    }

    /// The node whose agent carries it out.
    var node: NodeName {
        switch self {
        case .slowRail(let endpoint, _), .lossyLink(let endpoint, _): endpoint.node
        case .deadNode(let node): node
        }
    }
}

/// The demo's processes and files: the topology, tokens, agents' inputs, the correlator and agents.
final class DemoFleet {
    let directory: String
    let topology: Topology
    let windowSeconds: Int
    let names: [NodeName]
    let adminToken: String
    private(set) var correlatorAddress = ""
    /// This program, which the demo starts as the correlator and the agents.
    let executable: String
    private var correlator: ChildProcess?
    /// The process group of every child: the first correlator's pid (the group outlives that
    /// process while the agents are in it).
    private var processGroup: pid_t = 0
    private var agents: [NodeName: ChildProcess] = [:]
    private var watchdog: ChildProcess?
    private let port: Int
    private var stopped = false

    init(
        directory: String, nodes: Int, rails: Int, windowSeconds: Int, slurm: Bool
    ) throws(CommandError) {
        self.directory = (directory as NSString).standardizingPath
        self.windowSeconds = windowSeconds
        // The generated fabric: 4 scalable units, each with a leaf per rail (4 leaves on each rail),
        // and 2 spines. One unit (a leaf per rail, every node under every leaf) would make the
        // whole fleet one failure domain: the policy's one-quarantine-per-leaf guard would hold
        // every quarantine after the first for approval.
        do {
            topology = try Topology.railOptimized(
                .init(nodes: nodes, rails: rails, nodesPerLeaf: (nodes + 3) / 4, spines: 2))
        } catch {
            throw CommandError.data("the demo topology: \(error)")
        }
        names = topology.nodes.map(\.name)
        executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        // One port for every agent (each has its own address); from the pid, so two demos or tests
        // at once are unlikely to meet.
        port = 20_000 + Int(getpid() % 20_000)
        adminToken = Self.randomToken()
        try prepareFiles(slurm: slurm)
        do throws(CommandError) {
            try startCorrelator(listen: "127.0.0.1:0")
            startWatchdog()
            for name in names { try startAgent(name) }
        } catch {
            stop()  // what did start goes
            throw error
        }
    }

    var logs: String { directory + "/logs" }
    var databasePath: String { directory + "/faultline.db" }

    func address(of node: NodeName) -> String {
        "127.0.1.\(names.firstIndex(of: node)! + 1):\(port)"
    }

    private static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined(separator: "-")
    }

    private func prepareFiles(slurm: Bool) throws(CommandError) {
        let files = FileManager.default
        do {
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for old in ["faultline.db", "faultline.db-wal", "faultline.db-shm", "logs", "spool", "faults", "tokens", "rules"] {
                try? files.removeItem(atPath: directory + "/" + old)
            }
            for folder in ["logs", "spool", "faults", "tokens", "rules"] {
                try files.createDirectory(
                    atPath: directory + "/" + folder, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700])
            }
            try topology.jsonData().write(to: URL(fileURLWithPath: directory + "/topology.json"))
            var tokens = "# the demo's tokens: one per node, and the operator's\n@admin \(adminToken)\n"
            for name in names {
                let token = Self.randomToken()
                tokens += "\(name) \(token)\n"
                try writePrivate(token + "\n", to: "\(directory)/tokens/\(name)")
            }
            try writePrivate(tokens, to: directory + "/tokens/all")
            let peers = "{" + names.map { "\"\($0)\": \"\(address(of: $0))\"" }.joined(separator: ", ") + "}\n"
            try Data(peers.utf8).write(to: URL(fileURLWithPath: directory + "/peers.json"))
            // Enough probes a window to judge every pair's latency (the rules want 10 returned).
            let peerRate = (14 + windowSeconds - 1) / windowSeconds
            let agentConfig = """
                {"loopbackRate": \(max(10, 2 * peerRate)), "peerRate": \(peerRate), "timeoutMillis": \(windowSeconds * 400),
                 "pinglistRefreshSeconds": 5}

                """
            try Data(agentConfig.utf8).write(to: URL(fileURLWithPath: directory + "/agent.json"))
            var serveConfig = "# faultline serve settings for the demo (docs/service.md)\n"
            serveConfig += slurm ? "action = slurm\n" : "action = dry-run\n"
            if slurm, let conf = ProcessInfo.processInfo.environment["SLURM_CONF"] {
                serveConfig += "slurm-conf = \(conf)\n"
            }
            try Data(serveConfig.utf8).write(to: URL(fileURLWithPath: directory + "/serve.conf"))
            for name in names { try writeFaults([], for: name) }
            try Data(Self.demoRules.utf8).write(to: URL(fileURLWithPath: directory + "/rules/50-demo.rules"))
        } catch let error as CommandError {
            throw error
        } catch {
            throw CommandError.cannotCreate("cannot prepare \(directory): \(error.localizedDescription)")
        }
    }

    /// The built-in rules but for the policy's pace and the noise of this machine: a small fleet lets
    /// its three faulty nodes out
    /// (the default share, 2%, would let one out and hold the others; 40% of the smallest demo, 8
    /// nodes, is 3), a finding as sure as a 20% loss on one link (0.38) needs no approval, and a
    /// healed node comes back within the run instead of after half an hour.
    static let demoRules = """
        # faultline demo: the built-in rules, with the remediation policy sized for a small fleet and
        # a short run (faultline rules check DIR shows what differs).
        [guards]
        max-quarantined-share = 0.4

        [approval]
        below-confidence = 0.3

        [release]
        clean-windows = 4
        delay = 20s

        # UDP between processes on a shared 2-core machine: a process that misses its turn adds
        # milliseconds to a p99. Latency counts as slow only 2 ms over the baseline (the slow rail
        # injected is 5 ms); on RDMA the defaults are microseconds.
        [class loopback]
        min-excess-us = 2000

        [class intra-host]
        min-excess-us = 2000

        [class same-leaf]
        min-excess-us = 2000

        [class cross-leaf]
        min-excess-us = 2000

        """

    private func writePrivate(_ text: String, to path: String) throws {
        guard FileManager.default.createFile(
            atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        else { throw CommandError.cannotCreate("cannot write \(path)") }
    }

    private func spawn(_ arguments: [String], log: String) throws(CommandError) -> ChildProcess {
        let child: ChildProcess
        do {
            child = try ChildProcess(
                [executable] + arguments, processGroup: processGroup,
                output: "\(logs)/\(log).out", errors: "\(logs)/\(log).log")
        } catch {
            throw CommandError.io("cannot start \(arguments.first ?? ""): \(error)")
        }
        if processGroup == 0 { processGroup = child.pid }
        return child
    }

    /// Starts `faultline serve` listening on `listen` and waits for its `listening` line.
    private func startCorrelator(listen: String) throws(CommandError) {
        let earlierLines = ((try? String(contentsOfFile: "\(logs)/serve.out", encoding: .utf8)) ?? "")
            .split(separator: "\n").count
        let process = try spawn(
            [
                "serve", "--db", databasePath, "--topology", directory + "/topology.json",
                "--tokens", directory + "/tokens/all", "--config", directory + "/serve.conf",
                "--rules", directory + "/rules",
                "--listen", listen, "--window-seconds", "\(windowSeconds)", "--silent-after-windows", "2",
            ], log: "serve")
        correlator = process
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let out = (try? String(contentsOfFile: "\(logs)/serve.out", encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").dropFirst(earlierLines).first(where: { $0.hasPrefix("listening ") }) {
                correlatorAddress = String(line.dropFirst("listening ".count))
                return
            }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: "\(logs)/serve.log", encoding: .utf8)) ?? ""
        throw CommandError.io(
            "faultline serve did not start (\(process.outcome)); its log, \(logs)/serve.log:\n\(log.suffix(2000))")
    }

    /// Kills the correlator outright and starts it again on the same store and address: a crash and
    /// a restart, as the agents see them (they spool meanwhile).
    func restartCorrelator() throws(CommandError) {
        correlator?.signal(SIGKILL)
        _ = correlator?.wait(timeout: .seconds(5))
        try startCorrelator(listen: correlatorAddress)
    }

    func startAgent(_ name: NodeName) throws(CommandError) {
        agents[name] = try spawn(
            [
                "agent", "--node", name.rawValue, "--listen", address(of: name),
                "--correlator", "http://\(correlatorAddress)", "--token-file", "\(directory)/tokens/\(name)",
                "--window-seconds", "\(windowSeconds)", "--peers", directory + "/peers.json",
                "--spool", "\(directory)/spool/\(name)", "--config", directory + "/agent.json",
                "--faults", "\(directory)/faults/\(name).json",
            ], log: "agent-\(name)")
    }

    /// Kills the node's agent at once (a node that died).
    func killAgent(_ name: NodeName) {
        agents[name]?.signal(SIGKILL)
        _ = agents[name]?.wait(timeout: .seconds(5))
    }

    /// Writes every node's faults file for the faults in force and has the agents re-read theirs.
    func apply(_ faults: [DemoFault]) throws(CommandError) {
        for name in names {
            var rules: [String] = []
            for fault in faults {
                switch fault {
                case .slowRail(let endpoint, let delay):
                    // A slow GPU and NIC are slow both ways: its answers, and what it sends.
                    if endpoint.node == name {
                        rules.append("{\"rail\": \(endpoint.rail), \"delayMicros\": \(delay)}")
                    } else {
                        rules.append("{\"peer\": \"\(endpoint)\", \"delayMicros\": \(delay)}")
                    }
                case .lossyLink(let endpoint, let drop):
                    // Its own loopback stays on the host; everything else over the link is dropped.
                    if endpoint.node == name {
                        rules.append("{\"rail\": \(endpoint.rail), \"peer\": \"\(endpoint)\", \"drop\": 0}")
                        rules.append("{\"rail\": \(endpoint.rail), \"drop\": \(drop)}")
                    } else {
                        rules.append("{\"peer\": \"\(endpoint)\", \"drop\": \(drop)}")
                    }
                default: break
                }
            }
            try writeFaults(rules, for: name)
        }
        for agent in agents.values { agent.signal(SIGHUP) }
    }

    private func writeFaults(_ rules: [String], for name: NodeName) throws(CommandError) {
        let text = "{\"seed\": 7, \"rules\": [\(rules.joined(separator: ", "))]}\n"
        do {
            try Data(text.utf8).write(
                to: URL(fileURLWithPath: "\(directory)/faults/\(name).json"), options: .atomic)
        } catch {
            throw CommandError.cannotCreate("cannot write the faults of \(name): \(error.localizedDescription)")
        }
    }

    /// A shell that waits for this process to go, then stops the group: the demo's processes do not
    /// outlive it even when it is killed outright. It watches its own parent (field 4 of its
    /// /proc/PID/stat), which becomes another process the moment the demo exits, even while the
    /// demo's own parent has not reaped it yet (`kill -0` would still find that zombie).
    private func startWatchdog() {
        let group = processGroup
        guard group != 0 else { return }
        let script =
            "while [ \"$(cut -d ' ' -f 4 /proc/$$/stat)\" = \(getpid()) ]; do sleep 1; done; "
            + "kill -TERM -\(group) 2>/dev/null; sleep 5; kill -KILL -\(group) 2>/dev/null"
        watchdog = try? ChildProcess(
            ["/bin/sh", "-c", script], processGroup: 0, output: "/dev/null", errors: "/dev/null")
    }

    /// Stops every agent (each sends its last window), then the correlator (it closes its store);
    /// whatever is left of the group after 10 s is killed.
    func stop() {
        guard !stopped else { return }
        stopped = true
        for agent in agents.values { agent.signal(SIGTERM) }
        for agent in agents.values where !agent.wait(timeout: .seconds(8)) { agent.signal(SIGKILL) }
        correlator?.signal(SIGTERM)
        _ = correlator?.wait(timeout: .seconds(10))
        if processGroup != 0 { kill(-processGroup, SIGKILL) }  // whatever is left of the group
        for agent in agents.values { _ = agent.wait(timeout: .seconds(1)) }
        watchdog?.signal(SIGKILL)
        _ = watchdog?.wait(timeout: .seconds(1))
    }

    /// A GET of the correlator's API with the operator's token: the body, nil when it fails.
    func get(_ target: String) -> [UInt8]? {
        guard let address = try? SocketAddress.parse(correlatorAddress),
            let client = try? HTTPClient(connectingTo: address, timeout: .seconds(5)),
            let response = try? client.send("GET", target, headers: ["Authorization": "Bearer \(adminToken)"]),
            response.status == 200
        else { return nil }
        return response.body
    }
}
