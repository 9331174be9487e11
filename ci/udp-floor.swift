// The floor under the agent's CPU figure (docs/agent.md, "Cost"): the same UDP traffic with none of
// the agent's work. One thread, one socket, a 5 ms pass (poll, drain with recvmsg answering probes
// at once, then send the probes that are due) at a given rate toward a peer doing the same. No
// sketches, no scheduler, no HTTP: what this costs, any user-space UDP prober pays at this rate on
// this machine. Built and run by ci/measure-agent.sh; not part of the product.
// usage: udp-floor LISTEN_HOST PORT PEER_HOST PEER_PORT RATE SECONDS
import Glibc

let a = CommandLine.arguments
guard a.count == 7, let port = UInt16(a[2]), let peerPort = UInt16(a[4]),
      let rate = Double(a[5]), let seconds = Double(a[6]) else {
    fputs("usage: udp-floor LISTEN_HOST PORT PEER_HOST PEER_PORT RATE SECONDS\n", stderr); exit(64)
}
func address(_ host: String, _ port: UInt16) -> sockaddr_in {
    var s = sockaddr_in()
    s.sin_family = sa_family_t(AF_INET)
    s.sin_port = port.bigEndian
    inet_pton(AF_INET, host, &s.sin_addr)
    return s
}
let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
var local = address(a[1], port)
var peer = address(a[3], peerPort)
_ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
var on: Int32 = 1
setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, socklen_t(MemoryLayout<Int32>.size))
_ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)

func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }
var packet = [UInt8](repeating: 0, count: 40)
var buffer = [UInt8](repeating: 0, count: 2048)
var control = [UInt8](repeating: 0, count: 64)
var from = sockaddr_storage()
let start = now()
var nextSend = start
var sent = 0, answered = 0, replies = 0
while now() - start < seconds {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    if poll(&p, 1, 0) > 0 {
        while true {
            let n: Int = buffer.withUnsafeMutableBytes { b in control.withUnsafeMutableBytes { c in
                withUnsafeMutablePointer(to: &from) { f in
                    var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
                    return withUnsafeMutablePointer(to: &iov) { iovp in
                        var m = msghdr(msg_name: UnsafeMutableRawPointer(f), msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                                       msg_iov: iovp, msg_iovlen: 1, msg_control: c.baseAddress, msg_controllen: c.count, msg_flags: 0)
                        return recvmsg(fd, &m, 0)
                    } } } }
            if n <= 0 { break }
            if buffer[0] == 1 {
                buffer[0] = 2
                _ = buffer.withUnsafeBytes { b in withUnsafePointer(to: &from) { f in f.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, n, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } }
                answered += 1
            } else { replies += 1 }
        }
    }
    let t = now()
    while nextSend <= t {
        packet[0] = 1
        _ = packet.withUnsafeBytes { b in withUnsafePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } }
        sent += 1
        nextSend += 1 / rate
    }
    var sleep = timespec(tv_sec: 0, tv_nsec: 5_000_000)
    nanosleep(&sleep, nil)
}
print("sent \(sent) answered \(answered) replies \(replies)")
