"""Decision time per tap and denylist reads per lookup, with a 50,000-entry denylist on the filesystem.

    python bench/bench_rules.py [--json]                                # CPython, then the same under MicroPython
    node tests/mp/run.mjs --script bench/bench_rules.py --measure       # the MicroPython half alone

It builds the list file deterministically (400 KB) in /tmp (or the cwd), installs it with
tunion.denylist.install_denylist (write, verify CRC and order, rename), then times tunion.rules.decide on a card
that passes every check (clock, dates, a full denylist binary search, repeat, concession, a transfer fare), a
denylist lookup alone, and decide without a denylist. On MicroPython it also measures the heap per decision.
"""
import gc
import json
import os
import sys
import time

if sys.implementation.name != "micropython":  # CPython from a checkout: tunion, and tools.mprun for the MP half
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _p in (_root, os.path.join(_root, "tests"), os.path.join(_root, "firmware")):
        if _p not in sys.path:
            sys.path.insert(0, _p)

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
MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    def now_us():
        return time.ticks_us()

    def since_us(t0):
        return time.ticks_diff(time.ticks_us(), t0)
else:
    def now_us():
        return time.perf_counter_ns() // 1000

    def since_us(t0):
        return now_us() - t0


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
    data = bytes(pack_header(N, 1, crc32(body) & 0xFFFFFFFF)) + bytes(body)
    body = None
    t0 = now_us()
    install_denylist(data, path)
    return since_us(t0)


class Facts:
    def __init__(self, card_no, card_type, last):
        serial = bytes.fromhex("0" + str(card_no))  # 20 BCD digits: a pad nibble, then the 19-digit number
        self.ef15 = Ef15(b"\x05\x21\x24\x82\xff\xff\xff\xff", 2, 1, serial, 20200101, 20301231)
        self.ef17 = Ef17(b"\x00\x00\x01\x56", b"\x00\x00", b"\x24\x82", 1, card_type)
        self.card_no = self.ef15.card_no
        self.last_ef1e = last
        self.compound = True


def measure():
    path = workdir() + "/bench_denylist.bin"
    install_us = build(path)
    gc.collect()
    cfg = Config.default()
    dl = cfg.denylist = Denylist(path)
    now = secs_from_civil(2026, 12, 1, 8, 0, 0)
    last = Ef1eRecord(0x06, bytes(8), 0x02, 102, 0, 1, 0, 200, 4800, bcd_datetime(now - 600), b"\x24\x82",
                      bytes(8))
    clean = Facts(BASE + 12345 * STEP + 500, 1, last)  # not listed: a full binary search
    listed = Facts(BASE + 31415 * STEP + (31415 * 37) % 100, 1, last)
    state = State()
    assert decide(clean, cfg, state, (now, 0)) == (None, 100)
    assert decide(listed, cfg, state, (now, 0))[0] == "REFUSED_DENYLISTED"

    r0, l0 = dl.reads, dl.lookups
    t0 = now_us()
    for i in range(ROUNDS):
        decide(clean, cfg, state, (now, i * 2000))
    decide_us = since_us(t0) / ROUNDS
    reads_decision = (dl.reads - r0) / (dl.lookups - l0)

    heap = None
    if MICROPYTHON:
        gc.collect()
        a = gc.mem_alloc()
        for i in range(50):
            decide(clean, cfg, state, (now, i * 2000))
        heap = (gc.mem_alloc() - a) // 50

    r0 = dl.reads
    n = ROUNDS // 4
    worst = 0
    t0 = now_us()
    for i in range(n):
        before = dl.reads
        dl.contains(BASE + i * 4 * STEP + 50)  # spread over the list, all absent
        if dl.reads - before > worst:
            worst = dl.reads - before
    lookup_us = since_us(t0) / n
    reads_lookup = (dl.reads - r0) / n

    cfg.denylist = None
    t0 = now_us()
    for i in range(ROUNDS):
        decide(clean, cfg, state, (now, i * 2000))
    plain_us = since_us(t0) / ROUNDS
    dl.close()
    try:
        os.remove(path)
    except OSError:
        pass
    return {
        "interpreter": sys.implementation.name,
        "entries": N,
        "decide_us": round(decide_us, 1),
        "decide_without_denylist_us": round(plain_us, 1),
        "lookup_us": round(lookup_us, 1),
        "reads_per_lookup": round(reads_lookup, 2),
        "reads_per_lookup_max": worst,
        "reads_per_decision": round(reads_decision, 2),
        "install_verify_ms": round(install_us / 1000, 1),
        "heap_bytes_per_decision": heap,
    }


