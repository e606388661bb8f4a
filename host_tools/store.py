"""Store one chunk of raw journal bytes (as app.service.records sends them) in the depot database, whole or not.

    cur = Cursor(board_id="240ac4112233", seq=depot.covered("240ac4112233"))
    res = store_chunk(depot, cur, raw, next_seq=r["next"], pull_id=7)   # one transaction
    cur = res.cursor                                  # the new position, valid once store_chunk returned
    res.stored, res.duplicates, res.faults            # records new to the database, already there, fault rows

The chunk is segment blocks back to back (tunion.segment.parse_raw): a 64-byte header (stored, or a stand-in the
board made for a damaged one), then the segment's bytes as stored: whole records and the damaged or torn
stretches between them. What is checked and what becomes a fault row (docs/journal.md "Power cuts", "Faults"):
- every record's CRC (parse_raw only accepts valid records); bytes that are no valid record are a `crc` fault
  holding the bytes and standing for the seq numbers missing around them; all zeros is a tombstone, a write the
  board cut short and zeroed: fault `torn`, harmless (no money moved), and the number it skipped is not a gap;
- sequence continuity from the cursor (what the database already accounts for): numbers that never arrive with
  no bytes in their place are a `gap` fault (a lost sector, a flash wiped under the journal);
- segment headers: a stand-in (the board's header was damaged: the records' line, vehicle and terminal are a
  guess), a header naming another board, or a first seq above its records: a `header` fault.
A fault row's identity is (board, kind, seq of the record before it, SHA-256 of its bytes), so a chunk sent again
after a cut stores no fault twice, as (board, seq) does for records.
"""
import hashlib

from sqlalchemy import func, update

from tunion.record import KIND_INTENT, KIND_NAMES, FLAG_ABANDONED, FLAG_MAC2_BAD, FLAG_MAC2_UNVERIFIED
from tunion.record import FLAG_RECOVERED, FLAG_TEST_KEYS, END_DEBITED_TAC, end_of
from tunion.segment import HEADER_SIZE, parse_raw

from host_tools.db import cst, utcnow
from host_tools.errors import DepotError

DAMAGE = ("crc", "gap", "header")  # fault kinds that are damage (a non-zero exit); `torn` is a note


class Cursor:
    """Where a pull stands: `seq` is the highest sequence number the database accounts for on this board (records
    and fault rows), so the next record expected is seq + 1."""

    def __init__(self, board_id, seq):
        self.board_id = board_id
        self.seq = seq

    def __repr__(self):
        return "Cursor(%s, %d)" % (self.board_id, self.seq)


class ChunkResult:
    def __init__(self, cursor, stored, duplicates, faults, first, last):
        self.cursor = cursor
        self.stored = stored  # seqs inserted
        self.duplicates = duplicates  # records the database already held
        self.faults = faults  # dicts of the fault rows inserted
        self.first = first  # lowest and highest record seq in the chunk (None when it held none)
        self.last = last


def _hex(b):
    return bytes(b).hex() if isinstance(b, (bytes, bytearray)) else str(b)


def _text(v):
    return v if isinstance(v, str) else _hex(v)  # a header text field that is not UTF-8 stays as hex


def _board_matches(header_id, board_id):
    """The header's 8-byte board ID is machine.unique_id() zero-padded (segment.py); status gives it as hex."""
    return header_id.hex() == (board_id.lower() + "0" * 16)[:16]


