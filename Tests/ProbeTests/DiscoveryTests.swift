// Discovery on committed sysfs fixtures: an HGX node (8 GPUs, 8 NICs, a PCIe switch per pair) and
// a PCIe node with 2 NICs for 8 GPUs; NICs, ports, counters, GPUs, PCIe links, rails, overrides.

import Probe
import Testing

/// A fixture tree beside this file.
func fixture(_ name: String, file: String = #filePath) -> SysfsReader {
    let directory = file.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(
        separator: "/")
    return SysfsReader(root: directory + "/Fixtures/" + name)
}

@Suite("Discovery from sysfs")
struct DiscoveryTests {
    @Test("HGX: eight NICs with ports and counters, eight GPUs (not the NVSwitches), one rail per switch")
    func hgx() throws {
        let node = try discoverNode(fixture("hgx-8gpu-8nic"))
        #expect(node.nics.map(\.name) == (0..<8).map { "mlx5_\($0)" })
        let first = try #require(node.nics.first)
        #expect(first.pciAddress == "0000:19:00.0")
        #expect(first.nodeGUID == "0c42:a103:00a0:0000")
        #expect(first.numaNode == 0)
        #expect(first.ports.count == 1)
        let port = try #require(first.ports.first)
        #expect(port.state == "ACTIVE" && port.physicalState == "LinkUp")
        #expect(port.rate == "400 Gb/sec (4X NDR)" && port.linkLayer == "InfiniBand" && port.lid == 100)
        #expect(
            port.counters.map(\.name) == [
                "link_downed", "port_rcv_data", "port_rcv_errors", "port_xmit_discards", "symbol_error",
            ])
        #expect(node.nics[5].ports[0].counters.first { $0.name == "symbol_error" }?.value == 17)
        #expect(node.gpus.count == 8)
        #expect(node.gpus.allSatisfy { $0.deviceID == "0x2330" && !$0.link.isDowntrained })
        #expect(node.gpus[0].link.speedGTs == 32 && node.gpus[0].link.width == 16)
        #expect(node.rails.map(\.nic) == (0..<8).map { "mlx5_\($0)" })
        #expect(node.rails.map(\.gpu) == node.gpus.map(\.pciAddress))
        // GPU and NIC meet at the switch's upstream port: root complex, root port, switch.
        #expect(node.rails.allSatisfy { $0.sharedDepth == 3 && !$0.overridden })
    }

    @Test("two NICs for eight GPUs: four rails per NIC by socket; a down port and a downtrained GPU show")
    func twoNICs() throws {
        let node = try discoverNode(fixture("pcie-8gpu-2nic"))
        #expect(node.nics.map(\.name) == ["mlx5_0", "mlx5_1"])
        #expect(node.gpus.count == 8)
        #expect(
            node.rails.map(\.nic) == [String](repeating: "mlx5_0", count: 4)
                + [String](repeating: "mlx5_1", count: 4))
        #expect(node.nics[1].ports[0].state == "DOWN")
        #expect(node.nics[1].ports[0].physicalState == "Disabled")
        let slow = node.gpus.filter(\.link.isDowntrained)
        #expect(slow.map(\.pciAddress) == ["0000:95:00.0"])
        #expect(slow.first?.link.width == 8 && slow.first?.link.maxWidth == 16)
        #expect(slow.first?.link.speedGTs == 8 && slow.first?.link.maxSpeedGTs == 16)
    }

    @Test("overrides choose the NIC; unknown NICs and rails are errors that say which")
    func overrides() throws {
        let node = try discoverNode(fixture("hgx-8gpu-8nic"), overrides: [2: "mlx5_7"])
        #expect(node.rails[2].nic == "mlx5_7" && node.rails[2].overridden && node.rails[2].sharedDepth == 0)
        #expect(node.rails[7].nic == "mlx5_7")
        #expect(throws: DiscoveryError(path: "rail 1", message: "no RDMA device 'mlx5_9'")) {
            _ = try discoverNode(fixture("hgx-8gpu-8nic"), overrides: [1: "mlx5_9"])
        }
        #expect(throws: DiscoveryError.self) {
            _ = try discoverNode(fixture("hgx-8gpu-8nic"), overrides: [8: "mlx5_0"])
        }
    }

    @Test("a root without sysfs is an error naming the path; this machine's sysfs reads without RDMA")
    func roots() throws {
        #expect(throws: DiscoveryError.self) {
            _ = try discoverNode(SysfsReader(root: "/nonexistent-faultline"))
        }
        let live = try discoverNode(SysfsReader())
        #expect(live.rails.count <= live.gpus.count)
    }

    @Test("symlinks that leave the root do not resolve")
    func escape() {
        let reader = fixture("hgx-8gpu-8nic")
        #expect(reader.resolved("sys/class/infiniband/mlx5_0/device") != nil)
        #expect(reader.resolved("../../../../..") == nil)
        #expect(reader.text("sys/class/infiniband/mlx5_0/nosuch") == nil)
    }
}
