// Topology: identifiers, validation with field paths, canonical JSON, the generator, and which
// components a probe path can blame (wire-v1.md §1–2).

import Foundation
import Testing

@testable import FleetModel

/// A small hand-written fabric: nodes a and c on leaf-1, b on leaf-2, one rail each, two spines.
func smallDocument() -> TopologyDocument {
    TopologyDocument(
        version: 1,
        nodes: [
            .init(
                name: "a", rails: [.init(rail: 0, leaf: "leaf-1", nic: "mlx5_0", gpu: 0, address: "10.0.0.1")]
            ),
            .init(name: "b", rails: [.init(rail: 0, leaf: "leaf-2", nic: nil, gpu: nil, address: nil)]),
            .init(name: "c", rails: [.init(rail: 0, leaf: "leaf-1", nic: nil, gpu: nil, address: nil)]),
        ],
        switches: [
            .init(name: "leaf-1", tier: "leaf"), .init(name: "leaf-2", tier: "leaf"),
            .init(name: "spine-1", tier: "spine"), .init(name: "spine-2", tier: "spine"),
        ],
        links: [
            .init(id: "a/0~leaf-1", a: "a/0", b: "leaf-1"), .init(id: "b/0~leaf-2", a: "leaf-2", b: "b/0"),
            .init(id: "c/0~leaf-1", a: "c/0", b: "leaf-1"),
            .init(id: "leaf-1~spine-1", a: "leaf-1", b: "spine-1"),
            .init(id: "leaf-1~spine-2", a: "spine-2", b: "leaf-1"),
            .init(id: "leaf-2~spine-1", a: "leaf-2", b: "spine-1"),
            .init(id: "leaf-2~spine-2", a: "leaf-2", b: "spine-2"),
        ])
}

