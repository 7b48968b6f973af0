"""PROXY protocol headers (v1 and v2) for the e2e tests, built and parsed here in Python from
the spec (haproxy doc/proxy-protocol.txt), independently of common/proxyproto.c, and a tcp
backend that reads one before echoing."""
import ipaddress
import socket
import struct
import threading

from .backends import Server, echo_until_eof

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src, dst, sport, dport, command=1, tlvs=b""):
    """A v2 header: PROXY (command 1) over TCP4 or TCP6, or LOCAL (0) without addresses."""
    if command == 0:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if a.version == 4 else 0x21
    body = a.packed + b.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def read_pp(conn):
    """Reads one PROXY header from CONN, byte-exact, and returns a dict: version, command,
    family, src, dst (host, port) or None. Raises on anything the spec does not allow."""
    first = conn.recv(1, socket.MSG_WAITALL)
    if first == b"P":
        line = first
        while not line.endswith(b"\r\n"):
            c = conn.recv(1)
            assert c, "EOF inside a v1 line: %r" % line
            line += c
            assert len(line) <= 107, "v1 line too long: %r" % line
        parts = line[:-2].decode("ascii").split(" ")
        assert parts[0] == "PROXY", line
        if parts[1] == "UNKNOWN":
            return {"version": 1, "command": "proxy", "family": "UNKNOWN", "src": None, "dst": None}
        assert parts[1] in ("TCP4", "TCP6") and len(parts) == 6, line
        ver = 4 if parts[1] == "TCP4" else 6
        for a in parts[2:4]:
            assert ipaddress.ip_address(a).version == ver, line
        for p in parts[4:6]:
            assert p == str(int(p)) and 0 <= int(p) <= 65535, line
        return {"version": 1, "command": "proxy", "family": parts[1],
                "src": (parts[2], int(parts[4])), "dst": (parts[3], int(parts[5]))}
    rest = conn.recv(15, socket.MSG_WAITALL)
    hdr = first + rest
    assert hdr[:12] == V2_SIG, "neither v1 nor v2: %r" % hdr
    assert hdr[12] >> 4 == 2, hdr
    command = {0: "local", 1: "proxy"}[hdr[12] & 15]
    fam = hdr[13]
    (n,) = struct.unpack("!H", hdr[14:16])
    body = conn.recv(n, socket.MSG_WAITALL) if n else b""
    assert len(body) == n, "short v2 block"
    out = {"version": 2, "command": command, "family": fam, "src": None, "dst": None, "tlv": body}
    if command == "proxy" and fam in (0x11, 0x21):
        k = 4 if fam == 0x11 else 16
        src, dst = body[:k], body[k:2 * k]
        sp, dp = struct.unpack("!HH", body[2 * k:2 * k + 4])
        out["src"] = (str(ipaddress.ip_address(src)), sp)
        out["dst"] = (str(ipaddress.ip_address(dst)), dp)
        out["tlv"] = body[2 * k + 4:]
    return out


class PPEcho(Server):
    """A tcp backend behind a PROXY header: reads it (read_pp), records it in `headers`,
    then echoes everything until EOF (and shuts its write side down)."""

    kind = "ppecho"

    def __init__(self, transcript):
        self.headers = []
        self.hlock = threading.Lock()
        super().__init__(transcript)

    def handle(self, conn, ch):
        hdr = read_pp(conn)
        ch.event("PROXY header %r" % hdr)
        with self.hlock:
            self.headers.append(hdr)
        echo_until_eof(conn, ch, 256 * 1024)
        conn.shutdown(socket.SHUT_WR)
