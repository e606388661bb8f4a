"""The clearing batch of one day: payments sorted into files by kind, each TAC checked where its key is known,
written as CSV and JSON lines, and a manifest that lets the clearing centre check what it got.

    rows = [payment_row(...), ...]          # one dict per payment (PAYMENT_FIELDS), from the depot database
    batch = Batch("DEPOT1-20261202-01", day="2026-12-02", depot="DEPOT1")
    for r in rows: batch.add(r)
    manifest = batch.write("/tmp/out", template="{batch}-{kind}.{ext}")

Files (validator.md section 4, depot.md "Clearing files"): `payments` (debited with TAC: what is cleared for
money), and apart from it, so that nothing doubtful is cleared by accident: `unresolved` (the card may or may not
have been debited), `no_tac` (debited, proven by the card's EF18 log but without a TAC), `mac2_rejected` (the
PSAM refused MAC2 but the card was debited), `mac2_unverified` (the PSAM session was gone), `test_keys` (signed by
the software SAM's test keys: never money), and `settlements` (a later pull settled an earlier unresolved intent;
it goes into the batch of the day it was pulled and cites the original (board, seq)). A record goes to exactly
one file, the first of that order that fits. Cancelled and not-debited intents moved no money: not exported.

Every file is written to a temporary name and renamed, the manifest last, so a cut export leaves no file that
looks complete. The manifest holds the batch ID, per file its name, kind, format, record count, amount total and
SHA-256, and per board its first and last sequence number.
"""
import csv
import hashlib
import io
import json
import os
from datetime import datetime, timedelta

from host_tools.depotconf import DEFAULT_TEMPLATE
from host_tools.errors import DepotError
from host_tools.testkeys import TEST_TAC_KEYS
from tunion import crypto

# The fields of validator.md section 4, per payment; the segment header's fields (board, PSAM, terminal, line,
# vehicle, versions) are repeated on every row because clearing files are read one row at a time.
PAYMENT_FIELDS = (
    "board", "seq", "outcome_seq", "card_no", "issuer", "city", "card_type", "counter", "amount", "balance_after",
    "ttype", "ttc", "time", "tac", "key_version", "alg_id", "recovered", "mac2_unverified", "mac2_rejected",
    "test_keys", "end", "psam", "terminal", "line", "vehicle", "config_version", "firmware", "tac_check",
)
SETTLEMENT_FIELDS = ("board", "seq", "kind", "end", "settles_board", "settles_seq") + tuple(
    f for f in PAYMENT_FIELDS if f not in ("board", "seq", "outcome_seq", "end"))
KINDS = ("test_keys", "unresolved", "no_tac", "mac2_rejected", "mac2_unverified", "payments", "settlements")
CST = "+08:00"
_EPOCH = datetime(1970, 1, 1)