func expectInvalid(
    _ change: (inout TopologyDocument) -> Void, field: String, _ fragment: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    var document = smallDocument()
    change(&document)
    do {
        _ = try Topology(document)
        Issue.record("expected \(field): \(fragment)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
        #expect(error.reason.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    }
}

struct IdentifierTests {
    @Test func namesFollowTheSpec() {
        for good in ["a", "gpu-a017", "A.b_c-9", String(repeating: "x", count: 63)] {
            #expect(NodeName(good) != nil, "\(good)")
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "é", String(repeating: "x", count: 64)] {
            #expect(NodeName(bad) == nil, "\(bad)")
        }
    }

    @Test func endpointsAreNodeSlashRail() {
        #expect(EndpointID("gpu-a017/3")?.description == "gpu-a017/3")
        #expect(EndpointID("n/63")?.rail == 63)
        for bad in ["n/64", "n/-1", "n/03", "n/", "/3", "n/3/4", "n/x", "n/+3", "bad name/1"] {
            #expect(EndpointID(bad) == nil, "\(bad)")
        }
    }

    @Test func componentsSortEndpointsByRailNumber() {
        let parts: [Component] = [
            .switch(SwitchName("s")!), .endpoint(EndpointID("n/10")!), .node(NodeName("n")!),
            .endpoint(EndpointID("n/2")!),
        ]
        #expect(parts.sorted().map(\.description) == ["n/2", "n/10", "n", "s"])
        #expect(parts.map(\.kind) == ["switch", "gpu", "node", "gpu"])
    }
}

struct TopologyValidationTests {
    @Test func aValidDocumentLoadsWithItsIndexes() throws {
        let topology = try Topology(smallDocument())
        #expect(topology.endpointCount == 3)
        #expect(topology.accessLink(of: EndpointID("b/0")!)?.rawValue == "b/0~leaf-2")
        #expect(topology.spines(of: SwitchName("leaf-1")!).map(\.rawValue) == ["spine-1", "spine-2"])
        #expect(
            topology.fabricLink(SwitchName("spine-2")!, SwitchName("leaf-1")!)?.rawValue == "leaf-1~spine-2")
        #expect(topology.rail(EndpointID("a/0")!)?.address == "10.0.0.1")
    }

    @Test func structuralErrorsNameTheField() {
        expectInvalid({ $0.version = 2 }, field: "version", "unsupported version 2")
        expectInvalid({ $0.nodes[1].name = "a" }, field: "nodes[1].name", "duplicate node 'a'")
        expectInvalid({ $0.nodes[1].name = "leaf-1" }, field: "nodes[1].name", "also the name of a switch")
        expectInvalid({ $0.nodes[0].name = "-x" }, field: "nodes[0].name", "not a valid node name")
        expectInvalid({ $0.nodes[2].rails = [] }, field: "nodes[2].rails", "at least one rail")
        expectInvalid(
            { $0.nodes[0].rails.append($0.nodes[0].rails[0]) }, field: "nodes[0].rails[1].rail",
            "duplicate rail 0")
        expectInvalid({ $0.nodes[0].rails[0].rail = 64 }, field: "nodes[0].rails[0].rail", "outside")
        expectInvalid(
            { $0.nodes[1].rails[0].leaf = "leaf-9" }, field: "nodes[1].rails[0].leaf",
            "no switch named 'leaf-9'")
        expectInvalid(
            { $0.nodes[1].rails[0].leaf = "spine-1" }, field: "nodes[1].rails[0].leaf", "not a leaf")
        expectInvalid({ $0.nodes[0].rails[0].gpu = -1 }, field: "nodes[0].rails[0].gpu", "negative")
        expectInvalid({ $0.switches[2].tier = "core" }, field: "switches[2].tier", "unknown tier 'core'")
        expectInvalid({ $0.switches[3].name = "spine-1" }, field: "switches[3].name", "duplicate switch")
        expectInvalid({ $0.links[3].id = "a/0~leaf-1" }, field: "links[3].id", "duplicate link")
        expectInvalid({ $0.links[3].b = "spine-9" }, field: "links[3].b", "dangling link")
        expectInvalid({ $0.links[0].a = "a/1" }, field: "links[0].a", "no endpoint 'a/1'")
        expectInvalid({ $0.links.remove(at: 1) }, field: "nodes[1].rails[0]", "has no link to its leaf")
        expectInvalid(
            { $0.links.append(.init(id: "again", a: "a/0", b: "leaf-1")) }, field: "links[7]",
            "more than one link")
        expectInvalid({ $0.links[0].b = "leaf-2" }, field: "links[0]", "its rail names leaf 'leaf-1'")
        expectInvalid(
            { $0.links.append(.init(id: "x", a: "spine-1", b: "spine-2")) }, field: "links[7]",
            "leaves link to spines")
        expectInvalid(
            { $0.links.append(.init(id: "x", a: "a/0", b: "b/0")) }, field: "links[7]", "not to each other")
        expectInvalid(
            { $0.links.append(.init(id: "x", a: "spine-1", b: "leaf-1")) }, field: "links[7]", "a second link"
        )
    }

    @Test func jsonErrorsNameTheField() {
        func error(_ json: String) -> TopologyError? {
            do {
                _ = try Topology(json: Data(json.utf8))
                return nil
            } catch { return error }
        }
        let truncated = error("{")
        #expect(truncated?.field == "")
        #expect(truncated?.reason.contains("JSON") == true, "\(String(describing: truncated))")
        #expect(error(#"{"version": 1, "nodes": [], "switches": []}"#)?.field == "links")
        let wrongType =
            #"{"version": 1, "nodes": [{"name": "a", "rails": [{"rail": "zero", "leaf": "l"}]}], "switches": [], "links": []}"#
        #expect(error(wrongType)?.field == "nodes[0].rails[0].rail")
        let missing =
            #"{"version": 1, "nodes": [{"name": "a", "rails": [{"rail": 0}]}], "switches": [], "links": []}"#
        #expect(error(missing)?.field == "nodes[0].rails[0].leaf")
    }

    @Test func jsonRoundTripsToTheSameBytes() throws {
        let topology = try Topology(smallDocument())
        let bytes = topology.jsonData()
        let again = try Topology(json: bytes)
        #expect(again.document == topology.document)
        #expect(again.jsonData() == bytes)
        // Unknown keys are kept out, not fatal: the spec lets writers add optional fields.
        var object = try #require(JSONSerialization.jsonObject(with: bytes) as? [String: Any])
        object["comment"] = "added by a newer writer"
        #expect(
            try Topology(json: JSONSerialization.data(withJSONObject: object)).document == topology.document)
    }
}

