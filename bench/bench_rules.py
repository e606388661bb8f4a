"""Decision time per tap and denylist reads per lookup, with a 50,000-entry denylist on the filesystem.

    python bench/bench_rules.py [--json]                        # CPython
    node tests/mp/run.mjs --script bench/bench_rules.py --json   # MicroPython (WebAssembly)

Runs unchanged on both interpreters: it builds the list file deterministically (400 KB) in /tmp (or the cwd),
installs it with tunion.denylist.install_denylist, then times tunion.rules.decide on cards that pass every check
(the full path: clock, dates, denylist lookup, repeat, concession, fare with a transfer) and on a denylisted card.
"""
import json
import os
import sys
import time

from tunion.cardfiles import Ef15, Ef17, Ef1eRecord
from tunion.clock import secs_from_civil, bcd_datetime
from tunion.compat import crc32
from tunion.config import Config
from tunion.denylist import Denylist, install_denylist, pack_header, put_u64, ENTRY_SIZE
from tunion.rules import State, decide

N = 50000
BASE = 3100000000000000000
STEP = 7919
ROUNDS = 2000

try:
    _ticks_us = time.ticks_us  # MicroPython

    def elapsed_us(t0):
        return time.ticks_diff(time.ticks_us(), t0)
except AttributeError:  # CPython
    def _ticks_us():
        return time.perf_counter_ns() // 1000

    def elapsed_us(t0):
        return _ticks_us() - t0


def workdir():
    for d in ("/tmp", "."):
        try:
            os.stat(d)
            return d
        except OSError:
            pass
    return "."


def build(path):
    body = bytearray(N * ENTRY_SIZE)
    for i in range(N):
        put_u64(body, i * ENTRY_SIZE, BASE + i * STEP + (i * 37) % 100)
    t0 = _ticks_us()
    install_denylist(bytes(pack_header(N, 1, crc32(body) & 0xFFFFFFFF)) + bytes(body), path)
    return elapsed_us(t0)


class Facts:
    def __init__(self, serial, card_type, last):
        self.ef15 = Ef15(b"\x05\x21\x24\x82\xff\xff\xff\xff", 2, 1, serial, 20200101, 20301231)
        self.ef17 = Ef17(b"\x00\x00\x01\x56", b"\x00\x00", b"\x24\x82", 1, card_type)
        self.card_no = self.ef15.card_no
        self.last_ef1e = last
        self.compound = True


def serial_of(n):
    digits = "0" + str(n)  # 20 BCD digits: a pad nibble then the 19-digit card number
    return bytes.fromhex(digits)


def main():
    as_json = "--json" in sys.argv
    path = workdir() + "/bench_denylist.bin"
    install_us = build(path)
    cfg = Config.default()
    cfg.denylist = Denylist(path)
    now = secs_from_civil(2026, 12, 1, 8, 0, 0)
    last = Ef1eRecord(0x06, bytes(8), 0x02, 102, 0, 1, 0, 200, 4800, bcd_datetime(now - 600), b"\x24\x82",
                      bytes(8))
    clean = Facts(serial_of(BASE + 12345 * STEP + 500), 1, last)  # not listed: a full binary search
    listed = Facts(serial_of(BASE + 31415 * STEP + (31415 * 37) % 100), 1, last)
    state = State()
    assert decide(clean, cfg, state, (now, 0)) == (None, 100)
    assert decide(listed, cfg, state, (now, 0))[0] == "REFUSED_DENYLISTED"

    dl = cfg.denylist
    r0 = dl.reads
    l0 = dl.lookups
    t0 = _ticks_us()
    for i in range(ROUNDS):
        decide(clean, cfg, state, (now, i * 2000))
    pay_us = elapsed_us(t0) / ROUNDS
    reads_clean = (dl.reads - r0) / (dl.lookups - l0)

    r0 = dl.reads
    t0 = _ticks_us()
    for i in range(ROUNDS // 4):
        dl.contains(BASE + i * 4 * STEP + 50)  # spread over the list, all absent
    lookup_us = elapsed_us(t0) / (ROUNDS // 4)
    reads_avg = (dl.reads - r0) / (ROUNDS // 4)

    cfg.denylist = None
    t0 = _ticks_us()
    for i in range(ROUNDS):
        decide(clean, cfg, state, (now, i * 2000))
    nodl_us = elapsed_us(t0) / ROUNDS
    dl.close()
    try:
        os.remove(path)
    except OSError:
        pass

    impl = sys.implementation.name
    out = {
        "interpreter": impl,
        "entries": N,
        "decide_us": round(pay_us, 1),
        "decide_without_denylist_us": round(nodl_us, 1),
        "lookup_us": round(lookup_us, 1),
        "reads_per_lookup": round(reads_avg, 2),
        "reads_per_decision": round(reads_clean, 2),
        "install_verify_ms": round(install_us / 1000, 1),
    }
    if as_json:
        print(json.dumps(out))
    else:
        print("%s, denylist %d entries:" % (impl, N))
        print("  decision (all checks, denylist lookup, transfer fare): %.1f us" % pay_us)
        print("  decision without a denylist:                          %.1f us" % nodl_us)
        print("  denylist lookup: %.1f us, %.2f reads of 8 bytes" % (lookup_us, reads_avg))
        print("  install (write, verify CRC and order, rename): %.1f ms" % (install_us / 1000))


main()
