// `faultline topology pinglist`: the pairs a node's agent probes every window, planned from the
// topology (docs/pinglist.md), as text or JSON; or, with --summary, how the whole fabric's plan
// covers its links.

import FleetModel

struct TopologyPinglistCommand: Command {
    static let name = "topology pinglist"
    static let summary = "plan the pairs the agents probe; print one node's, or a summary"
    static let usage =
        "topology pinglist FILE (--node NAME | --summary) [--json] [--seed N] [--coverage K]"
        + " [--same-leaf K] [--max-cross-leaf N]"
    static let help = """
        Plans the pairs every endpoint probes in a window (docs/pinglist.md): its loopback, its node's
        other rails, the next K endpoints on its leaf, and cross-leaf peers pinned to spines so that
        every leaf-spine link is crossed by at least --coverage pairs. The same file and options give
        the same plan on every run.

        With --node, prints that node's pairs, one per line: "src dst class", and "via SPINE" for a
        cross-leaf pair. With --json, one object: {"node": NAME, "pairs": [{"src", "dst", "class",
        "path"}]}, where path is [leaf] for a same-leaf pair and [leaf, spine, leaf] for a cross-leaf
        one (what the agent reports). With --summary, the whole plan: pairs per class and per
        endpoint, coverage per link, and the links the plan could not cover.

        Links left short of the coverage (a single leaf, or leaves too small for the cap) are named
        on stderr; the plan is still printed. An unknown node stops with status 65.

        options:
          --node NAME          the node whose pairs to print
          --summary            summarize the whole fabric's plan instead
          --json               print JSON
          --seed N             seed of the cross-leaf choice (default 1)
          --coverage K         pairs that must cross each leaf-spine link (default 8)
          --same-leaf K        same-leaf peers per endpoint (default 4)
          --max-cross-leaf N   most cross-leaf pairs an endpoint sends, and receives (default 16)
        """

