// The UDP probe's bytes, and the faults file: parsing, errors naming the field, which rule applies.

import Foundation
import Testing

@testable import Agent

@Suite struct PacketAndFaultTests {
    @Test func packetRoundTrips() throws {
        let packet = ProbePacket(
            kind: .request, srcRail: 3, dstRail: 7, session: 0x0102_0304_0506_0708, sequence: 42,
            sendTime: 123_456_789_012, hold: 0x0A0B, srcNode: "gpu-a017")
        let bytes = packet.bytes
        #expect(bytes.count == 40 + 1 + 8)
        #expect(Array(bytes[0..<8]) == [0x46, 0x4C, 0x50, 0x42, 2, 1, 3, 7])
        #expect(Array(bytes[32..<41]) == [0, 0, 0, 0, 0, 0, 0x0A, 0x0B, 8])
        #expect(ProbePacket(bytes) == packet)
    }

    @Test func malformedPacketsAreRejected() {
        let good = ProbePacket(
            kind: .reply, srcRail: 0, dstRail: 0, session: 1, sequence: 2, sendTime: 3, srcNode: "n"
        ).bytes
        #expect(ProbePacket(good) != nil)
        #expect(ProbePacket(Array(good.dropLast())) == nil)  // name length disagrees
        var wrongMagic = good
        wrongMagic[0] = 0
        #expect(ProbePacket(wrongMagic) == nil)
        var wrongVersion = good
        wrongVersion[4] = 1
        #expect(ProbePacket(wrongVersion) == nil)
        var badKind = good
        badKind[5] = 9
        #expect(ProbePacket(badKind) == nil)
        var badRail = good
        badRail[6] = 64
        #expect(ProbePacket(badRail) == nil)
        #expect(ProbePacket([UInt8](repeating: 0, count: 10)) == nil)
    }

    @Test func faultFilesParseAndNameTheirErrors() throws {
        let plan = try FaultPlan.parse(
            Data(
                #"{"seed": 3, "rules": [{"rail": 1, "peer": "n2", "delayMicros": 2000}, {"drop": 0.5}]}"#.utf8
            ),
            name: "f.json")
        #expect(plan.rules.count == 2 && plan.seed == 3)
        #expect(throws: AgentError("f.json: rules[0].drop: 1.5 is outside 0...1")) {
            try FaultPlan.parse(Data(#"{"rules": [{"drop": 1.5}]}"#.utf8), name: "f.json")
        }
        #expect(throws: AgentError("f.json: rules[0].rail: 64 is outside 0...63")) {
            try FaultPlan.parse(Data(#"{"rules": [{"rail": 64}]}"#.utf8), name: "f.json")
        }
        #expect(throws: (any Error).self) { try FaultPlan.parse(Data("[]".utf8), name: "f.json") }
    }

    @Test func theFirstMatchingRuleDecides() {
        let plan = FaultPlan(rules: [
            FaultRule(rail: 1, peer: "n2", delayMicros: 2000),
            FaultRule(peer: "n3/4", drop: 1),
            FaultRule(rail: 2, drop: 0.3),
        ])
        #expect(
            plan.fate(rail: 1, peerNode: "n2", peerRail: 0, unit: 0) == .answer(delayNanoseconds: 2_000_000))
        #expect(plan.fate(rail: 0, peerNode: "n2", peerRail: 0, unit: 0) == .answer(delayNanoseconds: 0))
        #expect(plan.fate(rail: 0, peerNode: "n3", peerRail: 4, unit: 0.99) == .drop)
        #expect(plan.fate(rail: 0, peerNode: "n3", peerRail: 5, unit: 0.99) == .answer(delayNanoseconds: 0))
        #expect(plan.fate(rail: 2, peerNode: "n9", peerRail: 0, unit: 0.29) == .drop)
        #expect(plan.fate(rail: 2, peerNode: "n9", peerRail: 0, unit: 0.31) == .answer(delayNanoseconds: 0))
    }
}
