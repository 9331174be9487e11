// `Locked` under contention: every increment from several threads lands, and ThreadSanitizer
// (make test-tsan) sees the critical sections ordered.

import Foundation
import Synchronization
import Testing

@testable import Net

@Suite struct LockedTests {
    @Test func contendedIncrementsAllLand() {
        let counter = Locked(0)
        let shared = Locked([Int: Int]())
        let threads = 4
        let rounds = 20_000
        let done = DispatchGroup()
        for thread in 0..<threads {
            done.enter()
            Thread {
                for round in 0..<rounds {
                    counter.withLock { $0 += 1 }
                    shared.withLock { $0[round % 7, default: 0] += thread }
                }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(counter.withLock { $0 } == threads * rounds)
        #expect(shared.withLock { $0.values.reduce(0, +) } == rounds * (0..<threads).reduce(0, +))
    }
}
