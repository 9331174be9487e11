// The verbs layer without RDMA hardware: RealVerbs reports "no RDMA" with its errno here, and
// FakeVerbs keeps the real queue pair state rules and its seeded, clocked fabric.

import Testing
import Verbs

#if canImport(Glibc)
import Glibc
#endif

/// One IB device with one active 4x NDR port, LID 7.
func oneDevice(name: String = "mlx5_0", linkLayer: LinkLayer = .infiniband) -> DeviceInfo {
    DeviceInfo(
        name: name, guid: 0x0c42_a103_0012_3456, firmware: "28.39.1002",
        ports: [
            PortInfo(
                number: 1, state: .active, linkLayer: linkLayer, activeSpeed: 128, activeWidth: 2, mtu: 4096,
                lid: 7,
                gids: linkLayer == .ethernet
                    ? [3: GID(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 1])] : [:])
        ])
}

@Suite("Verbs")
struct VerbsTests {
    @Test("RealVerbs lists devices, or fails with the call's name and errno (ENOSYS here)")
    func realDeviceList() {
        do {
            let names = try RealVerbs().deviceNames()
            #expect(names.allSatisfy { !$0.isEmpty })
        } catch {
            #expect(error.call == "ibv_get_device_list")
            #expect(error.code != 0)
            if error.code == ENOSYS {
                #expect(error.isNoRDMA)
                #expect(error.description == "ibv_get_device_list: Function not implemented")
            }
        }
    }

    @Test("errors read and match by code")
    func errorText() {
        let error = VerbsError(call: "ibv_modify_qp", code: EINVAL, detail: "mlx5_0 RC INIT->RTR")
        #expect(error.description == "ibv_modify_qp: Invalid argument (mlx5_0 RC INIT->RTR)")
        switch error {
        case EINVAL: break
        default: Issue.record("~= did not match EINVAL")
        }
    }

    @Test("GUID, GID, speed and MTU read as the tools print them")
    func formatting() {
        let device = oneDevice(linkLayer: .ethernet)
        #expect(device.guidText == "0c42:a103:0012:3456")
        #expect(device.ports[0].speedName == "NDR")
        #expect(device.ports[0].lanes == 4)  // width 2 is 4x
        #expect(device.ports[0].probeGIDIndex == 3)
        #expect(device.ports[0].gids[3]?.description == "0000:0000:0000:0000:0000:ffff:0a01:0001")
        #expect(mtuBytes(rawMTU: 5) == 4096)
        #expect(rawMTU(bytes: 4096) == 5)
        #expect(rawMTU(bytes: 1500) == 3)
    }

