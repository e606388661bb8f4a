"""The ESP-IDF partition table: a board's partitions.csv to the 3072-byte binary the bootloader reads at 0x8000,
and back.

    from host_tools.parttable import read_csv, encode, decode
    rows = read_csv("boards/esp32-generic/partitions.csv")  # [Partition("nvs", 1, 2, 0x9000, 0x6000, 0), ...]
    blob = encode(rows)                                     # 3072 bytes: entries, the MD5 row, 0xFF fill
    assert decode(blob) == rows

Format (ESP-IDF components/partition_table/gen_esp32part.py, notes/depot.md "Flashing"): one 32-byte entry per
partition, struct `<2sBBLL16sL` (magic AA 50, type, subtype, offset, size, label NUL-padded, flags), then an MD5
row (EB EB, 14 x FF, the MD5 of every entry byte before it), then FF up to 0xC00. `gen_esp32part.py` is not on
PyPI, and the format is small: this module writes it so the depot needs no ESP-IDF. The checks are the ones
the bootloader and MicroPython depend on: alignment (app 64 KB, data 4 KB), no overlap, nothing before 0x9000
(bootloader and table) and nothing past the flash.
"""
import hashlib
import struct
from pathlib import Path

from host_tools.errors import DepotError

TABLE_OFFSET = 0x8000  # where the bootloader reads it (ESP-IDF CONFIG_PARTITION_TABLE_OFFSET default)
TABLE_SIZE = 0xC00  # gen_esp32part.py MAX_PARTITION_LENGTH
_ENTRY = struct.Struct("<2sBBLL16sL")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14
_FIRST_FREE = 0x9000  # after the table (0x8000 + 0xC00, rounded to a sector)
_APP, _DATA = 0x00, 0x01
_TYPES = {"app": _APP, "data": _DATA}
_SUBTYPES = {
    _APP: dict([("factory", 0x00), ("test", 0x20)] + [("ota_%d" % i, 0x10 + i) for i in range(16)]),
    _DATA: {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04, "efuse": 0x05,
            "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81, "spiffs": 0x82, "littlefs": 0x83},
}
_FLAGS = {"encrypted": 1, "readonly": 2}


class Partition:
    """One row: label, type, subtype, offset, size, flags (ints)."""

    __slots__ = ("label", "type", "subtype", "offset", "size", "flags")

    def __init__(self, label, type, subtype, offset, size, flags=0):
        self.label, self.type, self.subtype = label, type, subtype
        self.offset, self.size, self.flags = offset, size, flags

    def _key(self):
        return (self.label, self.type, self.subtype, self.offset, self.size, self.flags)

    def __eq__(self, other):
        return isinstance(other, Partition) and self._key() == other._key()

    def __repr__(self):
        return "Partition(%r, %d, 0x%02x, 0x%x, 0x%x, %d)" % self._key()


def _int(text, what, where):
    try:
        return int(text, 0)
    except ValueError:
        raise DepotError("%s: %s %r is not a number" % (where, what, text), code=2) from None


def parse_csv(text, name="partitions.csv", flash_size=4 * 1024 * 1024):
    """Partition rows of partitions.csv text (Name, Type, SubType, Offset, Size[, Flags]); offsets must be given."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = "%s line %d" % (name, n)
        f = [x.strip() for x in line.split(",")]
        if len(f) < 5:
            raise DepotError("%s: want Name, Type, SubType, Offset, Size[, Flags]" % where, code=2)
        label, typ, sub, off, size = f[:5]
        t = _TYPES[typ] if typ in _TYPES else _int(typ, "type", where)
        s = _SUBTYPES.get(t, {}).get(sub)
        if s is None:
            s = _int(sub, "subtype", where)
        if not off or not size:
            raise DepotError("%s: give the offset and the size (this encoder does not place partitions)" % where,
                             code=2)
        size = size.upper()
        mult = 1
        if size.endswith(("K", "M")):
            mult, size = (1024 if size[-1] == "K" else 1024 * 1024), size[:-1]
        flags = 0
        for fl in (x.strip() for x in ":".join(f[5:]).split(":")):
            if fl:
                if fl not in _FLAGS:
                    raise DepotError("%s: unknown flag %r" % (where, fl), code=2)
                flags |= _FLAGS[fl]
        rows.append(Partition(label, t, s, _int(off, "offset", where), _int(size, "size", where) * mult, flags))
    check(rows, name, flash_size)
    return rows


def read_csv(path, flash_size=4 * 1024 * 1024):
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DepotError("cannot read %s: %s" % (path, e.strerror or e), code=2) from None
    return parse_csv(text, path.name, flash_size)


def check(rows, name="partition table", flash_size=4 * 1024 * 1024):
    """The layout rules the bootloader and MicroPython rely on; a DepotError naming the first broken one."""
    if not rows:
        raise DepotError("%s: no partitions" % name, code=2)
    if len(rows) > TABLE_SIZE // _ENTRY.size - 1:
        raise DepotError("%s: %d partitions, at most %d fit" % (name, len(rows), TABLE_SIZE // _ENTRY.size - 1),
                         code=2)
    seen = set()
    for p in rows:
        if not p.label or len(p.label.encode()) > 16:
            raise DepotError("%s: label %r must be 1-16 bytes" % (name, p.label), code=2)
        if p.label in seen:
            raise DepotError("%s: two partitions named %r" % (name, p.label), code=2)
        seen.add(p.label)
        align = 0x10000 if p.type == _APP else 0x1000
        if p.offset % align or p.size <= 0:
            raise DepotError("%s: %s at 0x%x must start on a 0x%x boundary and have a size" % (
                name, p.label, p.offset, align), code=2)
        if p.offset < _FIRST_FREE or p.offset + p.size > flash_size:
            raise DepotError("%s: %s (0x%x..0x%x) is outside 0x%x..0x%x" % (
                name, p.label, p.offset, p.offset + p.size, _FIRST_FREE, flash_size), code=2)
    by_off = sorted(rows, key=lambda p: p.offset)
    for a, b in zip(by_off, by_off[1:]):
        if a.offset + a.size > b.offset:
            raise DepotError("%s: %s and %s overlap" % (name, a.label, b.label), code=2)


def encode(rows):
    """The 3072-byte table binary of Partition rows."""
    body = b"".join(_ENTRY.pack(_MAGIC, p.type, p.subtype, p.offset, p.size, p.label.encode(), p.flags)
                    for p in rows)
    body += _MD5_MAGIC + hashlib.md5(body).digest()
    return body + b"\xff" * (TABLE_SIZE - len(body))


def decode(blob, name="partition table"):
    """Partition rows of a table binary; DepotError when it is not one or its MD5 row does not match."""
    blob = bytes(blob)
    rows = []
    for i in range(0, min(len(blob), TABLE_SIZE) - _ENTRY.size + 1, _ENTRY.size):
        e = blob[i:i + _ENTRY.size]
        if e[:2] == _MAGIC:
            _, t, s, off, size, label, flags = _ENTRY.unpack(e)
            rows.append(Partition(label.rstrip(b"\x00").decode("ascii", "replace"), t, s, off, size, flags))
            continue
        if e[:16] == _MD5_MAGIC:
            if e[16:] != hashlib.md5(blob[:i]).digest():
                raise DepotError("%s: its MD5 row does not match its entries" % name, code=2)
            return rows
        if e == b"\xff" * _ENTRY.size:
            break
        raise DepotError("%s: entry %d is neither a partition nor the MD5 row" % (name, i // _ENTRY.size), code=2)
    if not rows:
        raise DepotError("%s: no partition entries (not a partition table)" % name, code=2)
    return rows


def find(rows, label):
    for p in rows:
        if p.label == label:
            return p
    return None
