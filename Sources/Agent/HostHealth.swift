// Host health that rides along in each window's report (`health`, wire-v1.md §3): per rail, what is
// wrong with it now — a PCIe link of its GPU or NIC trained below its maximum, a NIC port not ACTIVE,
// a GPU off the bus (gone from sysfs, or an XID 79) or with uncorrectable ECC errors, memory waiting
// to be retired or remapped, or thermal or hardware slowdown (from nvidia-smi where it exists) —
// plus the NIC port error counters' changes since the last window, XID events from the kernel log,
// and what was checked. The collector keeps what deltas and sticky states need from one window to
// the next; sysfs, nvidia-smi and the kernel log come in through `HostHealthSources`, so tests run
// it on fixture trees and canned output. Nothing here throws: what cannot be read is named in
// `errors` and counted, and the window is reported anyway.
//
// The keys the engine reads (HealthSignals.swift) are `ports[].state`, `gpus[].offBus` and the
// `pcie[]` widths and speeds, each with `rail`; docs/agent.md describes every key.

import Dispatch
import FleetModel
import Foundation
import Net
import Probe

/// Where host health is read from.
public struct HostHealthSources: Sendable {
    public var sysfs: SysfsReader
    public var commands: any CommandRunner
    /// Nil where the kernel log cannot be read: no XID events then.
    public var kernelLog: (any KernelLogSource)?

    public init(
        sysfs: SysfsReader = SysfsReader(), commands: any CommandRunner = SubprocessRunner(outputLimit: 64 << 10),
        kernelLog: (any KernelLogSource)?
    ) {
        self.sysfs = sysfs
        self.commands = commands
        self.kernelLog = kernelLog
    }
}

/// Bounds on one window's health object.
public enum HostHealthLimits {
    /// Rails read (wire-v1's rail numbers are 0...63).
    public static let maxRails = 64
    /// Entries in one list (`pcie`, `ports`, `gpus`, `counters`, `xids`); the rest are dropped and
    /// named in `errors`.
    public static let maxEntries = 128
    /// Characters of one string value read from the host (names, states, addresses).
    public static let maxStringLength = 64
    /// Entries of `errors`, and characters of each.
    public static let maxErrorsListed = 8
    public static let maxErrorLength = 200
    /// XID lines taken from the kernel log per window.
    public static let maxXidLines = 1024
    /// nvidia-smi's deadline.
    public static let gpuQueryTimeoutSeconds = 5.0
}

/// One GPU's row of `nvidia-smi --query-gpu=...`; nil where nvidia-smi says N/A or not supported.
public struct NvidiaSMIRow: Hashable, Sendable {
    public var index: Int
    /// Normalized like sysfs: "0000:3b:00.0".
    public var address: String
    public var eccUncorrectedVolatile: Int?
    public var retiredPagesPending: Bool?
    public var remappedRowsPending: Bool?
    public var temperatureC: Int?
    /// NVML's clock throttle reasons bitmask.
    public var throttleReasons: UInt64?

    /// The GPU idles (throttle reason GpuIdle): its PCIe link may run below full speed to save power.
    public var isIdle: Bool? { throttleReasons.map { $0 & 0x1 != 0 } }

    /// Throttle reasons that mean trouble rather than policy or load: hardware slowdown, thermal
    /// slowdown (software or hardware), power brake.
    static let troubleThrottleReasons: UInt64 = 0x8 | 0x20 | 0x40 | 0x80

    /// Something here is wrong: uncorrectable ECC errors, memory waiting to be retired or remapped
    /// (a GPU reset is due), or a throttle reason of trouble.
    public var isNotable: Bool {
        (eccUncorrectedVolatile ?? 0) > 0 || retiredPagesPending == true || remappedRowsPending == true
            || (throttleReasons ?? 0) & Self.troubleThrottleReasons != 0
    }