def littlefs_reads():
    """(flash reads, bytes) per lookup on a LittleFS image with MicroPython's ESP32 settings (read 32, prog 32,
    cache 128, 4 KB blocks), counted by littlefs-python's block device: CPython only."""
    import littlefs
    import tunion.denylist as D

    count = [0, 0]

    class Ctx(littlefs.UserContext):
        def read(self, cfg, block, off, size):
            count[0] += 1
            count[1] += size
            return super().read(cfg, block, off, size)

    fs = littlefs.LittleFS(context=Ctx(4096 * 512), block_size=4096, block_count=512, read_size=32,
                           prog_size=32, cache_size=128, lookahead_size=32, block_cycles=100)

    class Shim:
        def stat(self, p):
            return (0, 0, 0, 0, 0, 0, fs.stat(p).size)

        def remove(self, p):
            fs.remove(p)

        def rename(self, a, b):
            fs.rename(a, b)

    saved = D.os
    D.os = Shim()
    D.open = fs.open
    try:
        D.install_denylist(D.encode([BASE + i * STEP for i in range(N)], 1), "denylist.bin")
        dl = D.Denylist("denylist.bin")
        count[0] = count[1] = 0
        n = 200
        for i in range(n):
            dl.contains(BASE + i * 250 * STEP + 50)
        dl.close()
    finally:
        D.os = saved
        del D.open
    return count[0] / n, count[1] / n


def show(r):
    print("%s, denylist of %d entries on the filesystem:" % (r["interpreter"], r["entries"]))
    print("  decision (all checks, denylist lookup, transfer fare)  %8.1f us" % r["decide_us"])
    print("  decision without a denylist                            %8.1f us" % r["decide_without_denylist_us"])
    print("  denylist lookup alone                                  %8.1f us, %.2f reads of 8 bytes (max %d)" % (
        r["lookup_us"], r["reads_per_lookup"], r["reads_per_lookup_max"]))
    print("  install (write 400 KB, verify CRC and order, rename)   %8.1f ms" % r["install_verify_ms"])
    if r.get("littlefs_flash_reads_per_lookup") is not None:
        print("  on LittleFS (ESP32 settings): %.0f flash reads, %.0f bytes per lookup" % (
            r["littlefs_flash_reads_per_lookup"], r["littlefs_flash_bytes_per_lookup"]))
    if r["heap_bytes_per_decision"] is not None:
        print("  heap allocated per decision                            %8d bytes" % r["heap_bytes_per_decision"])


def main():
    if "--measure" in sys.argv:
        print("RESULT " + json.dumps(measure()))
        return
    results = [measure()]
    try:
        results[0]["littlefs_flash_reads_per_lookup"], results[0]["littlefs_flash_bytes_per_lookup"] = littlefs_reads()
    except ImportError:
        pass
    if not MICROPYTHON:
        try:
            from tools.mprun import run_script

            for line in run_script(__file__, ["--measure"]).splitlines():
                if line.startswith("RESULT "):
                    results.append(json.loads(line[7:]))
        except Exception as e:  # no Node: the CPython half still prints
            print("MicroPython run skipped: %s" % e)
    if "--json" in sys.argv:
        print(json.dumps(results))
        return
    for r in results:
        show(r)


if __name__ == "__main__":
    main()
