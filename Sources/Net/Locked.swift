// `Locked`: a `Mutex` from Synchronization whose hand-offs ThreadSanitizer can see. Under contention
// Linux's Mutex waits with a priority-inheriting futex and the kernel hands the lock over, which
// ThreadSanitizer does not model; it then reports races between two critical sections of the same
// lock. An atomic acquire at the start of each section and a release at its end tell it the order.

import Synchronization

/// A value behind a `Mutex`, for state shared by threads (the server's, the service's, the agent's).
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    /// Touched only inside the lock: the acquire/release pair ThreadSanitizer orders sections by.
    private let handoff = Atomic<UInt>(0)

    public init(_ value: Value) { mutex = Mutex(value) }

    /// Runs `body` with the value, under the lock.
    public func withLock<Result: Sendable>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try mutex.withLock { value in
            _ = handoff.load(ordering: .acquiring)
            defer { handoff.wrappingAdd(1, ordering: .releasing) }
            return try body(&value)
        }
    }
}
