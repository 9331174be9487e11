// `faultline agent discover`: what the node agent would probe — RDMA devices through libibverbs
// (or why there are none), and NICs, GPUs, PCIe links and rails from sysfs. The rest of `agent`
// (probe, responder, upload) comes with the correlator.

import Probe
import Verbs

struct AgentDiscoverCommand: Command {
    static let name = "agent discover"
    static let summary = "list this node's RDMA devices, GPUs and rails (GPU ↔ nearest NIC)"
    static let usage = "agent discover [--sysfs ROOT] [--rails N=NIC,...] [--json]"
    static let help = """
        Reads sysfs for RDMA devices (class/infiniband: PCI address, ports, state, rate, counters),
        NVIDIA GPUs (bus/pci/devices, vendor 0x10de, class 0x0300/0x0302) and their PCIe links, and
        pairs each GPU with the NIC nearest to it in the PCIe tree (rail N is the N-th GPU by PCI
        address). Without --sysfs it also asks libibverbs for the devices and their ports; where the
        kernel has no RDMA it says so, with the errno text, and still exits 0.

        options:
          --sysfs ROOT      read ROOT/sys instead of /sys (a fixture or a copied tree); skips libibverbs
          --rails N=NIC,..  use NIC for rail N instead of the nearest one, e.g. 0=mlx5_0,1=mlx5_3
          --json            one JSON object instead of text
        """

