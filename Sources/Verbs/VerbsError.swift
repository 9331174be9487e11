// The one error of the verbs layer: which libibverbs call failed, and its errno or return code,
// so that "no RDMA here" (ENOSYS) reads as such and a caller can match on the code.

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A failed verbs call: the call's name (`ibv_modify_qp`), its errno or nonzero return code, and
/// an optional detail (the device or the transition it was doing).
public struct VerbsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The C function that failed, e.g. `ibv_get_device_list`.
    public let call: String
    /// errno, or the call's return code where it returns one (ibv_modify_qp returns an errno value).
    public let code: Int32
    /// What the call was for, e.g. `mlx5_0 port 1 RC INIT->RTR`; empty if nothing to add.
    public let detail: String

    public init(call: String, code: Int32, detail: String = "") {
        self.call = call
        self.code = code
        self.detail = detail
    }

    /// `strerror(code)`: "Function not implemented" for ENOSYS.
    public var message: String { String(cString: strerror(code)) }

    /// `ibv_get_device_list: Function not implemented` (with `(detail)` when there is one).
    public var description: String {
        detail.isEmpty ? "\(call): \(message)" : "\(call): \(message) (\(detail))"
    }

    /// Matches an error by its code: `case VerbsError.noSystemSupport: ...`.
    public static func ~= (pattern: Int32, error: VerbsError) -> Bool { error.code == pattern }

    /// The kernel has no RDMA support (ENOSYS), the case on machines without InfiniBand.
    public var isNoRDMA: Bool { code == ENOSYS }
}
