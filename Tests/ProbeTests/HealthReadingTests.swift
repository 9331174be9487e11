// The per-window sysfs reading of the rails' devices on the committed fixtures: each rail's GPU
// and link, each rail NIC once with the rails it serves, port states and the error counters.

import Probe
import Testing

@Suite struct HealthReadingTests {
    @Test("two NICs for eight GPUs: each NIC read once with its four rails; states and counters as written")
    func twoNICs() throws {
        let reader = fixture("pcie-8gpu-2nic")
        let reading = readRailHealth(reader, rails: try discoverNode(reader).rails)
        #expect(reading.problems.isEmpty)
        #expect(reading.gpus.map(\.rail) == Array(0..<8) && reading.gpus.allSatisfy(\.present))
        #expect(reading.gpus[6].address == "0000:95:00.0" && reading.gpus[6].link?.width == 8)
        #expect(reading.nics.map(\.name) == ["mlx5_0", "mlx5_1"])
        #expect(reading.nics.map(\.rails) == [[0, 1, 2, 3], [4, 5, 6, 7]])
        #expect(reading.nics.map(\.address) == ["0000:18:00.0", "0000:98:00.0"])
        let down = try #require(reading.nics.last?.ports.first)
        #expect(down.number == 1 && down.state == "DOWN" && down.physicalState == "Disabled")
        // Only the error counters, in railPortCounterNames' order (port_rcv_data is not one).
        #expect(
            down.counters == [
                CounterReading(name: "link_downed", value: 0),
                CounterReading(name: "port_rcv_errors", value: 0),
                CounterReading(name: "port_xmit_discards", value: 3),
                CounterReading(name: "symbol_error", value: 0),
            ])
    }

    @Test("devices named by discovery but gone from sysfs read as not present, not as errors")
    func goneDevices() throws {
        let reader = fixture("hgx-8gpu-8nic")
        var rails = try discoverNode(reader).rails
        rails[1].gpu = "0000:77:00.0"
        rails[1].nic = "mlx5_9"
        let reading = readRailHealth(reader, rails: rails)
        #expect(reading.gpus[1].present == false && reading.gpus[1].link == nil)
        #expect(reading.nics.first { $0.name == "mlx5_9" }?.present == false)
        #expect(
            reading.nics.first { $0.name == "mlx5_5" }?.ports.first?.counters.first {
                $0.name == "symbol_error"
            }?.value == 17)
        #expect(reading.problems.isEmpty)
    }
}
