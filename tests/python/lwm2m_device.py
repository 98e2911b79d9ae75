"""A scripted LwM2M device for the edge cases: CoAP messages encoded and decoded by
aiocoap (PyPI) over a plain UDP socket, so each test says exactly what the device sends
and when. TLV is written here (a few lines of OMA LwM2M §6.4.3)."""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import subprocess
import time

from aiocoap import ACK, CON, NON, RST, Message
from aiocoap.numbers.codes import Code

from junction_harness import HOST, TIMEOUT

TLV, SENML_JSON, SENML_CBOR, OMA_JSON, TEXT, LINK = 11542, 110, 112, 11543, 0, 40


def tlv(kind: int, ident: int, value: bytes) -> bytes:
    """One TLV element: kind 0 object instance, 1 resource instance, 2 multiple
    resource, 3 resource with value."""
    t = kind << 6
    ident_bytes = bytes([ident]) if ident < 256 else struct.pack(">H", ident)
    if ident >= 256:
        t |= 0x20
    n = len(value)
    if n < 8:
        t |= n
        length = b""
    elif n < 256:
        t |= 0x08
        length = bytes([n])
    else:
        t |= 0x10
        length = struct.pack(">H", n)
    return bytes([t]) + ident_bytes + length + value


def tlv_int(ident: int, n: int) -> bytes:
    for size, fmt in ((1, ">b"), (2, ">h"), (4, ">i"), (8, ">q")):
        try:
            return tlv(3, ident, struct.pack(fmt, n))
        except struct.error:
            continue
    raise ValueError(n)


def tlv_str(ident: int, s: str) -> bytes:
    return tlv(3, ident, s.encode())


class Udp:
    """Datagrams over a plain UDP socket."""

    def __init__(self, port: int, host: str = HOST):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((host, port))

    def send(self, datagram: bytes) -> None:
        self.sock.send(datagram)

    def recv(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096)

    def close(self) -> None:
        self.sock.close()


class Dtls:
    """Datagrams over DTLS 1.2 with a pre-shared key, by `openssl s_client -dtls1_2`
    (Debian's openssl): each write to its stdin is one record, each record it receives
    one write to its stdout."""

    def __init__(self, port: int, identity: str, key: str, host: str = HOST):
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-dtls1_2", "-quiet", "-connect", f"{host}:{port}",
             "-psk_identity", identity, "-psk", key.encode().hex(), "-cipher", "PSK-AES128-CCM8"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def send(self, datagram: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(datagram)
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise socket.timeout("no datagram")
        data = os.read(fd, 4096)
        if not data:
            raise ConnectionError("the DTLS session ended")
        return data

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Device:
    """One device at its own address, over UDP or (given `dtls=(identity, key)`) DTLS."""

    def __init__(self, port: int, ep: str, host: str = HOST, dtls: tuple[str, str] | None = None):
        self.ep = ep
        self.link = Dtls(port, *dtls, host=host) if dtls else Udp(port, host)
        self.mid = random.randrange(0, 60000)
        self.pending: list[Message] = []

    def close(self) -> None:
        self.link.close()

    def _mid(self) -> int:
        self.mid = (self.mid + 1) % 65536
        return self.mid

    def send(self, m: Message) -> None:
        self.link.send(m.encode())

    def recv(self, timeout: float = TIMEOUT) -> Message:
        return Message.decode(self.link.recv(timeout))

    def request(self, code, path, query=(), payload=b"", mtype=CON, **opts) -> Message:
        """Send a request and return the gateway's piggy-backed response (requests the
        gateway sends meanwhile are kept for `next_request`)."""
        m = Message(mtype=mtype, code=code, mid=self._mid(), token=os.urandom(4), payload=payload,
                    uri_path=tuple(path), uri_query=tuple(query), **opts)
        self.send(m)
        deadline = time.monotonic() + TIMEOUT
        while True:
            r = self.recv(max(0.05, deadline - time.monotonic()))
            if r.code.is_request():
                self.pending.append(r)
            elif r.mtype == ACK and r.mid == m.mid or r.token == m.token:
                return r

    def register(self, lt: int = 60, query=(), objects: bytes = b"</1/0>,</3/0>,</5/0>", version="1.1"):
        q = [f"ep={self.ep}", f"lt={lt}", f"lwm2m={version}", *query]
        return self.request(Code.POST, ["rd"], q, objects, content_format=LINK)

    def update(self, query=(), objects: bytes = b""):
        return self.request(Code.POST, ["rd", self.ep], query, objects)

    def deregister(self):
        return self.request(Code.DELETE, ["rd", self.ep])

    def next_request(self, timeout: float = TIMEOUT) -> Message:
        """The next request the gateway sends (a command)."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            r = self.recv(max(0.05, deadline - time.monotonic()))
            if r.code.is_request():
                return r

    def answer(self, req: Message, code, payload: bytes = b"", content_format=None, observe=None) -> None:
        """A piggy-backed response."""
        opts = {}
        if content_format is not None:
            opts["content_format"] = content_format
        if observe is not None:
            opts["observe"] = observe
        self.send(Message(mtype=ACK, code=code, mid=req.mid, token=req.token, payload=payload, **opts))

    def empty_ack(self, req: Message) -> None:
        self.send(Message(mtype=ACK, code=Code.EMPTY, mid=req.mid, token=b""))

    def separate(self, req: Message, code, payload=b"", content_format=None, observe=None, mtype=CON) -> Message:
        """A separate response (or a notification): CON or NON with the request's token."""
        opts = {}
        if content_format is not None:
            opts["content_format"] = content_format
        if observe is not None:
            opts["observe"] = observe
        m = Message(mtype=mtype, code=code, mid=self._mid(), token=req.token, payload=payload, **opts)
        self.send(m)
        return m


__all__ = ["Device", "tlv", "tlv_int", "tlv_str", "ACK", "CON", "NON", "RST", "Code",
           "TLV", "SENML_JSON", "SENML_CBOR", "OMA_JSON", "TEXT", "LINK"]