    /// Its figures as a `gpus` entry carries them.
    var figures: [String: JSONValue] {
        var entry: [String: JSONValue] = ["index": .number(Double(index))]
        if let value = eccUncorrectedVolatile { entry["eccUncorrected"] = .number(Double(value)) }
        if let value = retiredPagesPending { entry["retiredPagesPending"] = .bool(value) }
        if let value = remappedRowsPending { entry["remappedRowsPending"] = .bool(value) }
        if let value = temperatureC { entry["temperatureC"] = .number(Double(value)) }
        if let mask = throttleReasons {
            entry["throttleReasons"] = .array(NvidiaSMI.throttleReasons(mask).map { .string($0) })
        }
        return entry
    }
}

/// The nvidia-smi query the collector runs, and its parser.
public enum NvidiaSMI {
    public static let command = "nvidia-smi"
    public static let arguments = [
        "--query-gpu=index,pci.bus_id,ecc.errors.uncorrected.volatile.total,retired_pages.pending,"
            + "remapped_rows.pending,temperature.gpu,clocks_throttle_reasons.active",
        "--format=csv,noheader,nounits",
    ]

    /// NVML's throttle reason bits, by name.
    static let throttleReasonNames: [(bit: UInt64, name: String)] = [
        (0x1, "GpuIdle"), (0x2, "ApplicationsClocksSetting"), (0x4, "SwPowerCap"), (0x8, "HwSlowdown"),
        (0x10, "SyncBoost"), (0x20, "SwThermalSlowdown"), (0x40, "HwThermalSlowdown"),
        (0x80, "HwPowerBrakeSlowdown"), (0x100, "DisplayClockSetting"),
    ]

    /// The rows of the query's CSV output, and a problem for each line that is not a row (nvidia-smi
    /// prints its errors in place of a GPU's row, e.g. "Unable to determine the device handle ...").
    public static func parse(_ output: String) -> (rows: [NvidiaSMIRow], problems: [String]) {
        var rows: [NvidiaSMIRow] = []
        var problems: [String] = []
        for (number, line) in output.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = trimmedSpaces(line)
            if text.isEmpty { continue }
            let fields = text.split(separator: ",", omittingEmptySubsequences: false).map(trimmedSpaces)
            guard fields.count == 7, let index = Int(fields[0]), let address = normalizedPCIAddress(fields[1])
            else {
                problems.append("nvidia-smi line \(number + 1): not a GPU row: \(text.prefix(120))")
                continue
            }
            func flag(_ field: String) -> Bool? {
                switch field.lowercased() {
                case "yes": true
                case "no": false
                default: nil
                }
            }
            let throttle =
                fields[6].lowercased().hasPrefix("0x") ? UInt64(fields[6].dropFirst(2), radix: 16) : nil
            rows.append(
                NvidiaSMIRow(
                    index: index, address: address, eccUncorrectedVolatile: Int(fields[2]),
                    retiredPagesPending: flag(fields[3]), remappedRowsPending: flag(fields[4]),
                    temperatureC: Int(fields[5]), throttleReasons: throttle))
        }
        return (rows.sorted { $0.index < $1.index }, problems)
    }

    static func throttleReasons(_ mask: UInt64) -> [String] {
        var names = throttleReasonNames.filter { mask & $0.bit != 0 }.map(\.name)
        let unknown = throttleReasonNames.reduce(mask) { $0 & ~$1.bit }
        if unknown != 0 { names.append("0x" + String(unknown, radix: 16)) }
        return names
    }
}

/// An XID event from the kernel log: `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off
/// the bus.`
public struct XidEvent: Hashable, Sendable {
    /// Domain, bus and device, as the driver prints them, normalized: "0000:3b:00".
    public var busDevice: String
    public var code: Int

    /// Parses one kernel log line; nil if it is not an XID line.
    public init?(line: String) {
        guard let marker = line.range(of: "NVRM: Xid (") else { return nil }
        let rest = line[marker.upperBound...]
        guard let close = rest.range(of: "):") else { return nil }
        var address = rest[..<close.lowerBound]
        if address.hasPrefix("PCI:") { address = address.dropFirst(4) }
        let codeText = rest[close.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }
        guard let busDevice = pciBusDevice(String(address)), let code = Int(codeText) else { return nil }
        self.busDevice = busDevice
        self.code = code
    }
}

/// `text` without leading and trailing spaces, tabs and carriage returns.
private func trimmedSpaces(_ text: Substring) -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
    return String(text.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
}

