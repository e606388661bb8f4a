"""The `journal` data partition as the NOR block device the flash journal writes (board only: needs `esp32`).

    from drivers.partition import find_journal
    dev = find_journal()     # JournalPartition for tunion.flashjournal.FlashJournal, or None (app.boot.open_journal
                             # then falls back to the LittleFS journal)

boards/esp32-generic/partitions.csv defines the partition; on a board still on MicroPython's default table there
is none, and the journal falls back to files in the vfs (tunion.fsjournal; docs/journal.md gives its cost).
"""
import esp32

from tunion.compat import const

_IOCTL_BLOCK_COUNT = const(4)  # MP_BLOCKDEV_IOCTL_BLOCK_COUNT (extmod/vfs.h)
_IOCTL_BLOCK_SIZE = const(5)  # MP_BLOCKDEV_IOCTL_BLOCK_SIZE
_IOCTL_BLOCK_ERASE = const(6)  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE
_SUBTYPE_ANY = const(0xFF)  # esp32.Partition.find: any subtype
_SECTOR = const(4096)  # ESP32 SPI flash erase unit
LABEL = "journal"  # boards/esp32-generic/partitions.csv


class JournalPartition:
    """readblocks/writeblocks/ioctl as esp32.Partition, but a write always passes its offset: the offset form only
    programs (bits 1 -> 0), while the form without one erases the sector first, which the tap path must never do.
    Erases happen only through ioctl(6, sector), which the journal calls while idle."""

    def __init__(self, part):
        self.part = part
        self.sectors = part.ioctl(_IOCTL_BLOCK_COUNT, 0)
        if part.ioctl(_IOCTL_BLOCK_SIZE, 0) != _SECTOR:
            raise ValueError("journal partition blocks must be 4096-byte flash sectors")

    def readblocks(self, block, buf, offset=0):
        self.part.readblocks(block, buf, offset)

    def writeblocks(self, block, buf, offset=0):
        self.part.writeblocks(block, buf, offset)

    def ioctl(self, op, arg=0):
        if op == _IOCTL_BLOCK_COUNT:
            return self.sectors
        if op == _IOCTL_BLOCK_SIZE:
            return _SECTOR
        if op == _IOCTL_BLOCK_ERASE:
            return self.part.ioctl(_IOCTL_BLOCK_ERASE, arg)
        return 0

    def info(self):
        """(type, subtype, address, size, label, encrypted), as esp32.Partition.info()."""
        return self.part.info()


def find_journal(label=LABEL):
    """The journal partition, or None on a board whose partition table has none."""
    found = esp32.Partition.find(esp32.Partition.TYPE_DATA, _SUBTYPE_ANY, label=label)
    if not found:
        return None
    return JournalPartition(found[0])

