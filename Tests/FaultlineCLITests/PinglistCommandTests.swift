// `faultline topology pinglist`: one node's planned pairs as text and JSON, the summary, warnings
// for uncovered links, and the exit statuses of a wrong command line or an unknown node.

import Foundation
import Testing

@testable import FaultlineCLI
@testable import FleetModel

/// Writes a generated topology to a temporary file for the body, and removes it after.
private func withTopologyFile<T>(
    _ shape: Topology.Shape, _ body: (String, Topology) throws -> T
) throws -> T {
    let topology = try Topology.railOptimized(shape)
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("faultline-pinglist-\(UUID().uuidString).json")
    try topology.jsonData().write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path, topology)
}

private let smallShape = Topology.Shape(nodes: 8, rails: 2, nodesPerLeaf: 4, spines: 2)

@Suite("topology pinglist")
struct PinglistCommandTests {
    @Test func printsTheNodesPairsOnePerLine() throws {
        try withTopologyFile(smallShape) { path, topology in
            let (status, out, err) = run(["topology", "pinglist", path, "--node", "gpu-0001"])
            #expect(status == .success)
            #expect(err == "")
            let expected = topology.pinglist().pairs(from: NodeName("gpu-0001")!)
            #expect(out == expected.map { "\($0)\n" }.joined())
            let lines = out.split(separator: "\n")
            #expect(lines.contains("gpu-0001/0 gpu-0001/0 loopback"))
            #expect(lines.contains("gpu-0001/0 gpu-0001/1 intra-host"))
            #expect(lines.contains("gpu-0001/1 gpu-0002/1 same-leaf"))
            #expect(lines.allSatisfy { $0.hasPrefix("gpu-0001/") })
            let cross = lines.filter { $0.contains(" cross-leaf via spine-0") }
            #expect(!cross.isEmpty)
            #expect(lines.count == expected.count)
        }
    }

