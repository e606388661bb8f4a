"""The service entry points the depot calls over the raw REPL: each returns one JSON-able value or one error form.

    import app.service as s
    s.status()                       # {"ok": True, "firmware": "0.1.0", "records_waiting": 12, ...}
    s.records(1, 4096)               # {"ok": True, "chunks": [{"b64", "crc", "len"}, ...], "next": 41, "end": True}
    s.ack(40); s.set_clock(1796112000); s.install("config", "/stage/config.json")

An error is {"ok": False, "error": "<kind>", "detail": "..."}; nothing here raises (the depot's one board module
reads these forms). The app registers the running Validator with `attach()` at boot; the depot interrupts the
loop between taps (Ctrl-C is held off during a tap), so a service call never runs while a tap is in progress.
"""
import binascii

from tunion.compat import const, crc32
from tunion.config import ConfigError, read_config
from tunion.purchase import resolve_open_intent
from tunion.version import FIRMWARE_VERSION

_CHUNK_MAX = const(4096)  # depot.md: at most 4 KB of journal bytes per exec
# ... sent as base64 pieces of this many bytes, each with its CRC: a 4 KB chunk's 5.5 KB of base64 in one string
# needs a contiguous block a board's fragmented heap may not have after a day of taps (MemoryError seen on the
# virtual board at tap 90); pieces of 1,020 bytes (a multiple of 3: no padding inside) need 1.4 KB each.
_PIECE = const(1020)

_V = None  # the running app.validator.Validator
_CTX = {}  # what boot knows: board name and id, config path, denylist path, reset cause, error log, header maker
# One contiguous block main.py takes before anything else and drops when the depot's Ctrl-C ends the loop, before
# the REPL compiles the depot's first command: loading the app and a day of taps leave the free heap in holes
# smaller than the compiler's next qstr pool or parse chunk (the virtual board: 69 KB free, the largest hole
# 600 B, "MemoryError allocating 1280 bytes" compiling the depot's second command), and no depot could get in.
_RESERVE = None


def attach(validator, **ctx):
    """Boot registers the validator and its context (board, board_id, config_path, denylist_path, keys_path,
    reset_cause, log, set_time, new_header, reload)."""
    global _V
    _V = validator
    _CTX.clear()
    for k in ctx:
        _CTX[k] = ctx[k]


def reserve(block):
    """Boot: keep `block` (a bytearray main.py took first) for the depot's session, until `release()`."""
    global _RESERVE
    _RESERVE = block


def release():
    """The loop was interrupted (the depot's Ctrl-C, main.py): free the reserved block for the depot's commands."""
    global _RESERVE
    _RESERVE = None


def _err(kind, detail):
    return {"ok": False, "error": kind, "detail": str(detail)}


def _need():
    if _V is None:
        return _err("not_booted", "the app has not booted on this board")
    return None


def _acked(j):
    """The journal's acknowledgement floor (the depot's pull starts after it: records at or below are freed)."""
    a = getattr(j, "ack", None)
    return a if a is not None else getattr(j, "_ack", None)


def status():
    """Versions, board, clock, records waiting, free flash, counters, faults, errors, unresolved intents."""
    e = _need()
    if e:
        return e
    v = _V
    j = v.journal
    used, total = j.usage()
    unresolved = []
    for u in j.unresolved():
        i = u.intent
        unresolved.append({"seq": i.seq, "card": str(i.card_no), "amount": i.amount, "time": i.time,
                           "rejected": u.rejected, "terminal": binascii.hexlify(u.terminal).decode()})
    no_tac = {}
    counts = j.no_tac_counts()
    for k in counts:
        no_tac[str(k)] = counts[k]
    now = v.clock.now()
    log = _CTX.get("log")
    dl = v.config.denylist if v.config is not None else None
    fs = _fs_space()
    st = v.stats()
    return {
        "ok": True,
        "firmware": FIRMWARE_VERSION,
        "config_version": v.config.version if v.config is not None else None,
        "board": _CTX.get("board"),
        "board_id": _CTX.get("board_id"),
        "clock": now[0] if v.clock.valid else None,
        "clock_valid": bool(v.clock.valid),
        "records_waiting": j.pending(),
        "next_seq": j.next_seq,
        "acknowledged": _acked(j),
        "flash_used": used,
        "flash_total": total,
        "refusals": j.refusals(),
        "faults": [list(f) for f in j.faults],
        "errors": [list(x) for x in log.entries()] if log is not None else [],
        "errors_total": log.total if log is not None else 0,
        "unresolved": unresolved,
        "no_tac": no_tac,
        "open_intent": j.open_intent().seq if j.open_intent() is not None else None,
        "reset_cause": _CTX.get("reset_cause"),
        "out_of_service": st["out_of_service"],
        "oos_ms": st["oos_ms"],
        "taps": st["counts"],
        "test_keys": bool(v.sam is not None and v.sam.test_keys),
        "dev_board": bool(_CTX.get("dev_board")),
        "denylist_version": dl.list_version if dl is not None else None,
        "denylist_entries": dl.count if dl is not None else None,
        "fs_free": fs[0],
        "fs_total": fs[1],
        # the depot's flash refuses while an unresolved intent is younger than this (issue 9 "flash")
        "recovery_window_s": v.config.recovery_window_s if v.config is not None else None,
    }


def _fs_space():
    """(free, total) bytes of the vfs, where staged files and the denylist go; (None, None) where unknown."""
    try:
        import os

        f = os.statvfs("/")
        return f[0] * f[3], f[0] * f[2]
    except (OSError, AttributeError):
        return None, None