    @Test("the fake refuses transitions out of order and sends before RTS, as ibv_modify_qp does")
    func stateRules() throws {
        let verbs = FakeVerbs(devices: [oneDevice()])
        let device = try verbs.openDevice("mlx5_0")
        let queue = try verbs.createCompletionQueue(device, entries: 16)
        let pair = try verbs.createQueuePair(device, type: .rc, completionQueue: queue, slots: 4)
        #expect(verbs.state(of: pair) == .reset)
        #expect(throws: VerbsError.self) {
            try verbs.modifyQueuePair(pair, .readyToSend(psn: 0, timeout: 14, retryCount: 7))
        }
        #expect(throws: VerbsError.self) {
            try verbs.postSend(pair, workRequestID: 1, immediate: 1, kind: .sendWithImmediate, to: .connected)
        }
        #expect(throws: VerbsError.self) { try verbs.modifyQueuePair(pair, .initialize(port: 2, qKey: 0)) }
        let remote = QueuePairAddress(lid: 7, qpNumber: verbs.queuePairNumber(pair))
        try verbs.connect(pair, port: 1, remote: remote, localPSN: 0, mtu: 4096)
        #expect(verbs.state(of: pair) == .readyToSend)
        try verbs.modifyQueuePair(pair, .reset)
        #expect(verbs.state(of: pair) == .reset)
    }

    @Test("a send arrives after the fabric's delay; the channel fires only when armed")
    func deliveryAndWait() throws {
        let verbs = FakeVerbs(devices: [oneDevice()], fabric: FakeFabric(oneWayNanoseconds: 3_000))
        let device = try verbs.openDevice("mlx5_0")
        let queue = try verbs.createCompletionQueue(device, entries: 16)
        let a = try verbs.createQueuePair(device, type: .rc, completionQueue: queue, slots: 4)
        let b = try verbs.createQueuePair(device, type: .rc, completionQueue: queue, slots: 4)
        try verbs.connect(
            a, port: 1, remote: QueuePairAddress(lid: 7, qpNumber: verbs.queuePairNumber(b)), localPSN: 0,
            mtu: 4096)
        try verbs.connect(
            b, port: 1, remote: QueuePairAddress(lid: 7, qpNumber: verbs.queuePairNumber(a)), localPSN: 0,
            mtu: 4096)
        try verbs.postReceive(b, workRequestID: 9)
        try verbs.postSend(a, workRequestID: 1, immediate: 42, kind: .sendWithImmediate, to: .connected)
        #expect(try verbs.pollCompletions(queue, maximum: 8).isEmpty)
        // Not armed: the wait sleeps the whole timeout even though the completion came.
        #expect(try verbs.waitForCompletion([queue], timeoutNanoseconds: 10_000) == false)
        #expect(verbs.clock.nanoseconds == 10_000)
        let late = try verbs.pollCompletions(queue, maximum: 8)
        #expect(late.count == 2)
        let receive = try #require(late.first { $0.opcode == .receive })
        #expect(receive.immediate == 42 && receive.workRequestID == 9)
        #expect(receive.sourceQPNumber == verbs.queuePairNumber(a) && receive.sourceLID == 7)
        // Armed: wakes at the completion's time.
        try verbs.postReceive(b, workRequestID: 10)
        try verbs.postSend(a, workRequestID: 2, immediate: 43, kind: .rdmaWriteWithImmediate, to: .connected)
        try verbs.requestNotification(queue)
        #expect(try verbs.waitForCompletion([queue], timeoutNanoseconds: 1_000_000))
        #expect(verbs.clock.nanoseconds == 13_000)
        #expect(
            try verbs.pollCompletions(queue, maximum: 8).contains { $0.opcode == .receiveRDMAWithImmediate })
    }

    @Test(
        "a failed RC send moves the pair to ERR and flushes its receives; injected call failures throw once")
    func failures() throws {
        let verbs = FakeVerbs(devices: [oneDevice()])
        let device = try verbs.openDevice("mlx5_0")
        let queue = try verbs.createCompletionQueue(device, entries: 16)
        let a = try verbs.createQueuePair(device, type: .rc, completionQueue: queue, slots: 4)
        try verbs.connect(
            a, port: 1, remote: QueuePairAddress(lid: 7, qpNumber: 0x999), localPSN: 0, mtu: 4096)
        try verbs.postReceive(a, workRequestID: 5)
        verbs.script = [.fail(.retryExceeded)]
        try verbs.postSend(a, workRequestID: 1, immediate: 1, kind: .sendWithImmediate, to: .connected)
        verbs.clock.advance(by: 1_000_000)
        let completions = try verbs.pollCompletions(queue, maximum: 8)
        #expect(completions.map(\.status).sorted { "\($0)" < "\($1)" } == [.flushed, .retryExceeded])
        #expect(verbs.state(of: a) == .error)
        verbs.failNextCall("ibv_create_qp", code: ENOMEM)
        #expect(throws: VerbsError(call: "ibv_create_qp", code: ENOMEM, detail: "injected by FakeVerbs")) {
            _ = try verbs.createQueuePair(device, type: .ud, completionQueue: queue, slots: 4)
        }
        _ = try verbs.createQueuePair(device, type: .ud, completionQueue: queue, slots: 4)
    }

    @Test("without RDMA the fake fails like the kernel does")
    func noRDMA() {
        let verbs = FakeVerbs(devices: [])
        verbs.listError = VerbsError(call: "ibv_get_device_list", code: ENOSYS)
        #expect(throws: VerbsError(call: "ibv_get_device_list", code: ENOSYS)) { try verbs.deviceNames() }
    }
}
