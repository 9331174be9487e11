// `faultline agent`: the node agent. Probes the pinglist's pairs over UDP or verbs, answers other
// agents' probes, sends one report per window to the correlator (spooled on disk while it is away), serves
// /metrics. SIGTERM finishes the current window and flushes it; SIGHUP reloads. See docs/agent.md.

import Agent
@preconcurrency import Dispatch
import FleetModel
import Net

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

struct AgentRunCommand: Command {
    static let name = "agent"
    static let summary = "run the node agent: probe, answer probes, report each window to the correlator"
    static let usage =
        "agent --node NAME --listen ADDR:PORT --correlator URL --token-file FILE [--transport udp|verbs]"
        + " [--window-seconds N] [--pinglist FILE] [--peers FILE] [--spool DIR] [--config FILE]"
        + " [--faults FILE] [--metrics ADDR:PORT]"
    static let help = """
        Probes every pair of this node's pinglist each window, answers the probes of other agents on
        --listen (UDP), and POSTs one report per window (wire-v1.md §3) to the correlator with the
        token of --token-file as a bearer token. Each report carries the node's host health: PCIe
        links below their maximum, NIC ports not ACTIVE and their error counters' changes, GPUs off
        the bus (sysfs, XID 79 in /dev/kmsg) and nvidia-smi's ECC, memory and thermal findings. Reports wait in the spool directory (bounded; oldest
        dropped first) while the correlator is unreachable or answers 5xx, and go out in order when
        it is back. Logs are JSON lines on stderr. See docs/agent.md.

        Signals: SIGTERM (and SIGINT) finish the current window, send it and stop; SIGHUP re-reads the
        config, token, faults, peers and pinglist files.

        options:
          --node NAME           this node's name, as in the topology
          --listen ADDR:PORT    UDP address the responder answers on and probes leave from
          --correlator URL      http://HOST:PORT of the correlator
          --token-file FILE     the agent's bearer token (never logged)
          --transport T         udp (default), or verbs: RC loopback and NIC↔NIC pairs, UD to
                                peers, on the rails discovery finds (config "rails" overrides);
                                --listen is then not bound and peers' addresses are UD queue pairs
          --window-seconds N    report window, 1...3600 (default 10, or the config file's)
          --pinglist FILE       the pairs to probe, as `faultline topology pinglist --json` prints
                                them, optionally with "addresses"; without it the agent fetches
                                GET /v1/pinglist/NAME from the correlator now and then
          --peers FILE          JSON {"node" or "node/rail": "HOST:PORT"}: where peers answer
          --spool DIR           spool directory (default /var/lib/faultline/spool)
          --config FILE         JSON settings: rates, jitter, timeout, caps, spool limits, backoff
          --faults FILE         fault injection for tests and demos: delay or drop probes this
                                agent answers, per rail and per peer (re-read on SIGHUP)
          --metrics ADDR:PORT   serve Prometheus /metrics here
        """

    let options: AgentOptions

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(
            arguments,
            valued: [
                "node", "listen", "correlator", "token-file", "transport", "window-seconds", "pinglist",
                "peers",
                "spool", "config", "faults", "metrics",
            ])
        let nodeText = try parsed.required("node")
        guard let node = NodeName(nodeText) else {
            throw CommandError.usage("--node '\(nodeText)' is not a node name")
        }
        let listen: SocketAddress
        do { listen = try SocketAddress.parse(try parsed.required("listen")) } catch let error as CommandError
        {
            throw error
        } catch { throw CommandError.usage("--listen: \(error)") }
        let correlator: SocketAddress
        do { correlator = try UploadSettings.parseURL(try parsed.required("correlator")) } catch let error
            as CommandError
        {
            throw error
        } catch { throw CommandError.usage("\(error)") }
        var options = AgentOptions(
            node: node, listen: listen, correlator: correlator, tokenFile: try parsed.required("token-file"),
            spoolDirectory: parsed.value("spool") ?? "/var/lib/faultline/spool",
            agentVersion: FaultlineCommand.version)
        switch parsed.value("transport") ?? "udp" {
        case "udp": options.transport = .udp
        case "verbs": options.transport = .verbsUD
        case let other: throw CommandError.usage("--transport must be udp or verbs, got '\(other)'")
        }
        if parsed.value("window-seconds") != nil {
            options.windowSeconds = try parsed.integer("window-seconds", default: 10, in: 1...3600)
        }
        options.pinglistFile = parsed.value("pinglist")
        options.peersFile = parsed.value("peers")
        options.configFile = parsed.value("config")
        options.faultsFile = parsed.value("faults")
        if let text = parsed.value("metrics") {
            do { options.metrics = try SocketAddress.parse(text) } catch {
                throw CommandError.usage("--metrics: \(error)")
            }
        }
        self.options = options
    }

    func run(io: some CommandIO) throws(CommandError) {
        let agent: NodeAgent
        do { agent = try NodeAgent(options: options) } catch {
            throw CommandError.data("\(error)")
        }
        // A write to a closed pipe or socket (a child's stdin, a log reader gone) is an error to
        // handle where it happens, never a silent death of the agent.
        signal(SIGPIPE, SIG_IGN)
        let queue = DispatchQueue(label: "faultline.agent.signals")
        var sources: [any DispatchSourceSignal] = []
        for (number, reload) in [(SIGTERM, false), (SIGINT, false), (SIGHUP, true)] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { reload ? agent.requestReload() : agent.requestStop() }
            source.resume()
            sources.append(source)
        }
        defer { sources.forEach { $0.cancel() } }
        do { try agent.run() } catch { throw CommandError.io("\(error)") }
    }
}
