#!/usr/bin/env python3
# Writes the sysfs fixture trees the discovery tests read: small text files and relative symlinks,
# shaped like a real node's /sys (class and bus entries linking into /sys/devices bridge chains).
# Run from this directory; it replaces hgx-8gpu-8nic/ and pcie-8gpu-2nic/.
import os, shutil

def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")

def link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)

def pci_device(root, chain, vendor, device, cls, speed="32.0 GT/s PCIe", width=16, max_speed="32.0 GT/s PCIe", max_width=16, numa=0):
    """chain: ['pci0000:15', '0000:15:01.0', ..., '0000:18:00.0']; returns the device's path under root."""
    rel = os.path.join("sys/devices", *chain)
    d = os.path.join(root, rel)
    write(f"{d}/vendor", vendor)
    write(f"{d}/device", device)
    write(f"{d}/class", cls)
    write(f"{d}/current_link_speed", speed)
    write(f"{d}/max_link_speed", max_speed)
    write(f"{d}/current_link_width", str(width))
    write(f"{d}/max_link_width", str(max_width))
    write(f"{d}/numa_node", str(numa))
    link(os.path.join(root, "sys/bus/pci/devices", chain[-1]), os.path.join("../../..", "devices", *chain))
    return rel

def bridge(root, chain):
    pci_device(root, chain, "0x1000", "0xc030", "0x060400")

def nic(root, chain, name, guid, lid, state="4: ACTIVE", phys="5: LinkUp", rate="400 Gb/sec (4X NDR)", layer="InfiniBand", numa=0, errors=0):
    rel = pci_device(root, chain, "0x15b3", "0x1021", "0x020700", numa=numa)
    d = os.path.join(root, rel, "infiniband", name)
    write(f"{d}/node_guid", guid)
    write(f"{d}/fw_ver", "28.39.1002")
    p = f"{d}/ports/1"
    write(f"{p}/state", state)
    write(f"{p}/phys_state", phys)
    write(f"{p}/rate", rate)
    write(f"{p}/link_layer", layer)
    write(f"{p}/lid", hex(lid))
    for counter, value in [("symbol_error", errors), ("link_downed", errors // 2), ("port_rcv_errors", 0),
                           ("port_xmit_discards", 3), ("port_rcv_data", 123456789)]:
        write(f"{p}/counters/{counter}", str(value))
    link(f"{d}/device", os.path.join("../../..", chain[-1]))
    depth = len(chain) + 3  # sys/devices/<chain>/infiniband/<name>
    link(os.path.join(root, "sys/class/infiniband", name), os.path.join("../..", "devices", *chain, "infiniband", name))

def hgx(root):
    # Eight PCIe switches, each with one H100 and one ConnectX-7 below it (a DGX/HGX H100 shape),
    # on two sockets; plus NVSwitches (class 0x0680, not GPUs) and a host NIC without RDMA.
    buses = [0x15, 0x28, 0x38, 0x4a, 0x98, 0xa8, 0xb8, 0xca]
    for i, b in enumerate(buses):
        numa = 0 if i < 4 else 1
        host = f"pci0000:{b:02x}"
        rp = f"0000:{b:02x}:01.0"
        up = f"0000:{b+1:02x}:00.0"
        dn_gpu = f"0000:{b+2:02x}:00.0"
        dn_nic = f"0000:{b+2:02x}:01.0"
        gpu = f"0000:{b+3:02x}:00.0"
        nicaddr = f"0000:{b+4:02x}:00.0"
        for chain in ([host, rp], [host, rp, up], [host, rp, up, dn_gpu], [host, rp, up, dn_nic]):
            bridge(root, chain)
        pci_device(root, [host, rp, up, dn_gpu, gpu], "0x10de", "0x2330", "0x030200", numa=numa)
        nic(root, [host, rp, up, dn_nic, nicaddr], f"mlx5_{i}", f"0c42:a103:00a0:{i:04x}", 100 + i, numa=numa,
            errors=(17 if i == 5 else 0))
    for j, b in enumerate([0x05, 0x06]):
        pci_device(root, [f"pci0000:00", "0000:00:02.0", f"0000:{b:02x}:00.0"], "0x10de", "0x22a3", "0x068000")
    pci_device(root, ["pci0000:00", "0000:00:03.0", "0000:07:00.0"], "0x8086", "0x1593", "0x020000", speed="8.0 GT/s PCIe",
               max_speed="8.0 GT/s PCIe", width=8, max_width=8)

def two_nics(root):
    # An older PCIe node: two sockets, each a PCIe switch with four GPUs (A100, class 0x0302) and
    # one NIC. GPU 6 trained at x8 of x16 and Gen3 of Gen4; mlx5_1's port is down.
    for s, (b, name) in enumerate([(0x10, "mlx5_0"), (0x90, "mlx5_1")]):
        host = f"pci0000:{b:02x}"
        rp = f"0000:{b:02x}:01.0"
        up = f"0000:{b+1:02x}:00.0"
        for chain in ([host, rp], [host, rp, up]):
            bridge(root, chain)
        for g in range(4):
            dn = f"0000:{b+2:02x}:{g:02x}.0"
            bridge(root, [host, rp, up, dn])
            slow = s == 1 and g == 2
            pci_device(root, [host, rp, up, dn, f"0000:{b+3+g:02x}:00.0"], "0x10de", "0x20b2", "0x030200", numa=s,
                       speed="8.0 GT/s PCIe" if slow else "16.0 GT/s PCIe", max_speed="16.0 GT/s PCIe",
                       width=8 if slow else 16)
        dn = f"0000:{b+2:02x}:08.0"
        bridge(root, [host, rp, up, dn])
        nic(root, [host, rp, up, dn, f"0000:{b+8:02x}:00.0"], name, f"b859:9f03:00c1:{s:04x}", 0 if s else 5,
            rate="200 Gb/sec (4X HDR)", layer="Ethernet" if False else "InfiniBand", numa=s,
            state="1: DOWN" if s == 1 else "4: ACTIVE", phys="3: Disabled" if s == 1 else "5: LinkUp")

for name, build in [("hgx-8gpu-8nic", hgx), ("pcie-8gpu-2nic", two_nics)]:
    shutil.rmtree(name, ignore_errors=True)
    build(name)