def record_row(board_id, rec, raw, hdr, pull_id):
    """The records-table row of one decoded record under its segment header fields."""
    f = rec.flags
    row = {
        "board_id": board_id, "seq": rec.seq, "kind": rec.kind, "kind_name": KIND_NAMES[rec.kind],
        "version": rec.version, "flags": f, "recovered": bool(f & FLAG_RECOVERED),
        "mac2_unverified": bool(f & FLAG_MAC2_UNVERIFIED), "mac2_bad": bool(f & FLAG_MAC2_BAD),
        "test_keys": bool(f & FLAG_TEST_KEYS), "abandoned": bool(f & FLAG_ABANDONED),
        "card_no": None, "issuer": None, "card_type": None, "key_version": None, "alg_id": None, "counter": None,
        "amount": None, "balance_before": None, "ttc": None, "ttype": None, "time_s": None, "time_cst": None,
        "ref_seq": None, "balance_after": None, "tac": None, "end_state": None,
        "segno": hdr["segno"] or None, "header_standin": bool(hdr["standin"]), "psam_no": _hex(hdr["psam_no"]),
        "terminal": _hex(hdr["terminal"]), "line": _text(hdr["line"]), "vehicle": _text(hdr["vehicle"]),
        "config_version": hdr["config_version"], "fw_version": hdr["fw_version"], "raw": bytes(raw),
        "pull_id": pull_id,
    }
    if rec.kind == KIND_INTENT:
        row.update(card_no=str(rec.card_no), issuer=rec.issuer.hex(), card_type=rec.card_type,
                   key_version=rec.key_version, alg_id=rec.alg_id, counter=rec.counter, amount=rec.amount,
                   balance_before=rec.balance, ttc=rec.ttc, ttype=rec.ttype, time_s=rec.time, time_cst=cst(rec.time))
    else:
        end = end_of(rec.kind)
        row.update(ref_seq=rec.ref, balance_after=rec.balance, end_state=end,
                   tac=rec.tac.hex() if end == END_DEBITED_TAC else None)
    return row


def items(raw):
    """parse_raw's blocks as one ordered walk: ("header", fields, header bytes), ("rec", fields, Record, bytes),
    ("bad", fields, bytes). parse_raw keeps records and damaged stretches apart; they lie back to back after each
    header, so their offsets put them back in order (a stretch starts where parse_raw says it does)."""
    out = []
    o = 0
    for f, recs, bad in parse_raw(raw):
        out.append(("header", f, bytes(raw[o : o + HEADER_SIZE])))
        o += HEADER_SIZE
        ri = bi = 0
        while ri < len(recs) or bi < len(bad):
            if bi < len(bad) and bad[bi][0] == o:
                out.append(("bad", f, bad[bi][1]))
                o += len(bad[bi][1])
                bi += 1
            elif ri < len(recs):
                r = recs[ri]
                out.append(("rec", f, r, bytes(raw[o : o + r.size])))
                o += r.size
                ri += 1
            else:
                raise DepotError("chunk layout not understood at byte %d (parse_raw disagrees)" % o)
    if o != len(raw):
        raise DepotError("chunk layout not understood: %d of %d bytes walked" % (o, len(raw)))
    return out


class _Faults:
    def __init__(self, board_id, pull_id):
        self.board_id = board_id
        self.pull_id = pull_id
        self.rows = []
        self.when = utcnow()

    def add(self, kind, after, first, last, raw, detail, segno=None, key=None):
        """`key`: what tells apart two faults of one kind after one seq when there are no bytes (headers)."""
        raw = bytes(raw) if raw else None
        ident = raw if raw else (key.encode() if key else b"")
        if first is not None and last is not None and last < first:
            first = last = None
        self.rows.append({
            "board_id": self.board_id, "kind": kind, "after_seq": after, "first_seq": first, "last_seq": last,
            "digest": hashlib.sha256(ident).hexdigest() if ident else "", "raw": raw, "length": len(raw) if raw else 0,
            "segno": segno or None, "detail": detail, "found_utc": self.when, "pull_id": self.pull_id,
        })


def _span(first, last):
    if first > last:
        return "no seq number"
    return "seq %d" % first if first == last else "seq %d..%d" % (first, last)


def _missing(faults, pending, after, first, last):
    """Account for seq numbers first..last that did not arrive: the damaged stretch(es) before the record that
    ends them stand for them, or else they are a gap."""
    if pending:
        for k, (f, b) in enumerate(pending):
            a, z = (first, last) if k == 0 else (last + 1, last)  # the first stretch takes the numbers
            if not any(b):
                faults.add("torn", after, a, z, b, "tombstone of %d bytes (a write cut short, zeroed): %s skipped"
                           % (len(b), _span(a, z)), f["segno"])
            else:
                faults.add("crc", after, a, z, b, "%d damaged bytes (no valid record) after seq %d: %s lost"
                           % (len(b), after, _span(a, z)), f["segno"])
        del pending[:]
    elif first <= last:
        faults.add("gap", after, first, last, None, "sequence gap after seq %d: %s never arrived (no bytes left "
                   "on the board)" % (after, _span(first, last)))