/// "00000000:3B:00.0" or "0000:3b:00.0" → "0000:3b:00.0"; nil if it is not a PCI address.
func normalizedPCIAddress(_ text: String) -> String? {
    let parts = text.lowercased().split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 2, parts[1].count == 1, let function = Int(parts[1], radix: 16), function < 8,
        let busDevice = pciBusDevice(String(parts[0]))
    else { return nil }
    return "\(busDevice).\(function)"
}

/// "00000000:3B:00", "0000:3b:00" or "0000:3b:00.0" → "0000:3b:00"; nil if it is not one.
func pciBusDevice(_ text: String) -> String? {
    let withoutFunction = text.lowercased().split(separator: ".").first.map(String.init) ?? ""
    let parts = withoutFunction.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 3, let domain = UInt32(parts[0], radix: 16), let bus = UInt8(parts[1], radix: 16),
        let device = UInt8(parts[2], radix: 16), parts[1].count == 2, parts[2].count == 2, device < 32
    else { return nil }
    func hex(_ value: UInt32, _ digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
    return "\(hex(domain & 0xFFFF, 4)):\(hex(UInt32(bus), 2)):\(hex(UInt32(device), 2))"
}

/// One window's health: the report's `health` object, and what could not be read.
public struct HostHealth: Sendable, Equatable {
    public var json: [String: JSONValue]
    /// Every problem of this collection, unbounded in count here (the JSON lists the first few).
    public var problems: [String]
    /// New XID events this window.
    public var xidEvents: Int
}

/// Turns each window's reading of the host into its `health` object, keeping what per-window
/// deltas and sticky states need. One collector per agent; `collect` runs once per window.
public struct HostHealthCollector: Sendable {
    public let rails: [RailInfo]
    public let sources: HostHealthSources
    /// The previous window's counters by "nic/port/counter": the first window reports no deltas.
    private var previousCounters: [String: UInt64] = [:]
    /// Rails whose GPU an XID 79 took off the bus: it stays off until the node reboots (and the
    /// agent with it), so this is reported every window from then on.
    private var fallenOffByXid: Set<Int> = []

    public init(rails: [RailInfo], sources: HostHealthSources) {
        self.rails = Array(rails.sorted { $0.rail < $1.rail }.prefix(HostHealthLimits.maxRails))
        self.sources = sources
    }

    /// Reads the host now. `queryGPUs: false` skips nvidia-smi (the agent does when collections fall
    /// behind); the GPU details are then absent for this window and `nvidiaSMI` says "skipped".
    public mutating func collect(queryGPUs: Bool = true) -> HostHealth {
        let reading = readRailHealth(sources.sysfs, rails: rails)
        var problems = reading.problems
        var health: [String: JSONValue] = [:]
        let (gpuRows, gpuQuery) = queryGPUs ? runNvidiaSMI(&problems) : ([:], "skipped")
        health["nvidiaSMI"] = .string(gpuQuery)
        let xidEvents = readXids(reading, into: &health, &problems)
        railEntries(reading, gpuRows: gpuRows, into: &health, &problems)
        counterDeltas(reading, into: &health, &problems)
        if !problems.isEmpty {
            var listed = problems.prefix(HostHealthLimits.maxErrorsListed).map {
                JSONValue.string(String($0.prefix(HostHealthLimits.maxErrorLength)))
            }
            if problems.count > listed.count {
                listed.append(.string("and \(problems.count - listed.count) more"))
            }
            health["errors"] = .array(listed)
        }
        return HostHealth(json: health, problems: problems, xidEvents: xidEvents)
    }

    /// nvidia-smi's rows by PCI address, and how the query went: "ok", "failed" (some or all of it:
    /// named in `problems`) or "absent" (not installed: no problem).
    private func runNvidiaSMI(_ problems: inout [String]) -> ([String: NvidiaSMIRow], String) {
        let output: CommandResult
        do {
            // The C locale: numbers and words as the parser expects them.
            output = try sources.commands.run(
                [NvidiaSMI.command] + NvidiaSMI.arguments, environment: ["LC_ALL": "C"],
                timeout: .milliseconds(Int(HostHealthLimits.gpuQueryTimeoutSeconds * 1000)))
        } catch where error.errno == Errno(rawValue: ENOENT) {
            return ([:], "absent")  // not installed: normal on a machine without NVIDIA's driver
        } catch {
            problems.append("nvidia-smi: \(error)")
            return ([:], "failed")
        }
        if output.timedOut || output.truncated {
            problems.append(
                output.timedOut
                    ? "nvidia-smi: no answer within \(HostHealthLimits.gpuQueryTimeoutSeconds) s, killed"
                    : "nvidia-smi: output over the limit, cut")
            return ([:], "failed")
        }
        let parsed = NvidiaSMI.parse(output.standardOutput)
        problems += parsed.problems
        if !output.succeeded { problems.append("nvidia-smi: \(output.outcome)") }
        let rows = Dictionary(parsed.rows.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
        return (rows, output.succeeded && parsed.problems.isEmpty ? "ok" : "failed")
    }

    /// `xids`: the XID events logged since the last window, counted per GPU and code; an XID 79
    /// marks its rail's GPU off the bus for good. Returns how many events there were.
    private mutating func readXids(
        _ reading: HealthReading, into health: inout [String: JSONValue], _ problems: inout [String]
    ) -> Int {
        guard let kernelLog = sources.kernelLog else { return 0 }
        let railOfBusDevice = Dictionary(
            reading.gpus.compactMap { gpu in pciBusDevice(gpu.address).map { ($0, gpu.rail) } },
            uniquingKeysWith: { first, _ in first })
        var counts: [XidEvent: Int] = [:]
        do {
            let (lines, skipped) = try kernelLog.newLines(
                containing: "NVRM: Xid", limit: HostHealthLimits.maxXidLines)
            if skipped > 0 { problems.append("kernel log: \(skipped) records or XID lines not read") }
            for line in lines {
                guard let event = XidEvent(line: line) else {
                    problems.append("kernel log: not an XID line: \(line.prefix(120))")
                    continue
                }
                counts[event, default: 0] += 1
                if event.code == 79, let rail = railOfBusDevice[event.busDevice] {
                    fallenOffByXid.insert(rail)
                }
            }
        } catch {
            problems.append("\(error)")
        }
        func order(_ event: XidEvent) -> (Int, String, Int) {
            (railOfBusDevice[event.busDevice] ?? Int.max, event.busDevice, event.code)
        }
        let entries = counts.keys.sorted { order($0) < order($1) }.map { event -> JSONValue in
            var entry: [String: JSONValue] = [
                "address": string(event.busDevice), "xid": .number(Double(event.code)),
                "count": .number(Double(counts[event] ?? 0)),
            ]
            if let rail = railOfBusDevice[event.busDevice] { entry["rail"] = .number(Double(rail)) }
            return .object(entry)
        }
        if !entries.isEmpty { health["xids"] = bounded("xids", entries, &problems) }
        return counts.values.reduce(0, +)
    }

    /// `gpus`, `pcie` and `ports`, rail by rail, with only what is wrong (a healthy rail costs nothing
    /// in the report, which the correlator stores for every node and window), and `checked`: what
    /// was looked at.
    private func railEntries(
        _ reading: HealthReading, gpuRows: [String: NvidiaSMIRow], into health: inout [String: JSONValue],
        _ problems: inout [String]
    ) {
        var gpus: [JSONValue] = []
        var pcie: [JSONValue] = []
        var ports: [JSONValue] = []
        var checked = (links: 0, ports: 0, gpusQueried: 0)
        let nicOfRail = Dictionary(rails.map { ($0.rail, $0.nic) }, uniquingKeysWith: { first, _ in first })
        let nicsByName = Dictionary(
            reading.nics.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for gpu in reading.gpus {
            // The GPU: off the bus, or with something nvidia-smi says is wrong.
            var offBusBecause: [String] = []
            if !gpu.present { offBusBecause.append("gone from sysfs") }
            if fallenOffByXid.contains(gpu.rail) { offBusBecause.append("xid 79") }
            let row = gpuRows[gpu.address]
            if row != nil { checked.gpusQueried += 1 }
            if !offBusBecause.isEmpty || row?.isNotable == true {
                var entry: [String: JSONValue] = [
                    "rail": .number(Double(gpu.rail)), "address": string(gpu.address),
                    "offBus": .bool(!offBusBecause.isEmpty),
                ]
                if !offBusBecause.isEmpty {
                    entry["offBusReason"] = .string(offBusBecause.joined(separator: ", "))
                }
                if let row { entry.merge(row.figures) { $1 } }
                gpus.append(.object(entry))
            }
            // Its PCIe link and its NIC's. A GPU idles at a lower link speed to save power, so its
            // speed is only held to the maximum when nvidia-smi says it is not idle; its width always
            // is (width never drops for power saving).
            if let link = gpu.link {
                checked.links += 1
                if let entry = downtrainedEntry(
                    rail: gpu.rail, device: "gpu", address: gpu.address, link: link,
                    judgeSpeed: row?.isIdle == false)
                {
                    pcie.append(entry)
                }
            }
            guard let name = nicOfRail[gpu.rail], let nic = nicsByName[name] else { continue }
            if let link = nic.link {
                checked.links += 1
                if let entry = downtrainedEntry(
                    rail: gpu.rail, device: "nic", address: nic.address ?? "", link: link, judgeSpeed: true)
                {
                    pcie.append(entry)
                }
            }
            // The NIC's ports: each that is not ACTIVE; a NIC gone from sysfs is down.
            let base: [String: JSONValue] = ["rail": .number(Double(gpu.rail)), "nic": string(name)]
            guard nic.present else {
                ports.append(
                    .object(base.merging(["state": .string("DOWN"), "vanished": .bool(true)]) { $1 }))
                continue
            }
            for port in nic.ports {
                guard let state = port.state else { continue }
                checked.ports += 1
                guard state != "ACTIVE" else { continue }
                var entry = base
                entry["port"] = .number(Double(port.number))
                entry["state"] = string(state)
                if let physical = port.physicalState { entry["physicalState"] = string(physical) }
                ports.append(.object(entry))
            }
        }
        if !gpus.isEmpty { health["gpus"] = bounded("gpus", gpus, &problems) }
        if !pcie.isEmpty { health["pcie"] = bounded("pcie", pcie, &problems) }
        if !ports.isEmpty { health["ports"] = bounded("ports", ports, &problems) }
        health["checked"] = .object([
            "rails": .number(Double(reading.gpus.count)), "pcieLinks": .number(Double(checked.links)),
            "ports": .number(Double(checked.ports)), "gpusQueried": .number(Double(checked.gpusQueried)),
        ])
    }

    /// `counters`: per NIC port, what each counter changed by since the last window (the first
    /// window only remembers); a counter that went down was reset and reports its new value as the
    /// delta, named in `reset`. A counter file that is missing is skipped; when it comes back it is
    /// first seen again.
    private mutating func counterDeltas(
        _ reading: HealthReading, into health: inout [String: JSONValue], _ problems: inout [String]
    ) {
        var entries: [JSONValue] = []
        var seen: [String: UInt64] = [:]
        let inRailOrder = reading.nics.sorted {
            ($0.rails.first ?? Int.max, $0.name) < ($1.rails.first ?? Int.max, $1.name)
        }
        for nic in inRailOrder where nic.present {
            for port in nic.ports {
                var deltas: [String: JSONValue] = [:]
                var reset: [JSONValue] = []
                for counter in port.counters {
                    let key = "\(nic.name)/\(port.number)/\(counter.name)"
                    seen[key] = counter.value
                    guard let previous = previousCounters[key] else { continue }
                    if counter.value < previous {
                        deltas[counter.name] = .number(Double(counter.value))
                        reset.append(.string(counter.name))
                    } else if counter.value > previous {
                        deltas[counter.name] = .number(Double(counter.value - previous))
                    }
                }
                guard !deltas.isEmpty else { continue }
                var entry: [String: JSONValue] = [
                    "nic": string(nic.name), "port": .number(Double(port.number)),
                    "rails": .array(nic.rails.map { .number(Double($0)) }), "deltas": .object(deltas),
                ]
                if !reset.isEmpty { entry["reset"] = .array(reset) }
                entries.append(.object(entry))
            }
        }
        previousCounters = seen
        if !entries.isEmpty { health["counters"] = bounded("counters", entries, &problems) }
    }

    /// A `pcie` entry when the link trained below its maximum width, or below its maximum speed
    /// where the speed is judged; nil otherwise. An unjudged speed's maximum goes in `maxSpeedGTs`
    /// rather than `expectedSpeedGTs`, which the engine compares.
    private func downtrainedEntry(
        rail: Int, device: String, address: String, link: PCIeLink, judgeSpeed: Bool
    )
        -> JSONValue?
    {
        var narrow = false
        var slow = false
        var entry: [String: JSONValue] = [
            "rail": .number(Double(rail)), "device": .string(device), "address": string(address),
        ]
        if let width = link.width, let maxWidth = link.maxWidth {
            entry["width"] = .number(Double(width))
            entry["expectedWidth"] = .number(Double(maxWidth))
            narrow = width < maxWidth
        }
        if let speed = link.speedGTs, let maxSpeed = link.maxSpeedGTs {
            entry["speedGTs"] = .number(speed)
            entry[judgeSpeed ? "expectedSpeedGTs" : "maxSpeedGTs"] = .number(maxSpeed)
            slow = judgeSpeed && speed < maxSpeed
        }
        return narrow || slow ? .object(entry) : nil
    }

    private func string(_ text: String) -> JSONValue {
        .string(String(text.prefix(HostHealthLimits.maxStringLength)))
    }

    private func bounded(_ key: String, _ entries: [JSONValue], _ problems: inout [String]) -> JSONValue {
        guard entries.count > HostHealthLimits.maxEntries else { return .array(entries) }
        problems.append(
            "\(key): \(entries.count - HostHealthLimits.maxEntries) entries over the limit of "
                + "\(HostHealthLimits.maxEntries) dropped")
        return .array(Array(entries.prefix(HostHealthLimits.maxEntries)))
    }
}

/// Host health figures for /metrics.
public struct HostHealthCounters: Hashable, Sendable {
    public var collections = 0
    /// Things that could not be read or parsed (every entry of a window's `errors`, counted).
    public var errors = 0
    /// Windows whose nvidia-smi query was skipped because collections had fallen behind.
    public var gpuQueriesSkipped = 0
    public var xidEvents = 0
    public init() {}
}

/// Runs the collector off the probe loop: each closed window's report gets its health on one serial
/// queue and then goes on, so reports leave in the order they closed and a slow nvidia-smi never
/// delays probes. When reports queue up behind a slow collection, the ones waiting skip nvidia-smi.
final class HostHealthWorker: Sendable {
    private let collector: Locked<HostHealthCollector>
    private let queue = DispatchQueue(label: "faultline.agent.health")
    /// Reports handed in and not yet passed on.
    private let backlog = Locked(0)
    let counters = Locked(HostHealthCounters())
    private let log: AgentLog

    init(collector: HostHealthCollector, log: AgentLog) {
        self.collector = Locked(collector)
        self.log = log
    }

    /// Adds health to `report` and hands it to `next`, later and on the worker's queue.
    func submit(_ report: Report, then next: @escaping @Sendable (Report) -> Void) {
        backlog.withLock { $0 += 1 }
        queue.async { [self] in
            let queryGPUs = backlog.withLock { $0 } <= 1
            let health = collector.withLock { $0.collect(queryGPUs: queryGPUs) }
            let logged = counters.withLock { counters -> Bool in
                counters.collections += 1
                counters.errors += health.problems.count
                counters.xidEvents += health.xidEvents
                if !queryGPUs { counters.gpuQueriesSkipped += 1 }
                return !health.problems.isEmpty
                    && (counters.collections <= 10 || counters.collections.isMultiple(of: 360))
            }
            if logged {
                log(
                    .warning, "host health: some of it could not be read",
                    [
                        "windowStart": "\(report.windowStart)", "count": "\(health.problems.count)",
                        "first": health.problems.prefix(3).joined(separator: "; "),
                    ])
            }
            var report = report
            report.health = health.json
            next(report)
            backlog.withLock { $0 -= 1 }
        }
    }

    /// Waits until every submitted report has been passed on.
    func drain() { queue.sync {} }
}
