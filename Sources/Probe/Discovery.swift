// What a node has, read from sysfs: RDMA devices with their ports and counters, NVIDIA GPUs, the
// PCIe link each trained at, and the rails: every GPU paired with the NIC nearest to it in the
// PCIe tree (the deepest common upstream bridge), unless an override says otherwise.

/// A PCIe link: the speed and width it trained at, and the most it could.
public struct PCIeLink: Hashable, Sendable {
    public var speedGTs: Double?
    public var maxSpeedGTs: Double?
    public var width: Int?
    public var maxWidth: Int?

    /// Trained narrower or slower than the device and slot allow.
    public var isDowntrained: Bool {
        if let width, let maxWidth, width < maxWidth { return true }
        if let speedGTs, let maxSpeedGTs, speedGTs < maxSpeedGTs { return true }
        return false
    }

    /// Reads current/max link speed and width of the PCI device at `path`.
    init(_ reader: SysfsReader, _ path: String) {
        func speed(_ name: String) -> Double? {
            // "32.0 GT/s PCIe" (newer kernels) or "8 GT/s"; "Unknown" when the link is down.
            reader.text(path + "/" + name)?.split(separator: " ").first.flatMap { Double($0) }
        }
        speedGTs = speed("current_link_speed")
        maxSpeedGTs = speed("max_link_speed")
        width = reader.integer(path + "/current_link_width")
        maxWidth = reader.integer(path + "/max_link_width")
    }
}

/// One port of an RDMA device, from `ports/N/`.
public struct RDMAPortInfo: Hashable, Sendable {
    public var number: Int
    /// "ACTIVE", "DOWN", ... (the name after the number in `state`).
    public var state: String
    /// "LinkUp", "Disabled", "Polling", ...
    public var physicalState: String
    /// As the kernel writes it: "400 Gb/sec (4X NDR)".
    public var rate: String
    /// "InfiniBand" or "Ethernet".
    public var linkLayer: String
    public var lid: Int?
    /// The port's counters (`ports/N/counters/*`), by name, sorted.
    public var counters: [(name: String, value: UInt64)]

    public static func == (lhs: RDMAPortInfo, rhs: RDMAPortInfo) -> Bool {
        lhs.number == rhs.number && lhs.state == rhs.state && lhs.physicalState == rhs.physicalState
            && lhs.rate == rhs.rate && lhs.linkLayer == rhs.linkLayer && lhs.lid == rhs.lid
            && lhs.counters.map(\.name) == rhs.counters.map(\.name)
            && lhs.counters.map(\.value) == rhs.counters.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(number)
        hasher.combine(state)
    }
}

/// An RDMA device under `sys/class/infiniband`.
public struct RDMADeviceInfo: Hashable, Sendable {
    public var name: String
    /// The PCI address of its function, "0000:19:00.0", from the `device` symlink.
    public var pciAddress: String?
    /// Its PCI device's path with symlinks resolved ("sys/devices/pci0000:15/..."), for affinity.
    public var pciPath: String?
    public var nodeGUID: String?
    public var firmware: String?
    public var numaNode: Int?
    public var link: PCIeLink?
    public var ports: [RDMAPortInfo]
}

/// An NVIDIA GPU under `sys/bus/pci/devices` (vendor 0x10de, class 0x0302xx 3D or 0x0300xx VGA).
public struct GPUInfo: Hashable, Sendable {
    public var pciAddress: String
    public var pciPath: String
    /// PCI device id, e.g. "0x2330".
    public var deviceID: String
    public var numaNode: Int?
    public var link: PCIeLink
}

/// A GPU and the NIC that serves it.
public struct RailInfo: Hashable, Sendable {
    /// 0, 1, ... in GPU PCI-address order.
    public var rail: Int
    public var gpu: String
    public var nic: String
    /// How many path components the two share below `sys/devices`: the depth of their deepest
    /// common upstream bridge (1 is the root complex only; 0 not even that).
    public var sharedDepth: Int
    /// True if an override chose the NIC.
    public var overridden: Bool
}

/// Everything discovery found.
public struct NodeInventory: Hashable, Sendable {
    public var nics: [RDMADeviceInfo]
    public var gpus: [GPUInfo]
    public var rails: [RailInfo]
}

/// Reads the node's RDMA devices and GPUs under `reader.root` and pairs them into rails.
/// `overrides` maps a rail number to the NIC name it must use (an error names an unknown NIC or
/// rail). Throws if the root itself is not a sysfs tree.
public func discoverNode(
    _ reader: SysfsReader, overrides: [Int: String] = [:]
) throws(DiscoveryError)
    -> NodeInventory
{
    guard reader.exists("sys") else {
        throw DiscoveryError(path: reader.absolute("sys"), message: "no sysfs here")
    }
    let nics = reader.entries("sys/class/infiniband").map { readRDMADevice(reader, $0) }
    let gpus = readGPUs(reader)
    let rails = try pairRails(gpus: gpus, nics: nics, overrides: overrides)
    return NodeInventory(nics: nics, gpus: gpus, rails: rails)
}

