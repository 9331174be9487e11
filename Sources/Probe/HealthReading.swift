// What the agent re-reads from sysfs once per window for the rails discovery found at start: is each
// rail's GPU still on the bus, the PCIe link of its GPU and of its NIC (current against maximum speed
// and width), and each NIC port's state and error counters. Plain readings, no judgement and no
// history: the agent's HostHealthCollector turns consecutive readings into the report's `health`.

/// The RDMA port error counters read each window (`ports/N/counters/<name>`). A NIC without one of
/// these files simply lacks that counter.
public let railPortCounterNames = [
    "excessive_buffer_overrun_errors", "link_downed", "link_error_recovery", "local_link_integrity_errors",
    "port_rcv_errors", "port_rcv_remote_physical_errors", "port_xmit_discards", "symbol_error",
]

/// One counter's value as read.
public struct CounterReading: Hashable, Sendable {
    public var name: String
    public var value: UInt64

    public init(name: String, value: UInt64) {
        self.name = name
        self.value = value
    }
}

/// One port of a rail's NIC.
public struct PortReading: Hashable, Sendable {
    public var number: Int
    /// "ACTIVE", "DOWN", "INIT", ... from `state` ("4: ACTIVE"); nil when unreadable.
    public var state: String?
    /// "LinkUp", "Disabled", "Polling", ... from `phys_state`; nil when unreadable.
    public var physicalState: String?
    /// The counters of `railPortCounterNames` that exist, in that order.
    public var counters: [CounterReading]
}

/// A rail's GPU as sysfs shows it now.
public struct GPUReading: Hashable, Sendable {
    public var rail: Int
    /// The PCI address discovery found it at, "0000:95:00.0".
    public var address: String
    /// False when `sys/bus/pci/devices/<address>` is gone: the GPU fell off the bus (or was removed).
    public var present: Bool
    /// Nil when the GPU is not present.
    public var link: PCIeLink?
}

/// A NIC that serves one or more rails, as sysfs shows it now.
public struct NICReading: Hashable, Sendable {
    public var name: String
    /// The rails it serves, ascending (several on a node with fewer NICs than GPUs).
    public var rails: [Int]
    /// False when `sys/class/infiniband/<name>` is gone.
    public var present: Bool
    public var address: String?
    public var link: PCIeLink?
    /// Its ports, by number.
    public var ports: [PortReading]
}

/// One window's reading of every rail's devices.
public struct HealthReading: Hashable, Sendable {
    /// One per rail, in rail order.
    public var gpus: [GPUReading]
    /// One per NIC that serves a rail, by name.
    public var nics: [NICReading]
    /// Files that should exist and could not be read, each "path: what", in reading order.
    public var problems: [String]
}

/// Reads the GPUs and NICs of `rails` (from discovery) as they are now. Never throws: a file that
/// cannot be read is left out and named in `problems`; a device that is gone is `present: false`.
public func readRailHealth(_ reader: SysfsReader, rails: [RailInfo]) -> HealthReading {
    var problems: [String] = []
    let gpus = rails.sorted { $0.rail < $1.rail }.map { rail -> GPUReading in
        let entry = "sys/bus/pci/devices/\(rail.gpu)"
        guard let path = reader.resolved(entry) else {
            return GPUReading(rail: rail.rail, address: rail.gpu, present: false, link: nil)
        }
        let link = PCIeLink(reader, path)
        if link.width == nil { problems.append("\(reader.absolute(path))/current_link_width: unreadable") }
        return GPUReading(rail: rail.rail, address: rail.gpu, present: true, link: link)
    }
    var railsOfNIC: [String: [Int]] = [:]
    for rail in rails { railsOfNIC[rail.nic, default: []].append(rail.rail) }
    let nics = railsOfNIC.keys.sorted().map { name -> NICReading in
        let served = (railsOfNIC[name] ?? []).sorted()
        let base = "sys/class/infiniband/\(name)"
        guard reader.exists(base) else {
            return NICReading(name: name, rails: served, present: false, address: nil, link: nil, ports: [])
        }
        let pciPath = reader.resolved(base + "/device")
        if pciPath == nil { problems.append("\(reader.absolute(base))/device: does not resolve") }
        let ports = reader.entries(base + "/ports").compactMap { entry -> PortReading? in
            guard let number = Int(entry) else { return nil }
            let port = "\(base)/ports/\(entry)"
            let state = reader.text(port + "/state").map(portStateWord)
            if state == nil { problems.append("\(reader.absolute(port))/state: unreadable") }
            let counters = railPortCounterNames.compactMap { counter -> CounterReading? in
                guard let text = reader.text("\(port)/counters/\(counter)") else { return nil }
                guard let value = UInt64(text) else {
                    problems.append("\(reader.absolute(port))/counters/\(counter): not a count")
                    return nil
                }
                return CounterReading(name: counter, value: value)
            }
            return PortReading(
                number: number, state: state,
                physicalState: reader.text(port + "/phys_state").map(portStateWord),
                counters: counters)
        }
        return NICReading(
            name: name, rails: served, present: true, address: pciPath.map(lastComponent),
            link: pciPath.map { PCIeLink(reader, $0) }, ports: ports.sorted { $0.number < $1.number })
    }
    return HealthReading(gpus: gpus, nics: nics, problems: problems)
}