def _denylist_path():
    """Where the configuration says the denylist is (boot.read_config opens the same path); None: no list."""
    c = _V.config
    name = c.denylist_file if c is not None else _CTX.get("denylist_path", "/denylist.bin")
    if not name:
        return None
    return name if name[0] == "/" else "/" + name


def records(seq, max_bytes=_CHUNK_MAX):
    """Journal bytes from `seq` on, with their segment headers, at most max_bytes (4 KB), as base64 pieces of
    1,020 bytes with a CRC32 each (join them in order): {"chunks": [{"b64", "crc", "len"}, ...], "next": first seq
    not sent, "end": nothing more waits}. No chunk when nothing waits."""
    e = _need()
    if e:
        return e
    if max_bytes > _CHUNK_MAX or max_bytes < 256:
        return _err("bad_argument", "max_bytes must be 256..%d" % _CHUNK_MAX)
    try:
        raw, nxt, end = _V.journal.read_raw(seq, max_bytes)
    except (OSError, ValueError) as x:
        return _err("journal", x)
    # No copy of the chunk: base64 and CRC read the journal's buffer through memoryview slices.
    chunks = []
    for a in range(0, len(raw), _PIECE):
        part = raw[a : a + _PIECE]
        chunks.append({"b64": binascii.b2a_base64(part).decode().rstrip(), "crc": crc32(part) & 0xFFFFFFFF,
                       "len": len(part)})
    if not chunks:
        chunks.append({"b64": "", "crc": 0, "len": 0})
    return {"ok": True, "chunks": chunks, "next": nxt, "end": end}


def ack(upto):
    """The depot stored records up to `upto` durably: they may be freed (never the open or unresolved intents)."""
    e = _need()
    if e:
        return e
    try:
        _V.journal.acknowledge(upto)
    except (OSError, ValueError) as x:
        return _err("journal", x)
    a = _acked(_V.journal)
    return {"ok": True, "acknowledged": a if a is not None else upto}


def set_clock(secs):
    """Set the wall clock (CST seconds since 1970) in the RTC and machine.RTC; payments may resume."""
    e = _need()
    if e:
        return e
    try:
        _V.clock.set_time(secs)
    except (OSError, ValueError) as x:
        return _err("clock", x)
    return {"ok": True, "clock": _V.clock.now()[0]}


def close_intent():
    """End the open intent `unresolved` (it stays on the unresolved list, so its card is never charged twice)."""
    e = _need()
    if e:
        return e
    rec = resolve_open_intent(_V.journal)
    return {"ok": True, "closed": rec.ref if rec is not None else None}


def raise_floor(n):
    """Sequence numbers below n were used on this board before (e.g. before a full erase): never reuse them."""
    e = _need()
    if e:
        return e
    _V.journal.raise_floor(n)
    return {"ok": True, "next_seq": _V.journal.next_seq}


def raise_ttc(n):
    """Development boards: the software SAM's TTCs below n were used before (its store was on an erased vfs):
    the store's next value becomes at least n. The running SAM's reserved block is dropped at the app restart
    that follows every depot session; no tap runs in between (the loop is interrupted)."""
    e = _need()
    if e:
        return e
    if not _CTX.get("dev_board"):
        return _err("refused", "a board with a PSAM keeps its own TTC")
    from tunion.softsam import FileTtcStore

    store = FileTtcStore(_CTX.get("ttc_path", "/samttc"))
    try:
        cur = store.peek()
        if cur < n:
            store.reserve(n - cur)
            cur = n
    except (OSError, ValueError) as x:
        return _err("ttc", x)
    return {"ok": True, "ttc_next": cur}


def install(kind, staged):
    """Install a staged file ("config", "denylist" or, on development boards, "keys") atomically; the running
    validator takes it at once. The staged file is checked again here; on any error the old file stays."""
    e = _need()
    if e:
        return e
    reload = _CTX.get("reload")
    try:
        if kind == "config":
            from tunion.config import install_config

            f = open(staged, "rb")
            try:
                text = f.read()
            finally:
                f.close()
            install_config(text, _CTX.get("config_path", "/config.json"))
        elif kind == "denylist":
            from tunion.denylist import install_denylist, verify

            path = _denylist_path()
            if path is None:
                return _err("refused", "the configuration names no denylist file (denylist_file is null)")
            verify(staged)  # before the open list is closed: a bad file changes nothing
            _close_denylist()  # the list being replaced is closed first (tunion.denylist.install_denylist)
            try:
                install_denylist(staged, path)
            except Exception:
                _reload(reload)  # the old list again
                raise
        elif kind == "keys":
            if not _CTX.get("dev_board"):
                return _err("refused", "software SAM keys are for development boards only")
            from tunion.softsam import load_keys

            f = open(staged, "rb")
            try:
                load_keys(f.read().decode())
            finally:
                f.close()
            import os

            os.rename(staged, _CTX.get("keys_path", "/samkeys.json"))
        else:
            return _err("bad_argument", "unknown kind %r" % kind)
    except ConfigError as x:
        return _err("config", x)
    except (OSError, ValueError) as x:
        return _err(kind, x)
    _reload(reload)
    return {"ok": True, "installed": kind}


def _close_denylist():
    c = _V.config
    if c is not None and c.denylist is not None:
        c.denylist.close()
        c.denylist = None


def _reload(reload):
    """The running validator takes the files now on flash (boot's reload: config, its denylist, the SAM)."""
    if reload is not None:
        _close_denylist()
        _V.config, _V.sam = reload()


def check_config(path):
    """Read and check a configuration file without installing it."""
    try:
        c = read_config(path)
    except ConfigError as x:
        return _err("config", x)
    return {"ok": True, "version": c.version, "line": c.line}
