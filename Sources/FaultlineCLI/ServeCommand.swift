// `faultline serve`: the correlator service from the command line — settings from flags over a config
// file, topology, rules and tokens loaded, SIGTERM/SIGINT for a graceful stop, SIGHUP to reload.

import Dispatch
import Engine
import FleetModel
import Foundation
import Net
import Service

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

struct ServeCommand: Command {
    static let name = "serve"
    static let summary = "run the correlator service: ingest reports over HTTP, run the engine, serve the API"
    static let usage =
        "serve --db FILE --topology FILE --tokens FILE [--listen HOST:PORT] [--rules DIR] [--config FILE] [--SETTING VALUE...]"
    static let help = """
        Receives agents' reports (POST /v1/reports, wire-v1.md §3), stores each before answering 202,
        runs the engine on one serial queue, closes windows by the wall clock and serves findings, node
        states, pinglists, /metrics, /healthz and /readyz (docs/api.md). At start the engine is rebuilt
        from the store's recent reports; the store is created and migrated when needed.

        options:
          --db FILE            the store (SQLite; created if missing)
          --topology FILE      the fabric (wire-v1.md §2)
          --tokens FILE        `<node> <token>` per line, `@admin <token>` for the operator, `#` comments;
                               refused if group or others may read it
          --listen HOST:PORT   where to listen (default 127.0.0.1:8080)
          --rules DIR          detection rules (default: the built-in ones)
          --config FILE        `key = value` settings (docs/service.md); flags override it
          --window-seconds N, --ingest-queue N, --max-body-bytes N, --max-reports-per-request N,
          --max-connections N, --rebuild-windows N, --silent-after-windows N, --tick-milliseconds N,
          --agent-port N       served pinglists say where peers answer: rail address and this port

        Prints `listening HOST:PORT` on stdout once it listens; logs are JSON lines on stderr (tokens
        never appear in them). SIGTERM or SIGINT: finish in-flight requests, close the store, exit 0.
        SIGHUP: reload topology, rules and tokens (a bad file is logged and the old ones kept).
        """

    let configuration: ServiceConfiguration

    init(arguments: [String]) throws(CommandError) {
        let keys = ServiceConfiguration.keyNames
        let options = try OptionParser(arguments, valued: keys + ["config"])
        var configuration = try serviceConfiguration(file: options.value("config"))
        for key in keys {
            guard let value = options.value(key) else { continue }
            do { try configuration.set(key, value) } catch { throw CommandError.usage("\(error)") }
        }
        do { self.configuration = try configuration.validated() } catch {
            throw CommandError.usage("\(error)")
        }
    }

    /// Topology, rules and tokens from the configured files.
    static func loadInputs(
        _ configuration: ServiceConfiguration, io: some CommandIO
    ) throws(CommandError)
        -> CorrelatorInputs
    {
        let topologyPath = configuration.topologyPath!
        let topologyText = String(decoding: try readFile(topologyPath), as: UTF8.self)
        let topology = try loadTopology(topologyPath)
        let rules =
            try configuration.rulesPath.map { (path) throws(CommandError) in try loadRules(path, io: io).rules
            }
            ?? .defaults
        let tokens: Tokens
        do { tokens = try Tokens.load(path: configuration.tokensPath!) } catch {
            throw CommandError.data("\(error)")
        }
        return CorrelatorInputs(topology: topology, topologyText: topologyText, rules: rules, tokens: tokens)
    }

    func run(io: some CommandIO) throws(CommandError) {
        let inputs = try Self.loadInputs(configuration, io: io)
        let log = ServiceLog.standardError
        let service: CorrelatorService
        let address: SocketAddress
        do {
            service = try CorrelatorService(configuration: configuration, inputs: inputs, log: log)
            address = try service.start()
        } catch let error as CommandError {
            throw error
        } catch {
            throw CommandError.io("cannot start: \(error)")
        }
        io.write("listening \(address)\n")

        signal(SIGPIPE, SIG_IGN)
        for number in [SIGTERM, SIGINT, SIGHUP] { signal(number, SIG_IGN) }
        let signals = DispatchQueue(label: "faultline.signals")
        let done = DispatchSemaphore(value: 0)
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: signals)
            source.setEventHandler {
                log.log("signal", ["signal": .string(number == SIGTERM ? "TERM" : "INT")])
                done.signal()
            }
            source.resume()
            return source
        }
        let configuration = configuration
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: signals)
        hangup.setEventHandler {
            let errors = CapturedErrors()
            do {
                try service.reload(try Self.loadInputs(configuration, io: errors))
            } catch {
                log.log(
                    "reload-failed",
                    [
                        "error": .string("\(error)"),
                        "details": .string(errors.text.trimmingCharacters(in: .newlines)),
                    ])
            }
        }
        hangup.resume()
        done.wait()
        service.stop()
        withExtendedLifetime((sources, hangup)) {}
    }
}

/// Collects what a loader writes to stderr (rules problems), for the reload log line.
private final class CapturedErrors: CommandIO {
    var text = ""
    func readInput(into buffer: inout [UInt8], at offset: Int) throws(CommandError) -> Int { 0 }
    func write(_ text: String) {}
    func writeError(_ text: String) { self.text += text }
}

/// The service's settings from a config file (`FILE:LINE` errors, exit 65), or the defaults.
func serviceConfiguration(file path: String?) throws(CommandError) -> ServiceConfiguration {
    var configuration = ServiceConfiguration()
    guard let path else { return configuration }
    let data = try readFile(path, limit: 1 << 20)
    do {
        try configuration.apply(fileText: String(decoding: data, as: UTF8.self), file: path)
    } catch {
        throw CommandError.data("\(error)")
    }
    return configuration
}
