// A bounded queue for handler work: at most `capacity` jobs waiting or running; the next one is refused
// at once so the server can answer 503 with Retry-After instead of piling up threads and memory.

import Dispatch
import Synchronization

/// Runs handler work on one Dispatch queue (serial by default: the engine's executor later) with a
/// bound on how much may wait. The caller, a connection thread, blocks until its job ran.
public final class WorkQueue: Sendable {
    /// The queue jobs run on. Serial unless one was passed in.
    public let queue: DispatchQueue
    /// Jobs that may be waiting or running at once.
    public let capacity: Int
    /// What a refused request is told to wait, in seconds (`Retry-After`).
    public let retryAfterSeconds: Int
    private let state = Locked<(pending: Int, refused: Int)>((0, 0))

    public init(label: String, capacity: Int, retryAfterSeconds: Int = 1, queue: DispatchQueue? = nil) {
        precondition(capacity >= 1, "a work queue needs room for one job")
        self.queue = queue ?? DispatchQueue(label: label)
        self.capacity = capacity
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Runs `work` on the queue and returns its result once it ran, or nil at once (without running
    /// it) when `capacity` jobs are already waiting or running.
    public func run<T>(_ work: () throws -> T) rethrows -> T? {
        let admitted = state.withLock { state in
            if state.pending >= capacity {
                state.refused += 1
                return false
            }
            state.pending += 1
            return true
        }
        guard admitted else { return nil }
        defer { state.withLock { $0.pending -= 1 } }
        return try queue.sync(execute: work)
    }

    /// Jobs waiting or running now.
    public var pending: Int { state.withLock { $0.pending } }
    /// Jobs refused since the start.
    public var refused: Int { state.withLock { $0.refused } }
}