def check_chunk(cursor, raw, next_seq, pull_id=0):
    """(record rows, fault rows, new cursor seq) for one chunk, without touching the database."""
    bid = cursor.board_id
    faults = _Faults(bid, pull_id)
    rows = []
    p = cursor.seq  # highest seq accounted for
    pending = []  # damaged stretches since the last record
    low = False
    for it in items(raw):
        kind, f = it[0], it[1]
        if kind == "header":
            low = True  # check the first record of the block against the header's first seq
            if f["standin"]:
                faults.add("header", f["first_seq"] - 1, None, None, None, "segment header from seq %d damaged on "
                           "the board: its records' line, vehicle and terminal are the board's current ones"
                           % f["first_seq"], key="standin")
            if not _board_matches(f["board_id"], bid):
                faults.add("header", f["first_seq"] - 1, None, None, it[2], "segment %d names board %s, not %s"
                           % (f["segno"], f["board_id"].hex(), bid), f["segno"])
        elif kind == "bad":
            pending.append((f, it[2]))
        else:
            rec, b = it[2], it[3]
            if low and rec.seq < f["first_seq"]:
                faults.add("header", f["first_seq"] - 1, None, None, None, "segment %d starts at seq %d but holds "
                           "seq %d" % (f["segno"], f["first_seq"], rec.seq), f["segno"], key="first_seq")
            low = False
            if rec.seq > p + 1 or pending:
                if rec.seq > p:
                    _missing(faults, pending, p, p + 1, rec.seq - 1)
                else:
                    _missing(faults, pending, rec.seq - 1, rec.seq, rec.seq - 1)  # bytes beside a resent record
            rows.append(record_row(bid, rec, b, f, pull_id))
            p = max(p, rec.seq)
    # The numbers between the last record and the board's `next` (the first seq not sent, or the board's next_seq
    # at the end) belong to this chunk: no later chunk will send anything below `next`.
    if next_seq - 1 > p or pending:
        _missing(faults, pending, p, p + 1, next_seq - 1)
        p = max(p, next_seq - 1)
    return rows, faults.rows, p


def store_chunk(depot, cursor, raw, next_seq, pull_id):
    """Check and store one chunk in one transaction: records (ON CONFLICT DO NOTHING), fault rows, and the pull's
    counters. Returns a ChunkResult whose cursor is valid only because the transaction committed."""
    rows, frows, p = check_chunk(cursor, raw, next_seq, pull_id)
    t = depot.t
    with depot.write() as conn:
        stored = depot.insert_ignore(conn, t.records, rows, returning=t.records.c.seq)
        new_faults = []
        if frows:
            c = t.faults.c
            ids = set(depot.insert_ignore(conn, t.faults, frows, returning=(c.kind, c.after_seq, c.digest)))
            new_faults = [r for r in frows if (r["kind"], r["after_seq"], r["digest"]) in ids]
        first = min((r["seq"] for r in rows), default=None)
        last = max((r["seq"] for r in rows), default=None)
        conn.execute(update(t.pulls).where(t.pulls.c.pull_id == pull_id).values(
            chunks=t.pulls.c.chunks + 1, bytes=t.pulls.c.bytes + len(raw),
            records=t.pulls.c.records + len(stored), duplicates=t.pulls.c.duplicates + len(rows) - len(stored),
            faults=t.pulls.c.faults + len(new_faults),
            first_seq=func.coalesce(t.pulls.c.first_seq, first) if first is not None else t.pulls.c.first_seq,
            last_seq=last if last is not None else t.pulls.c.last_seq))
    return ChunkResult(Cursor(cursor.board_id, p), stored, len(rows) - len(stored), new_faults, first, last)
