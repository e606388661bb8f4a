"""Microseconds per DES block, per key schedule, and per MAC1 chain (card_key + session_key + mac1).

    python bench/bench_crypto.py [--json]                        # CPython
    node tests/mp/run.mjs --script bench/bench_crypto.py --json   # MicroPython (WebAssembly)
    mpremote run bench/bench_crypto.py                            # a board with tunion/ in /lib

chain_cold empties crypto's caches first (nothing scheduled yet); chain_warm is the steady state of a software
SAM: the master key's schedule and the issuer-level key are cached, every card's own keys are new.
"""
import sys
import time

try:
    import os
except ImportError:  # a MicroPython build without os: only the CPython side needs it
    os = None

try:
    import tunion  # noqa: F401
except ImportError:  # CPython run from a checkout: python bench/bench_crypto.py
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware"))

from tunion import crypto
from tunion.des import Des, Tdes

try:
    _ticks_us = time.ticks_us  # MicroPython

    def elapsed_us(t0):
        return time.ticks_diff(time.ticks_us(), t0)
except AttributeError:  # CPython

    def _ticks_us():
        return time.perf_counter_ns() // 1000

    def elapsed_us(t0):
        return _ticks_us() - t0


H = bytes.fromhex
MPK = H("404142434445464748494A4B4C4D4E4F")
ISSUER = H("0101100FFFFFFFFF")
AMOUNT, TTYPE, TERM, DT = H("000001F4"), H("09"), H("100000000123"), H("20261125081500")


def per_call_us(fn, n, repeats=3):
    # Best of a few runs: the machine running the benchmark is usually doing other work too.
    best = None
    for _ in range(repeats):
        t0 = _ticks_us()
        for i in range(n):
            fn(i)
        us = elapsed_us(t0) / n
        if best is None or us < best:
            best = us
    return best


def card_sn(i):
    return bytes((0x70, 0x01, 0x01, 0x70, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255))


def chain(i):
    dpk = crypto.card_key(MPK, ISSUER, card_sn(i))
    sespk = crypto.session_key(dpk, H("11223344"), H("0000"), H("00000001"))
    return crypto.mac1(sespk, AMOUNT, TTYPE, TERM, DT)


def chain_cold(i):
    crypto.forget_keys()
    return chain(i)


def run(n):
    d = Des(H("133457799BBCDFF1"))
    t = Tdes(MPK)
    blk = H("0123456789ABCDEF")
    sespk = H("003238ABC57659DD")
    results = (
        ("des_block_us", per_call_us(lambda i: d.encrypt(blk), n)),
        ("des_decrypt_block_us", per_call_us(lambda i: d.decrypt(blk), n)),
        ("tdes_block_us", per_call_us(lambda i: t.encrypt(blk), n)),
        ("des_schedule_us", per_call_us(lambda i: Des(card_sn(i)), n // 4)),
        ("tdes_schedule_us", per_call_us(lambda i: Tdes(card_sn(i) + ISSUER), n // 4)),
        ("mac1_us", per_call_us(lambda i: crypto.mac1(sespk, AMOUNT, TTYPE, TERM, DT), n // 4)),
        ("chain_cold_us", per_call_us(chain_cold, n // 10)),
        ("chain_warm_us", per_call_us(chain, n // 10)),
    )
    return results


def main():
    impl = sys.implementation.name
    n = 2000 if impl == "micropython" else 20000
    run(n // 20)  # warm up (the WebAssembly engine compiles hot code in tiers)
    results = run(n)
    if "--json" in sys.argv:
        print('{"interpreter": "%s", %s}' % (impl, ", ".join(['"%s": %.1f' % (k, v) for k, v in results])))
    else:
        print("crypto timings on " + impl)
        for k, v in results:
            print("  %-22s %9.1f" % (k, v))
    if impl != "micropython" and "--here" not in sys.argv:
        try:  # the same benchmark under MicroPython (make bench), when the runner is there
            sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            from tools.mprun import run_script

            print(run_script(os.path.abspath(__file__), [a for a in sys.argv[1:] if a != "--here"]).rstrip())
        except Exception as e:
            print("MicroPython run skipped: %s" % e)


main()
