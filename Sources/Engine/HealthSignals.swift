// Node health that is decisive on its own, read from a report's `health` (wire-v1.md §3): a NIC
// port that is down, a GPU fallen off the bus, a PCIe link trained below its expected width or
// speed. The agent fills these in (its issue defines the collection); the engine already turns them
// into findings, through the same hysteresis as hard faults.
//
// The keys read here, each a list of per-rail entries (unknown keys and fields are ignored):
//   "ports": [{"rail": 3, "state": "DOWN"}]                  -> gpu.port-down
//   "gpus":  [{"rail": 3, "offBus": true}]                   -> gpu.off-bus
//   "pcie":  [{"rail": 3, "width": 8, "expectedWidth": 16,
//              "speedGTs": 16, "expectedSpeedGTs": 32}]       -> gpu.pcie-downtrained

import FleetModel

struct HealthSignal: Sendable {
    let endpoint: EndpointID
    let faultClass: String
    let evidence: [String: JSONValue]
}

/// The decisive signals in one node's report (its `health`), in rail order.
func healthSignals(node: NodeName, health: [String: JSONValue], topology: Topology) -> [HealthSignal] {
    func entries(_ key: String) -> [[String: JSONValue]] {
        guard case .array(let values)? = health[key] else { return [] }
        return values.compactMap { if case .object(let entry) = $0 { entry } else { nil } }
    }
    func endpoint(_ entry: [String: JSONValue]) -> EndpointID? {
        guard case .number(let rail)? = entry["rail"], rail == rail.rounded(),
            let id = EndpointID(node: node, rail: Int(rail)),
            topology.rail(id) != nil
        else { return nil }
        return id
    }
    func number(_ entry: [String: JSONValue], _ key: String) -> Double? {
        if case .number(let value)? = entry[key] { value } else { nil }
    }
    var signals: [HealthSignal] = []
    for entry in entries("ports") {
        guard let id = endpoint(entry), case .string(let state)? = entry["state"],
            state.uppercased() == "DOWN"
        else { continue }
        signals.append(
            HealthSignal(endpoint: id, faultClass: "gpu.port-down", evidence: ["health": .object(entry)]))
    }
    for entry in entries("gpus") {
        guard let id = endpoint(entry), case .bool(true)? = entry["offBus"] else { continue }
        signals.append(
            HealthSignal(endpoint: id, faultClass: "gpu.off-bus", evidence: ["health": .object(entry)]))
    }
    for entry in entries("pcie") {
        guard let id = endpoint(entry) else { continue }
        let narrow = (number(entry, "width") ?? 0) < (number(entry, "expectedWidth") ?? 0)
        let slow = (number(entry, "speedGTs") ?? 0) < (number(entry, "expectedSpeedGTs") ?? 0)
        guard narrow || slow else { continue }
        signals.append(
            HealthSignal(
                endpoint: id, faultClass: "gpu.pcie-downtrained", evidence: ["health": .object(entry)]))
    }
    return signals.sorted { ($0.endpoint, $0.faultClass) < ($1.endpoint, $1.faultClass) }
}