    @Test func jsonIsOneObjectWithRoutes() throws {
        try withTopologyFile(smallShape) { path, topology in
            let (status, out, err) = run(["topology", "pinglist", path, "--node", "gpu-0005", "--json"])
            #expect(status == .success)
            #expect(err == "")
            #expect(out.hasSuffix("}\n") && out.dropLast().firstIndex(of: "\n") == nil)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["node", "pairs"])
            #expect(object["node"] as? String == "gpu-0005")
            let pairs = try #require(object["pairs"] as? [[String: Any]])
            let expected = topology.pinglist().pairs(from: NodeName("gpu-0005")!)
            #expect(pairs.count == expected.count)
            for (item, pair) in zip(pairs, expected) {
                #expect(item["src"] as? String == pair.src.description)
                #expect(item["dst"] as? String == pair.dst.description)
                #expect(item["class"] as? String == pair.pathClass.rawValue)
                let path = item["path"] as? [String]
                switch pair.pathClass {
                case .loopback, .intraHost:
                    #expect(Set(item.keys) == ["src", "dst", "class"])
                case .sameLeaf:
                    #expect(path == [topology.rail(pair.src)!.leaf.rawValue])
                case .crossLeaf:
                    #expect(
                        path == [
                            topology.rail(pair.src)!.leaf.rawValue, pair.via!.rawValue,
                            topology.rail(pair.dst)!.leaf.rawValue,
                        ])
                }
            }
            // The same bytes every time.
            #expect(run(["topology", "pinglist", path, "--node", "gpu-0005", "--json"]).out == out)
        }
    }

    @Test func seedAndCoverageReachThePlanner() throws {
        try withTopologyFile(.init(nodes: 32, rails: 2, nodesPerLeaf: 4, spines: 4)) { path, topology in
            for seed in [1, 2, 99] {
                let out = run(["topology", "pinglist", path, "--node", "gpu-0010", "--seed", "\(seed)"]).out
                let expected = topology.pinglist(PinglistOptions(seed: UInt64(seed))).pairs(
                    from: NodeName("gpu-0010")!)
                #expect(out == expected.map { "\($0)\n" }.joined())
            }
            let out = run([
                "topology", "pinglist", path, "--node=gpu-0010", "--coverage", "12", "--same-leaf", "1",
            ]).out
            let expected = topology.pinglist(PinglistOptions(sameLeafPeers: 1, linkCoverage: 12))
                .pairs(from: NodeName("gpu-0010")!)
            #expect(out == expected.map { "\($0)\n" }.joined())
        }
    }

    @Test func summarizesTheWholePlan() throws {
        try withTopologyFile(smallShape) { path, topology in
            let (status, out, err) = run(["topology", "pinglist", path, "--summary"])
            #expect(status == .success)
            #expect(err == "")
            let plan = topology.pinglist()
            #expect(out.contains("pairs        \(plan.pairs.count) per window"))
            // 8 same-rail pairs per link, and 2 or 3 toward other rails that tell it from its twin
            // (each rail has two leaves here; docs/pinglist.md).
            #expect(out.contains("links        8 leaf-spine: 10-11 pairs each"))
            #expect(out.contains("uncovered    0 links below 8 pairs"))

            let json = run(["topology", "pinglist", path, "--summary", "--json"])
            #expect(json.0 == .success)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
            #expect(object["pairs"] as? Int == plan.pairs.count)
            #expect(object["endpoints"] as? Int == 16)
            #expect(object["uncoveredLinks"] as? [Any] != nil)
            #expect((object["perClass"] as? [String: Int])?["loopback"] == 16)
        }
    }

    @Test func uncoveredLinksAreNamedOnStderr() throws {
        // One leaf: nothing can cross its spine links.
        try withTopologyFile(.init(nodes: 3, rails: 1, nodesPerLeaf: 4, spines: 2)) { path, _ in
            let (status, out, err) = run(["topology", "pinglist", path, "--node", "gpu-0000"])
            #expect(status == .success)
            #expect(out.contains("gpu-0000/0 gpu-0000/0 loopback\n"))
            #expect(
                err.contains("warning: 2 of 2 leaf-spine links are crossed by fewer than 8 planned pairs"))
            #expect(err.contains("leaf-s0-r0~spine-00, leaf-s0-r0~spine-01"))
            let summary = run(["topology", "pinglist", path, "--summary"]).out
            #expect(summary.contains("  leaf-s0-r0~spine-00 0\n"))
        }
    }

    @Test func anUnknownNodeIsBadData() throws {
        try withTopologyFile(smallShape) { path, _ in
            for name in ["gpu-9999", "not a name"] {
                let (status, out, err) = run(["topology", "pinglist", path, "--node", name])
                #expect(status == .dataError)
                #expect(out == "")
                #expect(err == "faultline topology pinglist: \(path): no node '\(name)'\n")
            }
        }
    }

    @Test(
        "a wrong command line exits 64 with the usage line",
        arguments: [
            (["topology", "pinglist", "FILE"], "--node NAME (or --summary) is required"),
            (["topology", "pinglist", "--node", "gpu-0000"], "which topology file?"),
            (["topology", "pinglist", "FILE", "--node", "a", "--summary"], "exclude each other"),
            (["topology", "pinglist", "FILE", "--node", "a", "--seed", "-1"], "--seed"),
            (["topology", "pinglist", "FILE", "--node", "a", "--coverage", "x"], "--coverage"),
            (
                ["topology", "pinglist", "FILE", "--node", "a", "--max-cross-leaf", "2000"],
                "--max-cross-leaf"
            ),
            (["topology", "pinglist", "FILE", "--node"], "needs a value"),
            (["topology", "pinglist", "FILE", "--node", "a", "--bogus"], "unknown option '--bogus'"),
            (["topology", "pinglist", "FILE", "other", "--node", "a"], "unexpected argument 'other'"),
        ])
    func usageErrors(args: [String], complaint: String) throws {
        try withTopologyFile(smallShape) { path, _ in
            let (status, out, err) = run(args.map { $0 == "FILE" ? path : $0 })
            #expect(status == .usage)
            #expect(out == "")
            #expect(err.hasPrefix("faultline topology pinglist: "), "\(err)")
            #expect(err.contains(complaint), "\(err)")
            #expect(err.hasSuffix("usage: faultline \(TopologyPinglistCommand.usage)\n"))
        }
    }

    @Test func aMissingFileIsNoInput() {
        let (status, _, err) = run(["topology", "pinglist", "/nonexistent/topology.json", "--node", "a"])
        #expect(status == .noInput)
        #expect(err.contains("cannot open /nonexistent/topology.json"))
    }
}
