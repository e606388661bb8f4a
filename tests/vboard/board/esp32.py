"""`esp32` on the virtual board: Partition over a simulated 4 MB NOR flash kept in a host file.

    import esp32
    p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")[0]
    p.ioctl(6, 3)                       # erase sector 3: every byte 0xFF
    p.writeblocks(3, b"\x00\x01", 10)   # 4-argument form: programs only (bits 1 -> 0), never erases
    p.writeblocks(4, bytes(4096))       # 3-argument form: erases the sectors it covers first

As ports/esp32/esp32_partition.c: readblocks at any offset and length, writeblocks with an offset only
programs, without one erases first (whole sectors only), ioctl 4/5/6 = block count, block size, erase one
block. The flash is a NOR: a program ANDs new bytes into old ones; only an erase sets bits back to 1. All I/O
goes through seek/readinto/write on the host file through small fixed buffers, so the flash costs the
MicroPython heap nothing and survives a kill of the process. Counts its work in `Partition.stats`.
"""
import micropython
import _vbrpc

_SECTOR = 4096  # ESP32 SPI flash erase unit
_CHUNK = 256
_scr = bytearray(_CHUNK)
_ff = b"\xff" * _CHUNK
_flash = None
stats = {"read_bytes": 0, "prog_bytes": 0, "erases": 0}

HEAP_DATA = 0
HEAP_EXEC = 1
WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True


def _file():
    global _flash
    if _flash is None:
        _flash = open(_vbrpc.CONFIG["flash"], "r+b")
    return _flash


@micropython.viper
def _and_into(dst: ptr8, src: ptr8, n: int):
    i = 0
    while i < n:
        dst[i] = dst[i] & src[i]
        i += 1


def _read(addr, buf):
    f = _file()
    f.seek(addr)
    f.readinto(buf)
    stats["read_bytes"] += len(buf)


def _prog(addr, buf):
    f = _file()
    mv = memoryview(buf)
    n = len(buf)
    i = 0
    while i < n:
        k = min(_CHUNK, n - i)
        s = memoryview(_scr)[:k]
        f.seek(addr + i)
        f.readinto(s)
        _and_into(s, mv[i:i + k], k)
        f.seek(addr + i)
        f.write(s)
        i += k
    f.flush()
    stats["prog_bytes"] += n


def _erase(addr, size):
    f = _file()
    f.seek(addr)
    for _ in range(size // _CHUNK):
        f.write(_ff)
    f.flush()
    stats["erases"] += size // _SECTOR


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        table = _vbrpc.CONFIG["partitions"]
        row = None
        if id in (Partition.BOOT, Partition.RUNNING):
            row = [r for r in table if r[0] == Partition.TYPE_APP][0]
        else:
            for r in table:
                if r[4] == id:
                    row = r
        if row is None:
            raise OSError(-261, "ESP_ERR_NOT_FOUND")
        self._row = row
        self.type, self.subtype, self.addr, self.size, self.label = row
        if block_size < 1 or self.size % block_size:
            raise ValueError("invalid block size")
        self.block_size = block_size
        self.stats = stats

    @staticmethod
    def find(type=0, subtype=0xFF, label=None, block_size=4096):
        out = []
        for r in _vbrpc.CONFIG["partitions"]:
            if r[0] == type and (subtype == 0xFF or r[1] == subtype) and (label is None or r[4] == label):
                out.append(Partition(r[4], block_size))
        return out

    def info(self):
        return (self.type, self.subtype, self.addr, self.size, self.label, False)

    def _span(self, block, n, off):
        start = block * self.block_size + off
        if block < 0 or off < 0 or start + n > self.size:
            raise OSError(-258, "ESP_ERR_INVALID_ARG")  # esp_partition_read/write: out of the partition
        return self.addr + start

    def readblocks(self, block, buf, offset=0):
        _read(self._span(block, len(buf), offset), buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            a = self._span(block, len(buf), 0)
            if len(buf) % _SECTOR or a % _SECTOR:
                raise OSError(-258, "ESP_ERR_INVALID_ARG")  # esp_partition_erase_range: whole sectors only
            _erase(a, len(buf))
        else:
            a = self._span(block, len(buf), offset)
        _prog(a, buf)

    def ioctl(self, op, arg=0):
        if op == 4:
            return self.size // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            if self.block_size != _SECTOR:
                return -1
            _erase(self._span(arg, _SECTOR, 0), _SECTOR)
            return 0
        if op in (1, 2, 3):
            return 0
        return None

    def set_boot(self):
        raise OSError(-261, "ESP_ERR_NOT_FOUND")  # one factory app, no OTA slots

    def get_next_update(self):
        raise OSError(-261, "ESP_ERR_NOT_FOUND")

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        pass

    def __repr__(self):
        return "<Partition type=%d, subtype=%d, address=%d, size=%d, label=%s, encrypted=0>" % (
            self.type, self.subtype, self.addr, self.size, self.label)


def idf_heap_info(capabilities):
    return [(100000, 40000, 30000, 20000)]


def mcu_temperature():
    return 45
