// The index mappings: every bin answers within the accuracy for all three interpolations across
// the whole double range, the fast log2 agrees with libm, and bad parameters are refused.

import Foundation
import Simulation
import Testing

@testable import QuantileSketch

struct MappingTests {
    /// Magnitudes from just above the zero threshold to the largest double, plus random ones.
    static func magnitudes(seed: UInt64) -> [Double] {
        var generator = SeededGenerator(seed: seed)
        let edges = [
            Double.leastNormalMagnitude * 1.03, 1e-300, 1e-9, 0.5, 1, 1.0000001, 2, 3, 1e6, 1e300,
            Double.greatestFiniteMagnitude,
        ]
        let random = (0..<20000).map { _ in exp2((generator.nextUnit() - 0.5) * 2000) }
        return edges + random
    }

    @Test(arguments: [IndexMapping.Interpolation.none, .linear, .cubic], [0.05, 0.01, 0.001])
    func everyBinAnswersWithinAccuracy(interpolation: IndexMapping.Interpolation, accuracy: Double) throws {
        let gamma = 1 + 2 * accuracy / (1 - accuracy)
        let mapping = try IndexMapping(gamma: gamma, indexOffset: 0, interpolation: interpolation)
        #expect(abs(mapping.relativeAccuracy - accuracy) < 1e-12)
        for x in Self.magnitudes(seed: UInt64(accuracy * 1e6)) where x > mapping.minIndexableMagnitude {
            let key = mapping.key(x)
            #expect(abs(key) < Int(Int32.max))
            let answer = mapping.value(ofKey: key)
            #expect(answer.isFinite)
            // The last bin below infinity answers with the largest double; everything else is exact.
            if x < Double.greatestFiniteMagnitude / 2 {
                #expect(isWithin(accuracy, answer, of: x), "\(interpolation) a \(accuracy) x \(x) key \(key)")
            }
        }
    }

    @Test func keysAreMonotonicAndOffsetShiftsThem() throws {
        let plain = try IndexMapping(relativeAccuracy: 0.01)
        let shifted = try IndexMapping(gamma: plain.gamma, indexOffset: 7, interpolation: .none)
        var previous = Int.min
        for x in stride(from: 0.01, to: 1000, by: 0.137) {
            let key = plain.key(x)
            #expect(key >= previous)
            previous = key
            #expect(shifted.key(x) == key + 7)
            #expect(shifted.value(ofKey: key + 7) == plain.value(ofKey: key))
        }
        #expect(plain.key(1) == 0)  // powers of two and 1 land exactly
    }

    @Test func fastLog2AgreesWithLibm() {
        var generator = SeededGenerator(seed: 99)
        for _ in 0..<200_000 {
            let x = exp2((generator.nextUnit() - 0.5) * 2040)
            let expected = log2(x)
            #expect(abs(FastLog2.shared.evaluate(x) - expected) <= 4e-15 * max(1, abs(expected)), "x \(x)")
        }
        for e in -1022...1023 {
            #expect(FastLog2.shared.evaluate(exp2(Double(e))) == Double(e))
        }
    }

    @Test func keyTableIsExactAtBinBoundaries() throws {
        let mapping = try IndexMapping(relativeAccuracy: IndexMapping.defaultRelativeAccuracy)
        let lnGamma = log(mapping.gamma)
        // Bin k holds (γ^(k-1), γ^k]: γ^k itself is in bin k, the next double up in bin k + 1.
        for key in stride(from: -600, through: 1300, by: 7) {
            let boundary = exp(Double(key) * lnGamma)
            #expect(mapping.key(boundary) == key, "γ^\(key)")
            #expect(mapping.key(boundary.nextUp) == key + 1, "just above γ^\(key)")
            #expect(mapping.key(boundary.nextDown.nextDown) == key, "just below γ^\(key)")
        }
    }

    @Test func keyTableAgreesWithTheLogarithmAwayFromBoundaries() throws {
        let tabled = try IndexMapping(relativeAccuracy: IndexMapping.defaultRelativeAccuracy)
        // The same bins computed through log2: a gamma one ulp off does not get the table.
        let computed = try IndexMapping(gamma: tabled.gamma.nextUp, indexOffset: 0, interpolation: .none)
        var generator = SeededGenerator(seed: 5)
        var compared = 0
        for _ in 0..<100_000 {
            let x = exp2((generator.nextUnit() - 0.5) * 80)  // spans the table and beyond it
            let exact = log(x) / log(tabled.gamma)
            guard abs(exact - exact.rounded()) > 1e-6 else { continue }  // too close to call
            #expect(tabled.key(x) == computed.key(x), "x \(x)")
            compared += 1
        }
        #expect(compared > 99_000)
    }

    @Test func badParametersAreRefused() {
        for accuracy in [0, 1, -0.1, 1.5, .nan, .infinity, 1e-9] {
            #expect(throws: SketchError.self) { try IndexMapping(relativeAccuracy: accuracy) }
        }
        for gamma in [1, 0.99, .nan, .infinity, -3] {
            #expect(throws: SketchError.self) {
                try IndexMapping(gamma: gamma, indexOffset: 0, interpolation: .none)
            }
        }
        #expect(throws: SketchError.self) {
            try IndexMapping(gamma: 1.02, indexOffset: .nan, interpolation: .none)
        }
        #expect(throws: SketchError.self) {
            try IndexMapping(gamma: 1.02, indexOffset: 1e12, interpolation: .none)
        }
        #expect(throws: SketchError.self) {
            try IndexMapping(gamma: 1.02, indexOffset: 0, interpolation: .quadratic)
        }
    }

    @Test func compatibilityToleratesLastBitGammaDifferences() throws {
        let ours = try IndexMapping(relativeAccuracy: 0.01)
        let theirs = try IndexMapping(gamma: (1 + 0.01) / (1 - 0.01), indexOffset: 0, interpolation: .none)
        #expect(ours.isCompatible(with: theirs))
        #expect(!ours.isCompatible(with: try IndexMapping(relativeAccuracy: 0.011)))
        #expect(
            !ours.isCompatible(
                with: try IndexMapping(gamma: ours.gamma, indexOffset: 0, interpolation: .cubic)))
    }
}