    let path: String
    let node: String?
    let json: Bool
    let options: PinglistOptions

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(
            arguments, valued: ["node", "seed", "coverage", "same-leaf", "max-cross-leaf"],
            flags: ["json", "summary"], positionals: 1)
        guard let path = parsed.positionals.first else { throw CommandError.usage("which topology file?") }
        switch (parsed.value("node"), parsed.flag("summary")) {
        case (nil, false): throw CommandError.usage("--node NAME (or --summary) is required")
        case (.some, true): throw CommandError.usage("--node and --summary exclude each other")
        case (let node, _): self.node = node
        }
        self.path = path
        json = parsed.flag("json")
        let defaults = PinglistOptions()
        options = PinglistOptions(
            sameLeafPeers: try parsed.integer("same-leaf", default: defaults.sameLeafPeers, in: 0...1024),
            linkCoverage: try parsed.integer("coverage", default: defaults.linkCoverage, in: 0...1024),
            maxCrossLeafPerEndpoint: try parsed.integer(
                "max-cross-leaf", default: defaults.maxCrossLeafPerEndpoint, in: 0...1024),
            seed: UInt64(try parsed.integer("seed", default: 1, in: 0...Int.max)))
    }

    func run(io: some CommandIO) throws(CommandError) {
        let topology = try loadTopology(path)
        var selected: NodeName?
        if let node {
            guard let name = NodeName(node), topology.node(name) != nil else {
                throw CommandError.data("\(path): no node '\(node)'")
            }
            selected = name
        }
        let plan = topology.pinglist(options)
        if !plan.uncoveredLinks.isEmpty {
            let shown = plan.uncoveredLinks.prefix(5).map(\.rawValue).joined(separator: ", ")
            let more = plan.uncoveredLinks.count > 5 ? ", ..." : ""
            io.writeError(
                "faultline \(Self.name): warning: \(plan.uncoveredLinks.count) of \(plan.linkCoverage.count) "
                    + "leaf-spine links are crossed by fewer than \(options.linkCoverage) planned pairs "
                    + "(\(shown)\(more))\n")
        }
        guard let selected else {
            io.write(json ? summaryJSON(plan, topology) : summaryText(plan, topology))
            return
        }
        let pairs = plan.pairs(from: selected)
        if json {
            let items = pairs.map { pair in
                var item = "{\"src\": \(jsonString(pair.src.description)), "
                item += "\"dst\": \(jsonString(pair.dst.description)), "
                item += "\"class\": \(jsonString(pair.pathClass.rawValue))"
                if let route = topology.route(of: pair) {
                    let names = route.map { jsonString($0.rawValue) }
                    item += ", \"path\": [\(names.joined(separator: ", "))]"
                }
                return item + "}"
            }
            let node = jsonString(selected.rawValue)
            io.write("{\"node\": \(node), \"pairs\": [\(items.joined(separator: ", "))]}\n")
        } else {
            io.write(pairs.map { "\($0)\n" }.joined())
        }
    }

    /// The figures a summary reports, computed from the plan without depending on hashing order.
    private struct Figures {
        var perClass: [(PathClass, Int)] = []
        var perSource: (min: Int, max: Int) = (0, 0)
        var crossOut: (min: Int, max: Int) = (0, 0)
        var crossIn: (min: Int, max: Int) = (0, 0)
        var crossRail = 0
        var linkPairs: (min: Int, max: Int) = (0, 0)
        var linkEndpoints: (min: Int, max: Int) = (0, 0)
        var endpoints = 0

        init(_ plan: Pinglist, _ topology: Topology) {
            let endpointList = topology.endpoints.sorted()
            endpoints = endpointList.count
            var sources: [Int] = []
            var out: [Int] = []
            var into: [EndpointID: Int] = [:]
            var classes = [Int](repeating: 0, count: PathClass.allCases.count)
            var index = 0  // pairs are sorted by source: walk them alongside the endpoints
            for endpoint in endpointList {
                var sent = 0
                var crossSent = 0
                while index < plan.pairs.count, plan.pairs[index].src == endpoint {
                    let pair = plan.pairs[index]
                    sent += 1
                    classes[PathClass.allCases.firstIndex(of: pair.pathClass)!] += 1
                    if pair.pathClass == .crossLeaf {
                        crossSent += 1
                        into[pair.dst, default: 0] += 1
                        if pair.src.rail != pair.dst.rail { crossRail += 1 }
                    }
                    index += 1
                }
                sources.append(sent)
                out.append(crossSent)
            }
            perClass = zip(PathClass.allCases, classes).map { ($0, $1) }
            let received = endpointList.map { into[$0] ?? 0 }
            func range(_ values: [Int]) -> (min: Int, max: Int) { (values.min() ?? 0, values.max() ?? 0) }
            perSource = range(sources)
            crossOut = range(out)
            crossIn = range(received)
            linkPairs = range(plan.linkCoverage.map(\.pairs))
            linkEndpoints = range(plan.linkCoverage.map(\.endpoints))
        }

        var meanPerSource: Double {
            endpoints == 0 ? 0 : Double(perClass.reduce(0) { $0 + $1.1 }) / Double(endpoints)
        }
    }

    private func summaryText(_ plan: Pinglist, _ topology: Topology) -> String {
        let figures = Figures(plan, topology)
        func range(_ r: (min: Int, max: Int)) -> String { r.min == r.max ? "\(r.min)" : "\(r.min)-\(r.max)" }
        let classes = figures.perClass.map { "\($0.0.rawValue) \($0.1)" }.joined(separator: ", ")
        let mean = (figures.meanPerSource * 100).rounded() / 100
        let settings =
            "seed \(options.seed), coverage \(options.linkCoverage), same-leaf \(options.sameLeafPeers), "
            + "cross-leaf cap \(options.maxCrossLeafPerEndpoint)"
        let cross =
            "cross-leaf \(range(figures.crossOut)) as source, \(range(figures.crossIn)) as destination"
        let links =
            "\(range(figures.linkPairs)) pairs each, from \(range(figures.linkEndpoints)) distinct endpoints"
            + " on the leaf"
        var text = """
            \(path): pinglist (\(settings))
            pairs        \(plan.pairs.count) per window (\(classes))
            per endpoint \(range(figures.perSource)) as source (mean \(mean)); \(cross)
            cross-rail   \(figures.crossRail) cross-leaf pairs between different rails
            links        \(plan.linkCoverage.count) leaf-spine: \(links)
            uncovered    \(plan.uncoveredLinks.count) links below \(options.linkCoverage) pairs

            """
        for link in plan.uncoveredLinks.prefix(20) {
            text += "  \(link) \(plan.coverage(of: link)?.pairs ?? 0)\n"
        }
        if plan.uncoveredLinks.count > 20 { text += "  ... and \(plan.uncoveredLinks.count - 20) more\n" }
        return text
    }

    private func summaryJSON(_ plan: Pinglist, _ topology: Topology) -> String {
        let figures = Figures(plan, topology)
        func range(_ r: (min: Int, max: Int)) -> String { "{\"min\": \(r.min), \"max\": \(r.max)}" }
        let classes = figures.perClass.map { "\(jsonString($0.0.rawValue)): \($0.1)" }.joined(separator: ", ")
        let uncovered = plan.uncoveredLinks.map { link in
            "{\"link\": \(jsonString(link.rawValue)), \"pairs\": \(plan.coverage(of: link)?.pairs ?? 0)}"
        }
        let fields = [
            ("endpoints", "\(figures.endpoints)"),
            ("pairs", "\(plan.pairs.count)"),
            ("perClass", "{\(classes)}"),
            ("perEndpoint", range(figures.perSource)),
            ("meanPerEndpoint", jsonNumber(figures.meanPerSource)),
            ("crossLeafAsSource", range(figures.crossOut)),
            ("crossLeafAsDestination", range(figures.crossIn)),
            ("crossRail", "\(figures.crossRail)"),
            ("links", "\(plan.linkCoverage.count)"),
            ("pairsPerLink", range(figures.linkPairs)),
            ("endpointsPerLink", range(figures.linkEndpoints)),
            ("coverage", "\(options.linkCoverage)"),
            ("uncoveredLinks", "[\(uncovered.joined(separator: ", "))]"),
        ]
        return "{" + fields.map { "\(jsonString($0.0)): \($0.1)" }.joined(separator: ", ") + "}\n"
    }
}
