// The service's one view of wall time: a `ServiceClock` the correlator asks for "now", the system's
// at the edge, a manual one in tests so windows close exactly when a test says.

import FleetModel
import Foundation
import Net

/// Where the correlator gets the time: window closes and `received_at` only.
public protocol ServiceClock: Sendable {
    func now() -> Timestamp
}

/// The system's wall clock, whole seconds.
public struct SystemClock: ServiceClock {
    public init() {}
    public func now() -> Timestamp {
        Timestamp(secondsSinceEpoch: Int64(Date().timeIntervalSince1970.rounded(.down)))
    }
}

/// A clock that moves only when told (tests).
public final class ManualClock: ServiceClock {
    private let current: Locked<Timestamp>

    public init(_ start: Timestamp) { current = Locked(start) }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func set(_ time: Timestamp) { current.withLock { $0 = time } }

    public func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }
}
