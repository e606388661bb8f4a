"""Build, check and describe denylist files on the host (the format is firmware/tunion/denylist.py's).

    tunion-depot denylist build cards.txt -o denylist.bin --list-version 12
    tunion-depot --json denylist check denylist.bin
    tunion-depot denylist stats denylist.bin
    python -m host_tools.denylist check denylist.bin      # the same group, kept for scripts

The text list has one card number per line (the 19-digit EF15 application serial, protocol s.7.7); `#` starts a
comment; blank lines are skipped. Every bad line is reported with its line number and nothing is written.
`tunion-depot provision --denylist denylist.bin` sends a checked file to a board.
"""
import json
import os
import sys

import click

from host_tools.errors import DepotError

try:
    from tunion import denylist as fmt
except ImportError:  # run from a checkout: the format module lives in the firmware tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware"))
    from tunion import denylist as fmt

_U64_MAX = (1 << 64) - 1
_CARD_DIGITS = 19  # protocol s.7.7: 19 digits starting 31


def _fail(msg):
    return DepotError(msg, code=2)  # bad input from the user: exit status 2 (host_tools/errors.py)


def parse_list(text, strict=True):
    """(numbers, warnings) from the text list. DepotError listing every bad line (with its number).
    strict: a number that is not 19 digits starting 31 is an error; otherwise a warning."""
    nums = []
    seen = set()
    errors = []
    warnings = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.isdigit() or not line.isascii():
            errors.append("line %d: %r is not a card number (digits only)" % (lineno, line))
            continue
        v = int(line)
        if v > _U64_MAX:
            errors.append("line %d: %s does not fit an unsigned 64-bit integer" % (lineno, line))
            continue
        if len(line) != _CARD_DIGITS or not line.startswith("31"):
            msg = "line %d: %s is not a 19-digit T-Union card number starting 31" % (lineno, line)
            (errors if strict else warnings).append(msg)
            if strict:
                continue
        if v in seen:
            warnings.append("line %d: %s is listed twice (kept once)" % (lineno, line))
            continue
        seen.add(v)
        nums.append(v)
    if errors:
        shown = errors[:20]
        more = len(errors) - len(shown)
        raise _fail("; ".join(shown) + ("; ... and %d more bad lines" % more if more else ""))
    return nums, warnings


def build(text, list_version, strict=True):
    """(file bytes, warnings) from the text list."""
    if not 0 <= list_version <= 0xFFFFFFFF:
        raise _fail("list version must be 0..4294967295")
    nums, warnings = parse_list(text, strict)
    return fmt.encode(nums, list_version), warnings


def check(path):
    """The file's stats after a full check (header, size, CRC, order); DepotError when it is bad."""
    try:
        count, version = fmt.verify(path)
    except fmt.DenylistError as e:
        raise _fail("%s: not a good denylist file: %s" % (path, e)) from None
    except OSError as e:
        raise _fail("%s: %s" % (path, e.strerror or e)) from None
    return stats(path, count, version)


def stats(path, count=None, version=None):
    """The header's facts without checking the entries (check() checks them)."""
    try:
        return _stats(path, count, version)
    except OSError as e:
        raise _fail("%s: %s" % (path, e.strerror or e)) from None


def _stats(path, count, version):
    with open(path, "rb") as fh:
        try:
            n, v, crc = fmt.parse_header(fh.read(fmt.HEADER_SIZE))
        except fmt.DenylistError as e:
            raise _fail("%s: not a denylist file: %s" % (path, e)) from None
        first = last = None
        if n:
            first = int.from_bytes(fh.read(8), "big")
            fh.seek(fmt.HEADER_SIZE + (n - 1) * fmt.ENTRY_SIZE)
            last = int.from_bytes(fh.read(8), "big")
    size = os.path.getsize(path)
    return {
        "path": path,
        "entries": n,
        "list_version": v,
        "entries_crc": "%08X" % crc,
        "bytes": size,
        "first": first,
        "last": last,
        # A binary search reads at most floor(log2(n)) + 1 entries.
        "max_reads_per_lookup": n.bit_length(),
        "fits_4mb_board": n <= 50000,
        "verified": count is not None,
    }


def _print(info, as_json):
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    for k in ("path", "entries", "list_version", "entries_crc", "bytes", "first", "last", "max_reads_per_lookup"):
        click.echo("%-21s %s" % (k, info[k]))
    if not info["fits_4mb_board"]:
        click.echo("note: more than 50,000 entries: only for 8/16 MB boards (validator.md s.4)")


def _as_json(ctx, flag):
    return flag or bool(getattr(ctx.obj, "json", False))


@click.group("denylist")
def denylist():
    """Build, check and describe denylist files (no board needed)."""


@denylist.command("build")
@click.argument("list_file", metavar="LIST", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the denylist file to write")
@click.option("--list-version", type=int, required=True, help="rises with every list (0..2^32-1)")
@click.option("--lenient", is_flag=True, help="accept numbers that are not 19 digits starting 31")
@click.option("--json", "as_json", is_flag=True, help="print JSON (as the global --json)")
@click.pass_context
def build_cmd(ctx, list_file, output, list_version, lenient, as_json):
    """Build a denylist file from a text list (one card number per line, # comments)."""
    try:
        with open(list_file, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeError) as e:
        raise _fail("%s: %s" % (list_file, getattr(e, "strerror", None) or e)) from None
    data, warnings = build(text, list_version, not lenient)
    for w in warnings:
        click.echo("warning: " + w, err=True)
    tmp = output + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, output)  # the old file or the new, never half of one
    _print(check(output), _as_json(ctx, as_json))


@denylist.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON (as the global --json)")
@click.pass_context
def check_cmd(ctx, file, as_json):
    """Verify a denylist file whole (header, size, CRC, order)."""
    _print(check(file), _as_json(ctx, as_json))


@denylist.command("stats")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON (as the global --json)")
@click.pass_context
def stats_cmd(ctx, file, as_json):
    """Print a denylist file's header (entries, version, first and last card)."""
    _print(stats(file), _as_json(ctx, as_json))


if __name__ == "__main__":
    from host_tools.cli import run

    sys.exit(run(["denylist"] + sys.argv[1:]))
