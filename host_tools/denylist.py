"""Build, check and describe denylist files on the host (the format is firmware/tunion/denylist.py's).

    python -m host_tools.denylist build cards.txt -o denylist.bin --list-version 12
    python -m host_tools.denylist check denylist.bin [--json]
    python -m host_tools.denylist stats denylist.bin [--json]

The text list has one card number per line (the 19-digit EF15 application serial, protocol s.7.7); `#` starts a
comment; blank lines are skipped. Every bad line is reported with its line number and nothing is written.
"""
import argparse
import json
import os
import sys

try:
    from tunion import denylist as fmt
except ImportError:  # run from a checkout: the format module lives in the firmware tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware"))
    from tunion import denylist as fmt

_U64_MAX = (1 << 64) - 1
_CARD_DIGITS = 19  # protocol s.7.7: 19 digits starting 31


class DenylistToolError(Exception):
    """The one error this tool reports; main() prints it and exits 1."""


def parse_list(text, strict=True):
    """(numbers, warnings) from the text list. DenylistToolError listing every bad line (with its number).
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
        raise DenylistToolError("\n".join(shown) + ("\n... and %d more bad lines" % more if more else ""))
    return nums, warnings


def build(text, list_version, strict=True):
    """(file bytes, warnings) from the text list."""
    if not 0 <= list_version <= 0xFFFFFFFF:
        raise DenylistToolError("list version must be 0..4294967295")
    nums, warnings = parse_list(text, strict)
    return fmt.encode(nums, list_version), warnings


def check(path):
    """The file's stats after a full check (header, size, CRC, order); DenylistToolError when it is bad."""
    try:
        count, version = fmt.verify(path)
    except fmt.DenylistError as e:
        raise DenylistToolError("%s: %s" % (path, e)) from e
    except OSError as e:
        raise DenylistToolError("%s: %s" % (path, e)) from e
    return stats(path, count, version)


def stats(path, count=None, version=None):
    with open(path, "rb") as fh:
        try:
            n, v, crc = fmt.parse_header(fh.read(fmt.HEADER_SIZE))
        except fmt.DenylistError as e:
            raise DenylistToolError("%s: %s" % (path, e)) from e
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
        print(json.dumps(info, sort_keys=True))
        return
    for k in ("path", "entries", "list_version", "entries_crc", "bytes", "first", "last", "max_reads_per_lookup"):
        print("%-21s %s" % (k, info[k]))
    if not info["fits_4mb_board"]:
        print("note: more than 50,000 entries: only for 8/16 MB boards (validator.md s.4)")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.denylist", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build a denylist file from a text list")
    b.add_argument("list", help="text file: one card number per line, # comments")
    b.add_argument("-o", "--output", required=True)
    b.add_argument("--list-version", type=int, required=True, help="rises with every list (0..2^32-1)")
    b.add_argument("--lenient", action="store_true", help="accept numbers that are not 19 digits starting 31")
    b.add_argument("--json", action="store_true")
    for name in ("check", "stats"):
        c = sub.add_parser(name, help="verify a file whole" if name == "check" else "print the header")
        c.add_argument("file")
        c.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            try:
                with open(args.list, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeError) as e:
                raise DenylistToolError("%s: %s" % (args.list, e)) from e
            data, warnings = build(text, args.list_version, not args.lenient)
            for w in warnings:
                print("warning: " + w, file=sys.stderr)
            tmp = args.output + ".tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, args.output)
            _print(check(args.output), args.json)
        elif args.cmd == "check":
            _print(check(args.file), args.json)
        else:
            _print(stats(args.file), args.json)
    except DenylistToolError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
