"""The virtual board's wire to its host controller (MicroPython side): one request, one reply, over a unix socket.

    import _vbrpc
    _vbrpc.connect("/tmp/board1/ctl.sock")
    body = _vbrpc.call(b"T")        # the simulated clock: 8 bytes, microseconds since the last hard boot

A message is a 4-byte big-endian length, then a 4-byte sequence number, then the body (requests: one opcode
byte and its arguments; replies: one status byte, 0 or b"!" for a refusal with errno and text, then the data: a
reply's data may start with any byte, 0x21 included). A reply carries its request's number; a reply to an older request (left behind when
Ctrl-C interrupted a wait) is read and dropped, so the stream never falls out of step.
"""
import socket
import struct

_sock = None
_seq = 0
_hdr = bytearray(9)  # length, sequence number, status (0, or b"!": refused)
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
        n, seq, status = struct.unpack(">IIB", _hdr)
        body = _sock.read(n - 5) if n > 5 else b""
        if seq == _seq:
            if status:  # the host refused: bad arguments, or a bus fault it simulates
                raise OSError(int(body[:4].decode()), body[4:].decode())
            return body


def u64(b):
    return struct.unpack(">Q", b)[0]
