"""The clearing batch (host_tools/clearing.py): real taps on the simulated cards and the software SAM give TACs
that verify with the documented test key; a changed amount, time or TAC does not; each record lands in exactly
one file; the manifest's counts, totals and SHA-256 match the files."""
import csv
import hashlib
import json

import pytest

from host_tools import clearing
from tunion import outcome as O
from host_tools.errors import DepotError
from host_tools.testkeys import TEST_MTK
from sim import keys
from sim.card import make_card
from sim.rig import Rig
from tunion.record import KIND_INTENT, KIND_NAMES
from tunion.segment import SegmentHeader

HDR = SegmentHeader(board_id=b"\x24\x0a\xc4\x00\x00\x01", psam_no=keys.TEST_PSAM_SERIAL, terminal=keys.TEST_TERMINAL,
                    line="B12", vehicle="10086", config_version=3)


def _rows(rig):
    recs = rig.records()
    intents = {r.seq: r for r in recs if r.kind == KIND_INTENT}
    ends = {}
    for r in recs:
        if r.kind != KIND_INTENT:
            ends[r.ref] = r
    return [clearing.row_from_records(HDR, intents[s], ends.get(s)) for s in sorted(intents)]


@pytest.fixture
def paid_rows():
    rig = Rig()
    for i in range(3):
        assert rig.tap(make_card(card_no=keys.TEST_CARD_NO + i, balance=1000)).status == O.PAID
    return _rows(rig)


def test_test_key_copy_is_the_documented_key():
    assert TEST_MTK == keys.MTK


def test_real_taps_tacs_verify_and_tampering_is_caught(paid_rows):
    assert len(paid_rows) == 3
    for r in paid_rows:
        assert r["test_keys"] and r["end"] == "debited_tac"
        assert clearing.tac_check(r) == "ok"
        for field, value in (("amount", r["amount"] + 1), ("ttc", r["ttc"] + 1), ("time", r["time"][:18] + "9+08:00"),
                             ("tac", "%08x" % (int(r["tac"], 16) ^ 1)), ("card_no", str(int(r["card_no"]) + 1))):
            assert clearing.tac_check(dict(r, **{field: value})) == "bad", field


def test_real_keys_are_not_guessed(paid_rows):
    r = dict(paid_rows[0], test_keys=False)
    assert clearing.tac_check(r) == "no_key"  # a PSAM's record: the depot holds no real TAC key
    assert clearing.tac_check(r, {(r["key_version"], r["alg_id"]): TEST_MTK}) == "ok"


def test_each_record_goes_to_exactly_one_file(paid_rows):
    base = dict(paid_rows[0], test_keys=False)
    cases = {
        "payments": {}, "test_keys": {"test_keys": True, "mac2_rejected": True},
        "unresolved": {"end": "unknown", "tac": None}, "no_tac": {"end": "debited_no_tac", "tac": None},
        "mac2_rejected": {"mac2_rejected": True, "mac2_unverified": True}, "mac2_unverified": {"mac2_unverified": True},
        None: {"end": "not_debited"},
    }
    for kind, change in cases.items():
        assert clearing.kind_of(dict(base, **change)) == kind, change


def test_batch_files_and_manifest_agree(paid_rows, tmp_path):
    b = clearing.Batch("B1", day="2026-12-01", depot="D1")
    for r in paid_rows:
        assert b.add(r) == "test_keys"
    real = dict(paid_rows[0], test_keys=False, seq=99)
    assert b.add(real) == "payments"
    bad = dict(paid_rows[1], seq=100, tac="00000000")
    b.add(bad)
    m = b.write(tmp_path)
    assert m["tac"] == {"ok": 3, "bad": 1, "no_key": 1, "no_tac": 0}
    assert m["bad_tacs"] == [[bad["board"], 100]]
    by = {(f["kind"], f["format"]): f for f in m["files"]}
    assert set(k for k, _ in by) == set(clearing.KINDS)
    for f in m["files"]:
        data = (tmp_path / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    t = by[("test_keys", "csv")]
    rows = list(csv.DictReader((tmp_path / t["name"]).open()))
    assert [int(r["seq"]) for r in rows] == sorted([r["seq"] for r in paid_rows] + [100])
    assert t["records"] == 4 and t["amount_total"] == sum(int(r["amount"]) for r in rows)
    assert rows[0]["card_no"] == str(keys.TEST_CARD_NO) and rows[0]["time"].endswith("+08:00")
    lines = (tmp_path / by[("payments", "jsonl")]["name"]).read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [99]
    manifest = json.loads((tmp_path / "B1-manifest.json").read_text())
    assert manifest["boards"][HDR.board_id.hex()]["last_seq"] == 100
    assert not list(tmp_path.glob("*.part"))


def test_bad_template_is_refused_before_writing(tmp_path):
    b = clearing.Batch("B1", day="2026-12-01", depot="D1")
    for t in ("{batch}.{ext}", "{nope}-{kind}.{ext}", "../{kind}.{ext}"):
        with pytest.raises(DepotError):
            b.write(tmp_path / "out", template=t)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
