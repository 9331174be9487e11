// The uploader: sends spooled reports to the correlator oldest first, one POST /v1/reports each,
// with the agent's bearer token. 2xx delivers (a duplicate with the same content is answered 202
// too, so a retry after a lost answer is harmless); 400, 409 and 413 drop the report and count it
// (retrying cannot help); anything else (unreachable, 5xx, 503, 401/403) keeps it and retries after
// an exponential backoff with jitter. Runs on its own thread.

import Dispatch
import FleetModel
import Foundation
import Net

public struct UploadSettings: Hashable, Sendable {
    public var correlator: SocketAddress
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var requestTimeout: Duration

    public init(
        correlator: SocketAddress, initialBackoff: Duration = .milliseconds(500),
        maxBackoff: Duration = .seconds(30),
        requestTimeout: Duration = .seconds(5)
    ) {
        self.correlator = correlator
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.requestTimeout = requestTimeout
    }

    /// `http://HOST:PORT` (a trailing `/` allowed; numeric host or localhost; port 80 if absent).
    public static func parseURL(_ text: String) throws -> SocketAddress {
        guard text.hasPrefix("http://") else {
            throw AgentError("--correlator '\(text)': expected http://HOST:PORT (https is not supported)")
        }
        var rest = String(text.dropFirst(7))
        while rest.hasSuffix("/") { rest.removeLast() }
        if rest.contains("/") { throw AgentError("--correlator '\(text)': a path is not supported") }
        if !rest.contains(":") || (rest.hasPrefix("[") && rest.hasSuffix("]")) { rest += ":80" }
        do { return try SocketAddress.parse(rest) } catch {
            throw AgentError("--correlator '\(text)': \(error)")
        }
    }
}

/// What the uploader did, for /metrics.
public struct UploadCounters: Hashable, Sendable {
    public var delivered = 0
    /// Attempts that failed and will be retried (unreachable, 5xx, 401/403).
    public var failures = 0
    /// Reports the correlator refused for good (400, 409, 413): dropped.
    public var rejected = 0
    public init() {}
}

/// What to do with an answer.
public enum UploadOutcome: Equatable, Sendable {
    case delivered
    case rejected
    case retry

    public init(status: Int) {
        switch status {
        case 200...299: self = .delivered
        case 400, 409, 413: self = .rejected
        default: self = .retry
        }
    }
}

/// The wait before attempt `failures + 1`: initial · 2^(failures−1), at most `max`, times a jitter
/// factor in [0.5, 1).
public func backoff(failures: Int, initial: Duration, max maximum: Duration, unit: Double) -> Duration {
    guard failures > 0 else { return .zero }
    var delay = initial
    for _ in 1..<min(failures, 40) {
        delay = delay * 2
        if delay >= maximum { break }
    }
    delay = min(delay, maximum)
    return delay * (0.5 + 0.5 * unit)
}

public final class Uploader: Sendable {
    public let settings: UploadSettings
    let spool: Locked<Spool>
    private let token: Locked<String>
    private let log: AgentLog
    private let state = Locked(UploadCounters())
    private let control = Locked(Control())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    struct Control: Sendable {
        var stopRequested = false
        /// On stop: keep delivering until the spool is empty or this deadline passes.
        var flushDeadline: ContinuousClock.Instant?
    }

    public init(settings: UploadSettings, spool: Spool, token: String, log: AgentLog) {
        self.settings = settings
        self.spool = Locked(spool)
        self.token = Locked(token)
        self.log = log
    }

    public var counters: UploadCounters { state.withLock { $0 } }
    public var spoolDepth: (reports: Int, bytes: Int, dropped: Int) {
        spool.withLock { ($0.count, $0.totalBytes, $0.droppedForLimits) }
    }

    public func setToken(_ text: String) { token.withLock { $0 = text } }
    public func setLimits(_ limits: SpoolLimits) { spool.withLock { $0.limits = limits } }

