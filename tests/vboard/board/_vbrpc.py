"""The virtual board's wire to its host controller (MicroPython side): one request, one reply, over a unix socket.

    import _vbrpc
    _vbrpc.connect("/tmp/board1/ctl.sock")
    body = _vbrpc.call(b"T")        # the simulated clock: 8 bytes, microseconds since the last hard boot

A message is a 4-byte big-endian length, then a 4-byte sequence number, then the body (requests: one opcode
byte and its arguments). A reply carries its request's number; a reply to an older request (left behind when
Ctrl-C interrupted a wait) is read and dropped, so the stream never falls out of step. A refusal has the length's
top bit set (REFUSED) and the body b"!" + 4-digit errno + message: the body alone cannot say it, since a reply's
data may begin with "!" (0x21: a DS3231 seconds register at 21 s).
"""
import socket
import struct

_sock = None
_seq = 0
_hdr = bytearray(8)
REFUSED = 0x80000000
CONFIG = {}


def connect(path):
    global _sock
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0")
    _sock = s


def call(op, payload=b""):
    global _seq
    _seq = (_seq + 1) & 0xFFFFFFFF
    _sock.write(struct.pack(">II", len(op) + len(payload) + 4, _seq) + op + payload)
    while True:
        _sock.readinto(_hdr)
        n, seq = struct.unpack(">II", _hdr)
        refused = n & REFUSED
        n &= REFUSED - 1
        body = _sock.read(n - 4) if n > 4 else b""
        if seq == _seq:
            if refused:  # the host refused: bad arguments, or a bus fault it simulates
                raise OSError(int(body[1:5].decode()), body[5:].decode())
            return body


def u64(b):
    return struct.unpack(">Q", b)[0]