    let sysfsRoot: String?
    let overrides: [Int: String]
    let json: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["sysfs", "rails"], flags: ["json"])
        sysfsRoot = options.value("sysfs")
        json = options.flag("json")
        var overrides: [Int: String] = [:]
        for item in (options.value("rails") ?? "").split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let rail = Int(parts[0]), (0...63).contains(rail), !parts[1].isEmpty,
                overrides[rail] == nil
            else { throw CommandError.usage("--rails wants N=NIC pairs with N in 0...63, got '\(item)'") }
            overrides[rail] = String(parts[1])
        }
        self.overrides = overrides
    }

    func run(io: some CommandIO) throws(CommandError) {
        let inventory: NodeInventory
        do {
            inventory = try discoverNode(SysfsReader(root: sysfsRoot ?? "/"), overrides: overrides)
        } catch {
            throw CommandError.data("\(error)")
        }
        // libibverbs only for the live system: a fixture's devices do not exist here.
        let verbs: Result<[DeviceInfo], VerbsError>? =
            sysfsRoot == nil ? Result { () throws(VerbsError) in try queryVerbs() } : nil
        io.write(json ? jsonText(inventory, verbs) : text(inventory, verbs))
    }

    /// Every device libibverbs lists, opened and queried.
    private func queryVerbs() throws(VerbsError) -> [DeviceInfo] {
        let verbs = RealVerbs()
        var devices: [DeviceInfo] = []
        for name in try verbs.deviceNames() {
            devices.append(try verbs.queryDevice(verbs.openDevice(name)))
        }
        return devices
    }

    private func text(_ inventory: NodeInventory, _ verbs: Result<[DeviceInfo], VerbsError>?) -> String {
        var lines: [String] = []
        switch verbs {
        case .failure(let error) where error.isNoRDMA:
            lines.append("no RDMA devices: \(error) (the kernel has no RDMA support)")
        case .failure(let error):
            lines.append("no RDMA devices: \(error)")
        case .success(let devices) where devices.isEmpty:
            lines.append("no RDMA devices: libibverbs lists none")
        case .success(let devices):
            lines.append("libibverbs devices:")
            for device in devices {
                lines.append("  \(device.name) guid \(device.guidText) fw \(device.firmware)")
                for port in device.ports {
                    lines.append(
                        "    port \(port.number): \(port.state.rawValue) \(port.linkLayer.rawValue) "
                            + "\(port.lanes)x \(port.speedName) mtu \(port.mtu) lid \(port.lid) gids \(port.gids.count)"
                    )
                }
            }
        case nil:
            break
        }
        lines.append("NICs (sysfs): \(inventory.nics.count)")
        for nic in inventory.nics {
            lines.append(
                "  \(nic.name) pci \(nic.pciAddress ?? "?") numa \(nic.numaNode.map(String.init) ?? "?") \(linkText(nic.link))"
            )
            for port in nic.ports {
                let counters = port.counters.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
                lines.append(
                    "    port \(port.number): \(port.state) (\(port.physicalState)) \(port.linkLayer) \(port.rate)"
                )
                if !counters.isEmpty { lines.append("      \(counters)") }
            }
        }
        lines.append("GPUs (sysfs): \(inventory.gpus.count)")
        for gpu in inventory.gpus {
            lines.append(
                "  \(gpu.pciAddress) device \(gpu.deviceID) numa \(gpu.numaNode.map(String.init) ?? "?") \(linkText(gpu.link))"
            )
        }
        lines.append("rails: \(inventory.rails.count)")
        for rail in inventory.rails {
            lines.append(
                "  rail \(rail.rail): GPU \(rail.gpu) <-> \(rail.nic)"
                    + (rail.overridden ? " (override)" : " (shared PCIe depth \(rail.sharedDepth))"))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func linkText(_ link: PCIeLink?) -> String {
        guard let link else { return "link ?" }
        func speed(_ value: Double?) -> String { value.map { "\(jsonNumber($0)) GT/s" } ?? "?" }
        func width(_ value: Int?) -> String { value.map { "x\($0)" } ?? "x?" }
        return
            "link \(speed(link.speedGTs)) \(width(link.width)) of \(speed(link.maxSpeedGTs)) \(width(link.maxWidth))"
            + (link.isDowntrained ? " DOWNTRAINED" : "")
    }

    private func jsonText(_ inventory: NodeInventory, _ verbs: Result<[DeviceInfo], VerbsError>?) -> String {
        func optional(_ value: Int?) -> String { value.map(String.init) ?? "null" }
        func optionalString(_ value: String?) -> String { value.map(jsonString) ?? "null" }
        func link(_ link: PCIeLink?) -> String {
            guard let link else { return "null" }
            return
                "{\"speedGTs\": \(jsonNumber(link.speedGTs)), \"maxSpeedGTs\": \(jsonNumber(link.maxSpeedGTs)), "
                + "\"width\": \(optional(link.width)), \"maxWidth\": \(optional(link.maxWidth)), "
                + "\"downtrained\": \(link.isDowntrained)}"
        }
        var verbsJSON = "null"
        switch verbs {
        case .failure(let error):
            verbsJSON =
                "{\"error\": {\"call\": \(jsonString(error.call)), \"errno\": \(error.code), \"message\": \(jsonString(error.message))}, \"devices\": []}"
        case .success(let devices):
            let items = devices.map { device in
                let ports = device.ports.map { port in
                    "{\"port\": \(port.number), \"state\": \(jsonString(port.state.rawValue)), "
                        + "\"linkLayer\": \(jsonString(port.linkLayer.rawValue)), \"speed\": \(jsonString(port.speedName)), "
                        + "\"lanes\": \(port.lanes), \"mtu\": \(port.mtu), \"lid\": \(port.lid)}"
                }
                return "{\"name\": \(jsonString(device.name)), \"guid\": \(jsonString(device.guidText)), "
                    + "\"ports\": [\(ports.joined(separator: ", "))]}"
            }
            verbsJSON = "{\"error\": null, \"devices\": [\(items.joined(separator: ", "))]}"
        case nil:
            break
        }
        let nics = inventory.nics.map { nic in
            let ports = nic.ports.map { port in
                let counters = port.counters.map { "\(jsonString($0.name)): \($0.value)" }.joined(
                    separator: ", ")
                return "{\"port\": \(port.number), \"state\": \(jsonString(port.state)), "
                    + "\"physicalState\": \(jsonString(port.physicalState)), \"linkLayer\": \(jsonString(port.linkLayer)), "
                    + "\"rate\": \(jsonString(port.rate)), \"lid\": \(optional(port.lid)), \"counters\": {\(counters)}}"
            }
            return "{\"name\": \(jsonString(nic.name)), \"pci\": \(optionalString(nic.pciAddress)), "
                + "\"guid\": \(optionalString(nic.nodeGUID)), \"numaNode\": \(optional(nic.numaNode)), "
                + "\"link\": \(link(nic.link)), \"ports\": [\(ports.joined(separator: ", "))]}"
        }
        let gpus = inventory.gpus.map { gpu in
            "{\"pci\": \(jsonString(gpu.pciAddress)), \"device\": \(jsonString(gpu.deviceID)), "
                + "\"numaNode\": \(optional(gpu.numaNode)), \"link\": \(link(gpu.link))}"
        }
        let rails = inventory.rails.map { rail in
            "{\"rail\": \(rail.rail), \"gpu\": \(jsonString(rail.gpu)), \"nic\": \(jsonString(rail.nic)), "
                + "\"sharedDepth\": \(rail.sharedDepth), \"override\": \(rail.overridden)}"
        }
        return "{\"verbs\": \(verbsJSON), \"nics\": [\(nics.joined(separator: ", "))], "
            + "\"gpus\": [\(gpus.joined(separator: ", "))], \"rails\": [\(rails.joined(separator: ", "))]}\n"
    }
}