def cst_iso(secs):
    """Board seconds (CST wall clock since 1970, validator.md section 2) as ISO 8601 with the +08:00 offset."""
    return (_EPOCH + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S") + CST


def sn8_of(card_no):
    """The card-level diversification factor from the card number: EF15 serial bytes 12..19, i.e. the last 16 of
    its 20 BCD digits (tunion-protocol.md section 7.7; docs/test-keys.md)."""
    digits = "%020d" % int(card_no)
    return bytes.fromhex(digits[4:])


def row_from_records(header, intent, outcome, board=None):
    """A payment row (PAYMENT_FIELDS) from a segment header, an intent and the outcome or settlement that ended
    it (tunion.record.Record objects, as the depot decodes them); `end` from the outcome's kind."""
    from tunion import record as R

    h = header.fields()
    end = R.end_of(outcome.kind) if outcome is not None else "unknown"
    if outcome is not None and outcome.kind == R.KIND_CANCELLED:
        end = "cancelled"
    flags = intent.flags | (outcome.flags if outcome is not None else 0)
    debited = end in ("debited_tac", "debited_no_tac")
    return {
        "board": board if board is not None else h["board_id"].hex(), "seq": intent.seq,
        "outcome_seq": outcome.seq if outcome is not None else None, "card_no": str(intent.card_no),
        "issuer": intent.issuer.hex(), "city": intent.issuer[2:4].hex(), "card_type": intent.card_type,
        "counter": intent.counter, "amount": intent.amount,
        "balance_after": outcome.balance if outcome is not None and debited else None,
        "ttype": "%02x" % intent.ttype, "ttc": intent.ttc, "time": cst_iso(intent.time),
        "tac": outcome.tac.hex() if outcome is not None and end == "debited_tac" else None,
        "key_version": intent.key_version, "alg_id": intent.alg_id,
        "recovered": bool(flags & R.FLAG_RECOVERED), "mac2_unverified": bool(flags & R.FLAG_MAC2_UNVERIFIED),
        "mac2_rejected": bool(flags & R.FLAG_MAC2_BAD), "test_keys": bool(flags & R.FLAG_TEST_KEYS), "end": end,
        "psam": h["psam_no"].hex(), "terminal": h["terminal"].hex(), "line": h["line"], "vehicle": h["vehicle"],
        "config_version": h["config_version"], "firmware": h["fw_version"],
    }


def tac_check(row, keys=None):
    """'ok' or 'bad' when a key for the row's (key version, algorithm) is known, else 'no_key'. Test-key records
    are checked with the documented test key only; other records with `keys` (none by default: real TAC keys stay
    in the clearing centre)."""
    if row.get("end") != "debited_tac" or not row.get("tac"):
        return "no_tac"
    table = TEST_TAC_KEYS if row.get("test_keys") else (keys or {})
    mk = table.get((int(row["key_version"]), int(row["alg_id"])))
    if mk is None:
        return "no_key"
    try:
        dtk = crypto.card_key(mk, bytes.fromhex(row["issuer"]), sn8_of(row["card_no"]))
        want = crypto.tac(dtk, int(row["amount"]).to_bytes(4, "big"), bytes((int(row["ttype"], 16),)),
                          bytes.fromhex(row["terminal"]), int(row["ttc"]).to_bytes(4, "big"),
                          _bcd_time(row["time"]))
    except (ValueError, KeyError) as e:
        raise DepotError("board %s seq %s: cannot check its TAC: %s" % (row.get("board"), row.get("seq"), e))
    return "ok" if want.hex() == row["tac"].lower() else "bad"


def _bcd_time(iso):
    d = datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")
    s = d.strftime("%Y%m%d%H%M%S")
    return bytes.fromhex(s)


def kind_of(row):
    """Which file a payment goes to (the first of KINDS that fits), or None when it moved no money."""
    end = row.get("end")
    if end in ("not_debited", "cancelled"):
        return None
    if row.get("test_keys"):
        return "test_keys"
    if end == "unknown":
        return "unresolved"
    if end == "debited_no_tac":
        return "no_tac"
    if row.get("mac2_rejected"):
        return "mac2_rejected"
    if row.get("mac2_unverified"):
        return "mac2_unverified"
    return "payments"


class Batch:
    """One day's clearing batch, filled row by row and written once."""

    def __init__(self, batch_id, day, depot, keys=None):
        self.batch_id = batch_id
        self.day = day
        self.depot = depot
        self.keys = keys
        self.rows = {k: [] for k in KINDS}
        self.tac = {"ok": 0, "bad": 0, "no_key": 0, "no_tac": 0}
        self.bad_tacs = []  # (board, seq) of every TAC that failed its check

    def add(self, row):
        """Sort one payment (PAYMENT_FIELDS) into its file, its TAC checked; returns the kind or None."""
        kind = kind_of(row)
        if kind is None:
            return None
        row = dict(row)
        row["tac_check"] = tac_check(row, self.keys)
        self.tac[row["tac_check"]] += 1
        if row["tac_check"] == "bad":
            self.bad_tacs.append((row["board"], row["seq"]))
        self.rows[kind].append(row)
        return kind

    def add_settlement(self, row):
        """A settlement pulled on this batch's day (SETTLEMENT_FIELDS), citing the intent it settles."""
        row = dict(row)
        row["tac_check"] = tac_check(row, self.keys)
        self.tac[row["tac_check"]] += 1
        if row["tac_check"] == "bad":
            self.bad_tacs.append((row["board"], row["seq"]))
        self.rows["settlements"].append(row)

    def write(self, folder, template=DEFAULT_TEMPLATE, formats=("csv", "jsonl")):
        """Write every file (empty kinds too: an empty file says 'none', a missing one says nothing) and the
        manifest; returns the manifest as a dict."""
        os.makedirs(folder, exist_ok=True)
        files = []
        boards = {}
        for kind in KINDS:
            rows = sorted(self.rows[kind], key=lambda r: (r["board"], r["seq"]))
            fields = SETTLEMENT_FIELDS if kind == "settlements" else PAYMENT_FIELDS
            for r in rows:
                b = boards.setdefault(r["board"], {"first_seq": r["seq"], "last_seq": r["seq"], "records": 0})
                b["first_seq"] = min(b["first_seq"], r["seq"])
                b["last_seq"] = max(b["last_seq"], r["seq"])
                b["records"] += 1
            for ext in formats:
                name = self._name(template, kind, ext)
                data = _encode(rows, fields, ext)
                _write_atomic(os.path.join(folder, name), data)
                files.append({"name": name, "kind": kind, "format": ext, "records": len(rows),
                              "amount_total": sum(int(r["amount"]) for r in rows),
                              "sha256": hashlib.sha256(data).hexdigest()})
        manifest = {"batch_id": self.batch_id, "day": self.day, "depot": self.depot, "timezone": CST,
                    "files": files, "boards": boards, "tac": dict(self.tac),
                    "bad_tacs": [list(x) for x in self.bad_tacs]}
        text = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
        _write_atomic(os.path.join(folder, self._name(template, "manifest", "json")), text)
        return manifest

    def _name(self, template, kind, ext):
        try:
            name = template.format(depot=self.depot, day=self.day.replace("-", ""), batch=self.batch_id, kind=kind,
                                   ext=ext)
        except (KeyError, IndexError, ValueError) as e:
            raise DepotError("bad export file name template %r: %s (fields: depot, day, batch, kind, ext)"
                             % (template, e), code=2)
        if "{kind}" not in template and kind != "manifest" or os.sep in name or name in ("", ".", ".."):
            raise DepotError("export file name template %r must contain {kind} and no %r" % (template, os.sep),
                             code=2)
        return name


def _encode(rows, fields, ext):
    if ext == "csv":
        s = io.StringIO()
        w = csv.DictWriter(s, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(r.get(k)) for k in fields})
        return s.getvalue().encode("utf-8")
    if ext == "jsonl":
        return "".join(json.dumps({k: r.get(k) for k in fields}, ensure_ascii=False) + "\n" for r in rows).encode()
    raise DepotError("unknown export format %r (csv, jsonl)" % ext, code=2)


def _csv_value(v):
    if v is True:
        return "1"
    if v is False:
        return "0"
    return "" if v is None else v


def _write_atomic(path, data):
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
