// The running service: the correlator, its HTTP server and its window ticker, started and stopped
// together; a stop finishes in-flight requests, then closes the store. Signals are the caller's
// (ServeCommand turns SIGTERM into `stop()` and SIGHUP into `reload`).

import Dispatch
import FleetModel
import Engine
import Foundation
import Net

/// `faultline serve` without the command line: start, reload, stop.
public final class CorrelatorService: Sendable {
    public let correlator: Correlator
    public let server: HTTPServer
    /// Set up in `init`, then only resumed and cancelled (both thread-safe in Dispatch).
    private nonisolated(unsafe) let ticker: any DispatchSourceTimer
    /// The runbooks directory, read again on reload.
    private let runbooksPath: String?
    private let log: ServiceLog
    private let stopped = Locked(false)

    /// Opens the correlator (rebuilding its engine) and prepares the server; `start()` listens.
    public init(
        configuration: ServiceConfiguration, inputs: CorrelatorInputs,
        clock: any ServiceClock = SystemClock(),
        log: ServiceLog = .standardError, sendsDate: Bool = true
    ) throws {
        guard let databasePath = configuration.databasePath else {
            throw ConfigurationError(location: nil, message: "no database path")
        }
        runbooksPath = configuration.runbooksPath
        let runbooks = try runbooksPath.map { try Runbooks.load(directory: $0) }
        let remediator = try Remediator(
            databasePath: databasePath, topology: inputs.topology, rules: inputs.rules.policy,
            runbooks: runbooks ?? [], action: try configuration.makeAction(),
            escalations: try configuration.makeEscalations(), clock: clock, log: log)
        let correlator = try Correlator(
            databasePath: databasePath, inputs: inputs, settings: Correlator.Settings(configuration),
            clock: clock, log: log, remediator: remediator)
        self.correlator = correlator
        self.log = log
        var limits = HTTPServer.Limits()
        limits.maxBodyBytes = configuration.maxBodyBytes
        limits.maxConnections = configuration.maxConnections
        let serverBox = Locked<HTTPServer?>(nil)
        let router = ServiceAPI.router(
            correlator, agentPort: configuration.agentPort == 0 ? nil : UInt16(configuration.agentPort),
            serverCounters: { serverBox.withLock { $0 }?.counters })
        let server = try HTTPServer(
            configuration: HTTPServer.Configuration(
                address: try SocketAddress.parse(configuration.listen), limits: limits, sendsDate: sendsDate),
            router: router)
        serverBox.withLock { $0 = server }
        self.server = server
        ticker = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "faultline.ticker"))
        let interval = DispatchTimeInterval.milliseconds(configuration.tickMilliseconds)
        ticker.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(10))
        ticker.setEventHandler { correlator.tick() }
    }

    /// Listens, starts the ticker; returns the bound address.
    @discardableResult
    public func start() throws -> SocketAddress {
        let address = try server.start()
        ticker.resume()
        log.log("listening", ["address": .string(address.description)])
        return address
    }

    /// Takes new topology, rules and tokens (SIGHUP).
    public func reload(_ inputs: CorrelatorInputs) throws {
        // Runbooks first: a bad one refuses the whole reload before anything has changed.
        let runbooks = try runbooksPath.map { try Runbooks.load(directory: $0) } ?? []
        try correlator.reload(inputs)
        correlator.remediator?.reload(topology: inputs.topology, rules: inputs.rules.policy, runbooks: runbooks)
    }

    /// Graceful stop: no new connections, in-flight requests finished and answered, then the ticker
    /// stops and the store closes. Safe to call twice.
    public func stop() {
        let already = stopped.withLock { value -> Bool in
            defer { value = true }
            return value
        }
        guard !already else { return }
        server.stop()
        ticker.cancel()
        correlator.close()
        log.log("stopped", [:])
    }
}
