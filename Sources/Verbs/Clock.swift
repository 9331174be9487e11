// Monotonic time for the probes: the system's CLOCK_MONOTONIC, and a manual clock that tests and
// the fake verbs layer advance by hand.

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A monotonic clock in nanoseconds. The prober reads RTTs and deadlines from it, never from the
/// wall clock.
public protocol MonotonicClock: AnyObject {
    /// Nanoseconds since an arbitrary fixed point; never goes backwards.
    var nanoseconds: UInt64 { get }
}

/// CLOCK_MONOTONIC.
public final class SystemMonotonicClock: MonotonicClock, Sendable {
    public init() {}

    public var nanoseconds: UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

/// A clock that moves only when told to: `advance(by:)` or `advance(to:)`.
public final class ManualClock: MonotonicClock {
    public private(set) var nanoseconds: UInt64

    public init(nanoseconds: UInt64 = 0) { self.nanoseconds = nanoseconds }

    public func advance(by delta: UInt64) { nanoseconds += delta }

    /// Moves to `time` if that is later; the clock never goes back.
    public func advance(to time: UInt64) { nanoseconds = max(nanoseconds, time) }
}

@available(*, unavailable) extension ManualClock: Sendable {}