func readRDMADevice(_ reader: SysfsReader, _ name: String) -> RDMADeviceInfo {
    let base = "sys/class/infiniband/\(name)"
    let pciPath = reader.resolved(base + "/device")
    let ports = reader.entries(base + "/ports").compactMap { entry -> RDMAPortInfo? in
        guard let number = Int(entry) else { return nil }
        let port = "\(base)/ports/\(entry)"
        func named(_ file: String) -> String {
            reader.text("\(port)/\(file)").map(portStateWord) ?? "unknown"
        }
        let counters = reader.entries(port + "/counters").compactMap { counter -> (String, UInt64)? in
            guard let text = reader.text("\(port)/counters/\(counter)"), let value = UInt64(text) else {
                return nil
            }
            return (counter, value)
        }
        return RDMAPortInfo(
            number: number, state: named("state"), physicalState: named("phys_state"),
            rate: reader.text(port + "/rate") ?? "unknown",
            linkLayer: reader.text(port + "/link_layer") ?? "unknown",
            lid: reader.integer(port + "/lid"), counters: counters.map { (name: $0.0, value: $0.1) })
    }
    return RDMADeviceInfo(
        name: name, pciAddress: pciPath.map { lastComponent($0) }, pciPath: pciPath,
        nodeGUID: reader.text(base + "/node_guid"), firmware: reader.text(base + "/fw_ver"),
        numaNode: pciPath.flatMap { reader.integer($0 + "/numa_node") },
        link: pciPath.map { PCIeLink(reader, $0) }, ports: ports.sorted { $0.number < $1.number })
}

func readGPUs(_ reader: SysfsReader) -> [GPUInfo] {
    reader.entries("sys/bus/pci/devices").compactMap { address -> GPUInfo? in
        let entry = "sys/bus/pci/devices/\(address)"
        guard reader.integer(entry + "/vendor") == 0x10DE, let classCode = reader.integer(entry + "/class"),
            classCode >> 8 == 0x0302 || classCode >> 8 == 0x0300,
            let path = reader.resolved(entry)
        else { return nil }
        return GPUInfo(
            pciAddress: address, pciPath: path, deviceID: reader.text(entry + "/device") ?? "unknown",
            numaNode: reader.integer(entry + "/numa_node"), link: PCIeLink(reader, path))
    }
}

/// Each GPU, in PCI-address order, with the NIC whose PCI path shares the most components with
/// its own (ties: the NIC with the fewer rails so far, then by name), or the override's NIC.
func pairRails(
    gpus: [GPUInfo], nics: [RDMADeviceInfo], overrides: [Int: String]
) throws(DiscoveryError)
    -> [RailInfo]
{
    for (rail, nic) in overrides.sorted(by: { $0.key < $1.key }) {
        guard gpus.indices.contains(rail) else {
            throw DiscoveryError(
                path: "rail \(rail)", message: "no such rail: the node has \(gpus.count) GPUs")
        }
        guard nics.contains(where: { $0.name == nic }) else {
            throw DiscoveryError(path: "rail \(rail)", message: "no RDMA device '\(nic)'")
        }
    }
    guard !nics.isEmpty else { return [] }
    var railsPerNIC: [String: Int] = [:]
    var rails: [RailInfo] = []
    for (index, gpu) in gpus.enumerated() {
        let gpuParts = pathComponents(gpu.pciPath)
        func shared(_ nic: RDMADeviceInfo) -> Int {
            guard let path = nic.pciPath else { return -1 }
            return zip(gpuParts, pathComponents(path)).prefix { $0 == $1 }.count
        }
        let chosen: RDMADeviceInfo
        if let name = overrides[index], let nic = nics.first(where: { $0.name == name }) {
            chosen = nic
        } else {
            chosen = nics.max { a, b in
                (shared(a), -(railsPerNIC[a.name] ?? 0), b.name) < (
                    shared(b), -(railsPerNIC[b.name] ?? 0), a.name
                )
            }!
        }
        railsPerNIC[chosen.name, default: 0] += 1
        rails.append(
            RailInfo(
                rail: index, gpu: gpu.pciAddress, nic: chosen.name, sharedDepth: max(0, shared(chosen)),
                overridden: overrides[index] != nil))
    }
    return rails
}

/// The name in a port's `state` or `phys_state`: "4: ACTIVE" → "ACTIVE", "5: LinkUp" → "LinkUp".
func portStateWord(_ text: String) -> String {
    text.split(separator: ":", maxSplits: 1).last.map { String($0).trimmingWhitespace } ?? text
}

/// The components of a resolved device path below `sys/devices`.
private func pathComponents(_ path: String) -> [Substring] {
    let parts = path.split(separator: "/")
    guard parts.count >= 2, parts[0] == "sys", parts[1] == "devices" else { return parts }
    return Array(parts.dropFirst(2))
}

func lastComponent(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}
