// libFuzzer entry point for the sketch decoder (built by ci/fuzz-sketch together with the
// QuantileSketch sources). Any input must decode to a sketch that answers and round-trips, or throw.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSketchDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let sketch = try? QuantileSketch(decoding: bytes) else { return 0 }
    _ = try? sketch.quantiles([0, 0.5, 0.99, 1])
    guard let again = try? QuantileSketch(decoding: sketch.encoded()), again.count == sketch.count else {
        fatalError("a decoded sketch did not survive its own round trip")
    }
    return 0
}
