"""The virtual board's wire to its host controller (MicroPython side): one request, one reply, over a unix socket.

    import _vbrpc
    _vbrpc.connect("/tmp/board1/ctl.sock")
    body = _vbrpc.call(b"T")        # the simulated clock: 8 bytes, microseconds since the last hard boot

A message is a 4-byte big-endian length, then a 4-byte sequence number, then the body (requests: one opcode
byte and its arguments; replies: one status byte, 0, b"!" for a refusal with errno and text or b"K" for a Ctrl-C, then the data: a
reply's data may start with any byte, 0x21 included). A reply carries its request's number; a reply to an older request (left behind when
Ctrl-C interrupted a wait) is read and dropped, and a reply cut by a Ctrl-C is finished by the next call.
"""
import socket
import struct

_sock = None
_seq = 0
# Reply bytes read but not yet consumed. A Ctrl-C (KeyboardInterrupt) can end call() between two reads, e.g.
# after a reply's header and before its body; the bytes stay here and the next call() goes on from them, so the
# stream never falls out of step (reading header and body afresh each time did: a garbage length, a MemoryError
# or a read that never ends, after a depot tool interrupted the loop mid-request).
_rx = bytearray()
CONFIG = {}


def connect(path):
    global _sock
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0")
    _sock = s
    _rx[:] = b""


def _need(n):
    while len(_rx) < n:
        # recv, one syscall: interrupted (EINTR), it has taken nothing; the stream's readinto would loop until its
        # buffer is full and lose what it had read when a Ctrl-C ends it.
        # What is still missing, not 4 KB: a stand-in must not ask the firmware's heap for a 4 KB block per call
        # (after a day of taps, or on a software-SAM board, no such block is free: MemoryError at boot).
        # Received bytes go into _rx in the same statement: the VM raises a pending Ctrl-C at a jump, and an
        # `if not data:` between recv and extend is one; a header lost there left the body read as a header
        # (a garbage length: "MemoryError allocating 4311760 bytes" in CI).
        had = len(_rx)
        _rx.extend(_sock.recv(n - had))
        if len(_rx) == had:
            raise OSError(5, "the host controller closed the connection")


def call(op, payload=b""):
    global _seq
    _seq = (_seq + 1) & 0xFFFFFFFF
    _sock.write(struct.pack(">II", len(op) + len(payload) + 4, _seq) + op + payload)
    while True:
        _need(9)
        n, seq, status = struct.unpack_from(">IIB", _rx)
        _need(n + 4)
        body = bytes(_rx[9:n + 4])
        _rx[:n + 4] = b""  # (this port has no bytearray item deletion)
        if status == 0x4B:  # a Ctrl-C came (tests/vboard/relay.py PendingInterrupt): raised with the stream in step
            raise KeyboardInterrupt
        if seq == _seq:
            if status:  # the host refused: bad arguments, or a bus fault it simulates
                raise OSError(int(body[:4].decode()), body[4:].decode())
            return body


def u64(b):
    return struct.unpack(">Q", b)[0]