struct GeneratorTests {
    @Test(arguments: [(16, 8, 4, 2), (10, 4, 3, 5), (1, 1, 1, 1), (130, 8, 32, 16)])
    func railOptimizedFabricsAreValidAndComplete(nodes: Int, rails: Int, perLeaf: Int, spines: Int) throws {
        let shape = Topology.Shape(nodes: nodes, rails: rails, nodesPerLeaf: perLeaf, spines: spines)
        let topology = try Topology.railOptimized(shape)
        let units = (nodes + perLeaf - 1) / perLeaf
        #expect(topology.nodes.count == nodes)
        #expect(topology.endpointCount == nodes * rails)
        #expect(topology.leaves.count == units * rails)
        #expect(topology.spines.count == spines)
        #expect(topology.links.count == nodes * rails + units * rails * spines)
        for node in topology.nodes {
            let su = Int(node.name.rawValue.dropFirst(4))! / perLeaf
            for rail in node.rails { #expect(rail.leaf.rawValue == "leaf-s\(su)-r\(rail.endpoint.rail)") }
        }
        for leaf in topology.leaves { #expect(topology.spines(of: leaf).count == spines) }
        #expect(try Topology.railOptimized(shape).jsonData() == topology.jsonData())
    }

    @Test func badShapesAreRefused() {
        #expect(throws: TopologyError.self) {
            try Topology.railOptimized(.init(nodes: 0, rails: 8, nodesPerLeaf: 4, spines: 2))
        }
        #expect(throws: TopologyError.self) {
            try Topology.railOptimized(.init(nodes: 4, rails: 65, nodesPerLeaf: 4, spines: 2))
        }
        #expect(throws: TopologyError.self) {
            try Topology.railOptimized(.init(nodes: 4, rails: 8, nodesPerLeaf: 0, spines: 2))
        }
        #expect(throws: TopologyError.self) {
            try Topology.railOptimized(.init(nodes: 4, rails: 8, nodesPerLeaf: 4, spines: 0))
        }
    }
}

struct ProbePathTests {
    let topology: Topology
    init() throws { topology = try Topology(smallDocument()) }

    func names(_ path: ProbePath) -> [String] { path.components.map(\.description) }

    @Test func loopbackBlamesTheEndpoint() throws {
        let path = try topology.path(from: EndpointID("a/0")!, to: EndpointID("a/0")!)
        #expect(path.pathClass == .loopback)
        #expect(names(path) == ["a/0"])
    }

    @Test func intraHostBlamesBothEndpointsAndTheNode() throws {
        let topology = try Topology.railOptimized(.init(nodes: 2, rails: 4, nodesPerLeaf: 2, spines: 2))
        let path = try topology.path(from: EndpointID("gpu-0001/3")!, to: EndpointID("gpu-0001/0")!)
        #expect(path.pathClass == .intraHost)
        #expect(names(path) == ["gpu-0001/0", "gpu-0001/3", "gpu-0001"])
    }

    @Test func sameLeafBlamesEndpointsAccessLinksAndTheLeaf() throws {
        let path = try topology.path(from: EndpointID("a/0")!, to: EndpointID("c/0")!)
        #expect(path.pathClass == .sameLeaf)
        #expect(names(path) == ["a/0", "c/0", "a/0~leaf-1", "c/0~leaf-1", "leaf-1"])
        #expect(path.spineChoices.isEmpty)
        #expect(throws: PathError.self) {
            try topology.path(
                from: EndpointID("a/0")!, to: EndpointID("c/0")!, route: [SwitchName("leaf-2")!])
        }
    }

    @Test func crossLeafWithoutARouteLeavesTheSpineOpen() throws {
        let path = try topology.path(from: EndpointID("a/0")!, to: EndpointID("b/0")!)
        #expect(path.pathClass == .crossLeaf)
        #expect(names(path) == ["a/0", "b/0", "a/0~leaf-1", "b/0~leaf-2", "leaf-1", "leaf-2"])
        #expect(path.spineChoices.map(\.spine.rawValue) == ["spine-1", "spine-2"])
        #expect(path.spineChoices[1].links.map(\.rawValue) == ["leaf-1~spine-2", "leaf-2~spine-2"])
    }

    @Test func crossLeafWithARouteNamesItsSpineAndLinks() throws {
        let route = ["leaf-1", "spine-2", "leaf-2"].map { SwitchName($0)! }
        let path = try topology.path(from: EndpointID("a/0")!, to: EndpointID("b/0")!, route: route)
        #expect(path.spineChoices.isEmpty)
        #expect(
            names(path) == [
                "a/0", "b/0", "a/0~leaf-1", "b/0~leaf-2", "leaf-1~spine-2", "leaf-2~spine-2", "leaf-1",
                "leaf-2", "spine-2",
            ])
        for bad in [
            ["leaf-1", "spine-9", "leaf-2"], ["leaf-2", "spine-1", "leaf-1"], ["leaf-1", "leaf-2"],
        ] {
            #expect(throws: PathError.self) {
                try topology.path(
                    from: EndpointID("a/0")!, to: EndpointID("b/0")!, route: bad.map { SwitchName($0)! })
            }
        }
    }

    @Test func unknownEndpointsAreErrors() {
        #expect(throws: PathError.self) {
            try topology.path(from: EndpointID("z/0")!, to: EndpointID("a/0")!)
        }
    }
}
