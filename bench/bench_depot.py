"""Depot figures (issue 9): pull throughput over a 115200-baud link, the time to pull 20,000 records, and the
time to export a day of 3,000 taps.

    PYTHONPATH=.:firmware:tests .venv/bin/python bench/bench_depot.py [--records 20000] [--taps 3000]

Pull: a virtual board (tests/vboard: the firmware on the MicroPython unix port, the real mpremote transport)
whose journal partition was filled beforehand on the host by the firmware's own FlashJournal (intent + completed
pairs, as taps write them), its serial link throttled to 115200 baud (10 bits a byte, both ways:
tests/vboard/relay.py). The board side runs at the unix port's speed, not the ESP32's: on a board, reading and
base64-encoding 4 KB adds a few ms per chunk (depot.md). The share is journal bytes carried per second over
the link's 11,520 bytes per second; base64 alone caps it at 75 %.

Export: 3,000 real taps (strict simulated cards, the software SAM, the purchase core, a flash journal) pulled
into a SQLite file by the real `pull` from a CPython board (tests/depotboard.py), then `export_day` timed.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "firmware", ROOT / "tests"):
    sys.path.insert(0, str(p))

LINK_BYTES_S = 115200 / 10.0


def prefill(board, pairs):
    """Write `pairs` intent+completed pairs into the board's journal partition (flash.bin) before it boots."""
    from sim.nor import NorFlash
    from tunion.flashjournal import FlashJournal
    from tunion.record import KIND_COMPLETED, KIND_INTENT, Record
    from tunion.segment import SegmentHeader

    row = [r for r in board.partitions if r[4] == "journal"][0]
    off, size = row[2], row[3]
    nor = NorFlash(size // 4096, 4096)
    hdr = SegmentHeader(board.unique_id + b"\x00\x00", b"PSAM000001", b"\x99\x99\x00\x00\x00\x01", "B12", "10086", 1)
    j = FlashJournal(nor, hdr)
    j.prepare()
    t = 1796112000
    for k in range(pairs):
        i = Record(KIND_INTENT, card_no=3199990000000000001 + k % 500, amount=200, balance=5000, counter=k & 0xFFFF,
                   ttc=k + 1, time=t + 7 * k, flags=1)
        j.append_intent(i)
        j.append_outcome(i.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04"))
        if k % 64 == 0:
            j.idle(8)
    if not board.flash.exists():
        board.flash.write_bytes(b"\xff" * (4 * 1024 * 1024))
    with open(board.flash, "r+b") as f:
        f.seek(off)
        f.write(nor.image())
    return j.next_seq - 1


def bench_pull(records, tmp):
    import test_vboard_app as tva
    from vboard import Board
    from vboard.chips import attach_pn532, attach_psam
    from tools import manifest
    from tunion.config import DEFAULT
    from host_tools import link
    from host_tools.db import open_db
    from host_tools.pull import pull

    folder = Path(tmp) / "vb"
    folder.mkdir()
    cfg = folder / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    files = list(manifest.board_files("esp32-generic")) + [(cfg, "/config.json")]
    b = Board(folder / "board", files=files, rtc=tva.RTC_AT, heap=tva.APP_HEAP, baud=115200)
    last = prefill(b, records // 2)
    attach_pn532(b)
    attach_psam(b)
    with b:
        b.wait_for(link.READY, 120)
        depot = open_db(str(Path(tmp) / "depot.sqlite"))
        t0 = time.monotonic()
        with link.Board(b.port, timeout=2.0) as lb:
            rep = pull(lb, depot, "bench")
            t_pull = time.monotonic() - t0
            lb.close(restart_app=True)
        depot.close()
    assert rep["stored"] == last, rep
    return rep, t_pull


def bench_export(taps, tmp):
    from test_depot_report import TapBoard  # SimBoard whose header has the software SAM's terminal
    from host_tools.db import open_db
    from host_tools.depotconf import DepotConfig
    from host_tools.export import export_day
    from host_tools.pull import pull
    from sim.card import make_card
    from sim import keys

    b = TapBoard(sectors=220, sector_size=4096)
    cards = [make_card(card_no=keys.TEST_CARD_NO + k, balance=100000) for k in range(600)]
    t0 = time.monotonic()
    for k in range(taps):
        b.rig.tap(cards[k % len(cards)], advance_ms=9000)  # 3,000 taps in 7.5 h
        if k % 32 == 0:
            b.j.idle(8)
    t_taps = time.monotonic() - t0
    depot = open_db(str(Path(tmp) / "export.sqlite"))
    with b:
        pull(b, depot, "bench", chunk=4096)
    t0 = time.monotonic()
    m = export_day(depot, "2026-12-01", str(Path(tmp) / "out"), DepotConfig(name="BENCH"))
    t_export = time.monotonic() - t0
    depot.close()
    n = sum(f["records"] for f in m["files"] if f["format"] == "csv")
    return n, t_export, t_taps, m["tac"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--taps", type=int, default=3000)
    ap.add_argument("--skip-pull", action="store_true")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_pull:
            rep, t = bench_pull(a.records, tmp)
            rate = rep["bytes"] / t
            print("pull over a 115200-baud link (virtual board, unix-port speed on the board side):")
            print("  %d records, %d journal bytes, %d chunks in %.1f s" % (rep["stored"], rep["bytes"], rep["chunks"], t))
            print("  %.0f records/s, %.0f B/s = %.1f %% of the link's %d B/s (target >= 70 %%)" % (
                rep["stored"] / t, rate, 100 * rate / LINK_BYTES_S, LINK_BYTES_S))
        n, t, t_taps, tac = bench_export(a.taps, tmp)
        print("export of one day: %d taps (made in %.1f s), %d rows written in %.2f s; TACs %s" % (
            a.taps, t_taps, n, t, tac))


if __name__ == "__main__":
    main()
