"""The virtual board's wire to its host controller (MicroPython side): one request, one reply, over a unix socket.

    import _vbrpc
    _vbrpc.connect("/tmp/board1/ctl.sock")
    body = _vbrpc.call(b"T")        # the simulated clock: 8 bytes, microseconds since the last hard boot

A message is a 4-byte big-endian length, then a 4-byte sequence number, then the body (requests: one opcode
byte and its arguments; a refusal's reply has the number's top bit set and a 4-digit errno, then the message). A reply carries its request's number; a reply to an older request (left behind when
Ctrl-C interrupted a wait) is read and dropped, so the stream never falls out of step.
"""
import socket
import struct

_sock = None
_seq = 0
_hdr = bytearray(8)
CONFIG = {}


def connect(path):
    global _sock
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0")
    _sock = s


def call(op, payload=b""):
    global _seq
    _seq = (_seq + 1) & 0x7FFFFFFF  # the top bit of a reply's number marks a refusal
    _sock.write(struct.pack(">II", len(op) + len(payload) + 4, _seq) + op + payload)
    while True:
        _sock.readinto(_hdr)
        n, seq = struct.unpack(">II", _hdr)
        body = _sock.read(n - 4) if n > 4 else b""
        if seq & 0x7FFFFFFF == _seq:
            if seq & 0x80000000:  # the host refused: bad arguments, or a bus fault it simulates
                raise OSError(int(body[:4].decode()), body[4:].decode())
            return body


def u64(b):
    return struct.unpack(">Q", b)[0]
