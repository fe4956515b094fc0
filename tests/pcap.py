"""A small pcap writer for tests: Ethernet / IPv4 / TCP frames with correct checksums.

Enough to hand tshark a capture of a TCP conversation built from real kmed encodings, without
sockets or capture privileges: `TcpConversation` keeps the sequence numbers of both sides (with a
three-way handshake first, so Wireshark's TCP analysis sees a proper stream) and `PcapWriter`
writes the classic libpcap format (https://wiki.wireshark.org/Development/LibpcapFileFormat,
LINKTYPE_ETHERNET = 1). Checksums: RFC 791 §3.1 (IPv4 header), RFC 793 §3.1 (TCP with the IPv4
pseudo-header), both RFC 1071 one's-complement sums.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PcapWriter", "TcpConversation", "checksum", "ethernet_ipv4_tcp"]

LINKTYPE_ETHERNET = 1
_PCAP_MAGIC = 0xA1B2C3D4
_ETHERTYPE_IPV4 = 0x0800
_TCP_FIN, _TCP_SYN, _TCP_PSH, _TCP_ACK = 0x01, 0x02, 0x08, 0x10


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of `data` (padded with a zero octet when odd)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet_ipv4_tcp(
    src: tuple[str, int],
    dst: tuple[str, int],
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    *,
    ip_id: int = 0,
    window: int = 65535,
) -> bytes:
    """One Ethernet II frame carrying IPv4 and TCP (no options) with correct checksums."""
    src_ip = ipaddress.IPv4Address(src[0]).packed
    dst_ip = ipaddress.IPv4Address(dst[0]).packed
    tcp_len = 20 + len(payload)
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                      window, 0, 0) + payload
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, tcp_len)
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, ip_id & 0xFFFF, 0x4000, 64, 6, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    # Locally administered MAC addresses derived from the last IPv4 octet.
    eth = bytes((2, 0, 0, 0, 0, dst_ip[3])) + bytes((2, 0, 0, 0, 0, src_ip[3])) + struct.pack("!H", _ETHERTYPE_IPV4)
    return eth + ip + tcp


class PcapWriter:
    """Classic pcap (microsecond timestamps, Ethernet link type) into memory; `save` writes it."""

    def __init__(self, snaplen: int = 262144) -> None:
        self._chunks = [struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET)]
        self.count = 0

    def add(self, frame: bytes, timestamp: float) -> None:
        """Append one link-layer frame captured at `timestamp` (seconds since the epoch)."""
        sec = int(timestamp)
        usec = min(round((timestamp - sec) * 1_000_000), 999_999)
        self._chunks.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        self.count += 1

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.getvalue())
        return path


@dataclass
class TcpConversation:
    """Both directions of one TCP connection, written to `writer` segment by segment.

    `client_to_server(data)` / `server_to_client(data)` emit one segment each (PSH|ACK) with the
    sequence numbers advanced, so a message split over two calls is a message split over two
    TCP segments, and two messages joined in one call share a segment.
    """

    writer: PcapWriter
    client: tuple[str, int] = ("127.0.0.1", 40000)
    server: tuple[str, int] = ("127.0.0.1", 36412)
    time: float = 1_700_000_000.0
    step: float = 0.001
    _seq: dict[str, int] = field(default_factory=lambda: {"c": 1000, "s": 5000})
    _ip_id: int = 1

    def _emit(self, side: str, flags: int, payload: bytes = b"") -> None:
        other = "s" if side == "c" else "c"
        src, dst = (self.client, self.server) if side == "c" else (self.server, self.client)
        ack = self._seq[other] if flags & _TCP_ACK else 0
        self.writer.add(ethernet_ipv4_tcp(src, dst, self._seq[side], ack, flags, payload, ip_id=self._ip_id), self.time)
        self._ip_id += 1
        self.time += self.step
        self._seq[side] += len(payload) + (1 if flags & (_TCP_SYN | _TCP_FIN) else 0)

    def handshake(self) -> TcpConversation:
        self._emit("c", _TCP_SYN)
        self._emit("s", _TCP_SYN | _TCP_ACK)
        self._emit("c", _TCP_ACK)
        return self

    def client_to_server(self, data: bytes) -> None:
        self._emit("c", _TCP_PSH | _TCP_ACK, data)

    def server_to_client(self, data: bytes) -> None:
        self._emit("s", _TCP_PSH | _TCP_ACK, data)

    def ack(self, side: str) -> None:
        """A bare ACK from `side` ("c" or "s")."""
        self._emit(side, _TCP_ACK)

    def close(self) -> None:
        self._emit("c", _TCP_FIN | _TCP_ACK)
        self._emit("s", _TCP_FIN | _TCP_ACK)
        self._emit("c", _TCP_ACK)
