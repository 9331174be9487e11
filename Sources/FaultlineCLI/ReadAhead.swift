// Reading ahead on a second thread: a producer (the store's rows, decoded and their sketches read)
// runs on its own thread while the caller consumes what it made, in the order it was made, a bounded
// number of batches behind. A replay decodes the next reports while the engine closes a window.

import Foundation
import Net

/// Runs `produce` on a thread of its own and calls `consume` on the calling thread with every item
/// it yields, in order; at most `depth` batches of `batchSize` wait between them. Returns once the
/// producer has finished and everything was consumed; throws what the producer threw, after
/// consuming what it yielded before.
func readingAhead<Item: Sendable>(
    batchSize: Int = 64, depth: Int = 64,
    produce: @escaping @Sendable (_ yield: (Item) -> Void) throws -> Void,
    consume: (Item) -> Void
) throws {
    let free = DispatchSemaphore(value: depth)
    let filled = DispatchSemaphore(value: 0)
    let handoffs = Locked<[Handoff<Item>]>([])
    @Sendable func send(_ handoff: Handoff<Item>) {
        free.wait()
        handoffs.withLock { $0.append(handoff) }
        filled.signal()
    }
    let producer = Thread {
        var batch: [Item] = []
        batch.reserveCapacity(batchSize)
        do {
            try produce { item in
                batch.append(item)
                if batch.count == batchSize {
                    send(.items(batch))
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty { send(.items(batch)) }
            send(.end)
        } catch {
            if !batch.isEmpty { send(.items(batch)) }
            send(.failed(error))
        }
    }
    producer.start()
    while true {
        filled.wait()
        let next = handoffs.withLock { $0.removeFirst() }
        free.signal()
        switch next {
        case .items(let items): items.forEach(consume)
        case .end: return
        case .failed(let error): throw error
        }
    }
}

/// What the producer hands the consumer: a batch, its end, or why it stopped.
private enum Handoff<Item: Sendable>: Sendable {
    case items([Item])
    case end
    case failed(any Error)
}
