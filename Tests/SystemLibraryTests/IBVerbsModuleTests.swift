// The CIBVerbs module map compiles and links: the device list with or without RDMA, and the query_port shim.

import CIBVerbs
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("CIBVerbs")
struct IBVerbsModuleTests {
    @Test("ibv_get_device_list answers on machines with and without RDMA; query_port where a device is")
    func deviceList() throws {
        // The shim as a function value: the static inline wrapper must compile and link on every
        // machine, even one where no device lets it be called.
        let queryPort:
            (UnsafeMutablePointer<ibv_context>?, UInt8, UnsafeMutablePointer<ibv_port_attr>?) -> Int32 =
                faultline_ibv_query_port

        var count: Int32 = -1
        errno = 0
        let list = ibv_get_device_list(&count)
        let error = errno
        guard let list else {
            // No RDMA in the kernel (ENOSYS) or no permission: nil, and errno says why.
            #expect(error != 0, "nil device list without errno")
            return
        }
        defer { ibv_free_device_list(list) }
        #expect(count >= 0)
        // The list ends with a null entry after `count` devices.
        #expect(list[Int(count)] == nil)
        for index in 0..<Int(count) {
            let device = try #require(list[index])
            #expect(!String(cString: ibv_get_device_name(device)).isEmpty)
        }
        // Where a device opens, the shim's query_port answers for its port 1.
        if count > 0, let context = ibv_open_device(list[0]) {
            defer { ibv_close_device(context) }
            var attributes = ibv_port_attr()
            #expect(queryPort(context, 1, &attributes) == 0)
        }
    }
}