    /// Spools a report (atomically, on disk) and wakes the upload thread.
    public func enqueue(_ report: Report) {
        let now = Int64(Date().timeIntervalSince1970)
        let result = spool.withLock { spool -> Result<Int, AgentError> in
            do {
                return .success(
                    try spool.append(
                        report.jsonLine, windowStart: report.windowStart.secondsSinceEpoch, now: now))
            } catch { return .failure(error as? AgentError ?? AgentError("\(error)")) }
        }
        switch result {
        case .success(let dropped) where dropped > 0:
            log(.warning, "spool full: dropped the oldest reports", ["dropped": "\(dropped)"])
        case .success: break
        case .failure(let error):
            log(
                .error, "cannot spool a report: dropped",
                ["window": "\(report.windowStart)", "error": error.message])
        }
        wake.signal()
    }

    public func start() throws {
        do {
            try spawnThread { [self] in
                run()
                finished.signal()
            }
        } catch {
            throw AgentError("cannot start the upload thread: \(error)")
        }
    }

    /// Delivers what it can within `flushWithin`, then stops the thread; what is left stays spooled
    /// for the next start.
    public func stop(flushWithin: Duration) {
        control.withLock {
            $0.stopRequested = true
            $0.flushDeadline = .now + flushWithin
        }
        wake.signal()
        finished.wait()
    }

    private func run() {
        var client: HTTPClient?
        var failures = 0
        var random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
        var nextAttempt = ContinuousClock.now
        while true {
            let control = self.control.withLock { $0 }
            let pending = spool.withLock { $0.count }
            if control.stopRequested {
                if pending == 0 { return }
                if let deadline = control.flushDeadline, ContinuousClock.now >= deadline { return }
            }
            if pending == 0 {
                _ = wake.wait(timeout: .now() + .milliseconds(500))
                continue
            }
            let now = ContinuousClock.now
            if now < nextAttempt {
                var until = nextAttempt
                if let deadline = control.flushDeadline { until = min(until, deadline) }
                let wait = now.duration(to: until)
                let (seconds, attoseconds) = wait.components
                _ = wake.wait(
                    timeout: .now()
                        + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)))
                continue
            }
            guard let (entry, body) = spool.withLock({ $0.oldest() }) else { continue }
            let outcome = post(body, client: &client)
            switch outcome {
            case .delivered:
                spool.withLock { $0.remove(entry) }
                state.withLock { $0.delivered += 1 }
                if failures > 0 {
                    log(.info, "correlator reachable again", ["after": "\(failures) failed attempts"])
                }
                failures = 0
                nextAttempt = .now
            case .rejected(let status, let body):
                spool.withLock { $0.remove(entry) }
                state.withLock { $0.rejected += 1 }
                log(
                    .error, "correlator refused a report: dropped",
                    [
                        "status": "\(status)", "windowStart": "\(entry.windowStart)",
                        "answer": String(body.prefix(300)),
                    ])
                failures = 0
                nextAttempt = .now
            case .retry(let reason):
                failures += 1
                state.withLock { $0.failures += 1 }
                client = nil
                let delay = backoff(
                    failures: failures, initial: settings.initialBackoff, max: settings.maxBackoff,
                    unit: random.nextUnit())
                if failures == 1 || failures.isMultiple(of: 10) {
                    log(
                        .warning, "upload failed; retrying",
                        [
                            "reason": reason, "failures": "\(failures)", "retryIn": "\(delay)",
                            "spooled": "\(spool.withLock { $0.count })",
                        ])
                }
                nextAttempt = .now + delay
            }
        }
    }

    private enum PostResult {
        case delivered
        case rejected(Int, String)
        case retry(String)
    }

    private func post(_ body: [UInt8], client: inout HTTPClient?) -> PostResult {
        do throws(HTTPClientError) {
            if client == nil || client!.serverWillClose || client!.peerClosed {
                client = try HTTPClient(connectingTo: settings.correlator, timeout: settings.requestTimeout)
            }
            let bearer = token.withLock { $0 }
            let response = try client!.send(
                "POST", "/v1/reports",
                headers: ["Authorization": "Bearer \(bearer)", "Content-Type": "application/json"],
                body: body)
            switch UploadOutcome(status: response.status) {
            case .delivered: return .delivered
            case .rejected: return .rejected(response.status, response.text)
            case .retry:
                client = nil
                return .retry("HTTP \(response.status)")
            }
        } catch {
            client = nil
            return .retry("\(error)")
        }
    }
}
