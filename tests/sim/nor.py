"""Simulated NOR flash with the block protocol of esp32.Partition, strict about NOR rules, countable and cuttable.

    nor = NorFlash(16)                             # 16 sectors of 4096 bytes, erased (0xFF)
    bare = BareFlash(16)                           # the same protocol in plain memory, for benchmarks
    nor.writeblocks(3, b"\\x01\\x02", 8)            # program: bits only go 1 -> 0 (new = old AND data)
    nor.ioctl(6, 3)                                # erase sector 3 to 0xFF
    nor.programs, nor.erases, nor.conflicts        # counted; conflicts = programs that wanted a 0 -> 1
    nor.cut_at = (5, ("prog", 3))                  # power cut inside the 6th operation: only 3 bytes land
    img = replay(base_image, nor.log, k, ("erase", "front"))   # the image a cut inside operation k leaves

Runs on MicroPython too (no littlefs here). The protocol is MicroPython's extended block device:
readblocks(block, buf, offset), writeblocks(block, buf, offset) (programs only; without an offset
esp32.Partition erases first, and so does this), ioctl(4) sector count, ioctl(5) sector size, ioctl(6, n) erase.
"""

_IOCTL_COUNT = 4  # MP_BLOCKDEV_IOCTL_BLOCK_COUNT (extmod/vfs.h)
_IOCTL_SIZE = 5  # MP_BLOCKDEV_IOCTL_BLOCK_SIZE
_IOCTL_ERASE = 6  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE

# How a cut inside an operation leaves it (the second item of a cut):
#   ("prog", n)            the first n bytes programmed, the rest not (n may be 0)
#   ("prog", n, mask)      ... and byte n got only the 0-bits of `mask` (a byte half programmed)
#   ("erase", "front")     the first half of the sector erased, the second half still old data
#   ("erase", "back")      the second half erased, the first half old
#   ("erase", "noise")     pseudo-random bytes (seeded by the operation index)
#   None                   the operation did not start


class PowerCut(Exception):
    """The simulated supply failed: the flash keeps what the interrupted operation had done."""


def _noise(seed, n):
    out = bytearray(n)
    x = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return out


def apply_op(mem, sector_size, op, partial=None, seed=0):
    """Apply one logged operation to a bytearray image, whole (partial None and op complete) or cut inside."""
    if op[0] == "prog":
        addr, data = op[1], op[2]
        n = len(data)
        mask = None
        if partial is not None:
            n = partial[1]
            mask = partial[2] if len(partial) > 2 else None
        for i in range(n):
            mem[addr + i] &= data[i]
        if mask is not None and n < len(data):
            mem[addr + n] &= data[n] | (mask & 0xFF)
        return
    base = op[1] * sector_size
    if partial is None:
        for i in range(sector_size):
            mem[base + i] = 0xFF
        return
    half = sector_size // 2
    how = partial[1]
    if how == "front":
        for i in range(half):
            mem[base + i] = 0xFF
    elif how == "back":
        for i in range(half, sector_size):
            mem[base + i] = 0xFF
    else:
        mem[base : base + sector_size] = _noise(seed, sector_size)


class NorFlash:
    def __init__(self, sectors, sector_size=4096, image=None, log=False):
        self.sectors = sectors
        self.sector_size = sector_size
        if image is not None:
            if len(image) != sectors * sector_size:
                raise ValueError("image size does not match the geometry")
            self.mem = bytearray(image)
        else:
            self.mem = bytearray(b"\xff" * (sectors * sector_size))
        self.log = [] if log else None
        self.ops = 0  # program and erase operations so far (the index a cut refers to)
        self.cut_at = None  # (op index, partial) -> PowerCut inside that operation
        self.reset_counts()

    def reset_counts(self):
        self.programs = 0
        self.erases = 0
        self.bytes_programmed = 0
        self.conflicts = 0  # programs that asked for a 0 -> 1 transition NOR cannot do
        self.reads = 0
        self.wear = [0] * self.sectors  # erases per sector

    def image(self):
        return bytes(self.mem)

    def _check(self, block, offset, n):
        if block < 0 or block >= self.sectors or offset < 0 or offset + n > self.sector_size:
            raise ValueError("flash access outside sector %d: offset %d, %d bytes" % (block, offset, n))

    def readblocks(self, block, buf, offset=0):
        n = len(buf)
        self._check(block, offset, n)
        a = block * self.sector_size + offset
        buf[:] = self.mem[a : a + n]
        self.reads += 1

    def _op(self, op):
        idx = self.ops
        self.ops += 1
        if self.log is not None:
            self.log.append(op)
        if self.cut_at is not None and self.cut_at[0] == idx:
            partial = self.cut_at[1]
            if partial is not None:
                apply_op(self.mem, self.sector_size, op, partial, idx)
            raise PowerCut("power cut in operation %d (%s)" % (idx, op[0]))
        apply_op(self.mem, self.sector_size, op)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # esp32.Partition: a whole-block write without an offset erases first
            self.ioctl(_IOCTL_ERASE, block)
            offset = 0
        data = bytes(buf)
        self._check(block, offset, len(data))
        a = block * self.sector_size + offset
        for i in range(len(data)):
            if data[i] & ~self.mem[a + i] & 0xFF:
                self.conflicts += 1
                break
        self.programs += 1
        self.bytes_programmed += len(data)
        self._op(("prog", a, data))

    def ioctl(self, op, arg=0):
        if op == _IOCTL_COUNT:
            return self.sectors
        if op == _IOCTL_SIZE:
            return self.sector_size
        if op == _IOCTL_ERASE:
            self._check(arg, 0, 0)
            self.erases += 1
            self.wear[arg] += 1
            self._op(("erase", arg))
            return 0
        return 0  # init, deinit, sync: nothing to do


def replay(base, log, k, partial=None, sector_size=4096):
    """The image after the first k logged operations, with operation k cut as `partial` describes (None: not
    started). `base` is the image the log started from."""
    mem = bytearray(base)
    for i in range(k):
        apply_op(mem, sector_size, log[i])
    if partial is not None and k < len(log):
        apply_op(mem, sector_size, log[k], partial, k)
    return mem


def cuts_for(op):
    """The cuts inside one operation that a power-cut run tries: for a program nothing, a third, all but the last
    byte (with the last byte half programmed); for an erase the front half, the back half, noise."""
    if op[0] == "prog":
        n = len(op[2])
        return (("prog", n // 3), ("prog", n - 1, 0x0F))
    return (("erase", "front"), ("erase", "back"), ("erase", "noise"))


class BareFlash:
    """Just memory with the same block protocol, no NOR rules, counts or cuts: benchmarks time the journal's own
    work with it (bench/bench_journal.py, bench/bench_tap.py), not the simulator's per-byte checks."""

    def __init__(self, sectors, ss=4096):
        self.ss = ss
        self.n = sectors
        self.mem = bytearray(b"\xff" * (sectors * ss))

    def readblocks(self, block, buf, offset=0):
        a = block * self.ss + offset
        buf[:] = self.mem[a : a + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        a = block * self.ss + offset
        self.mem[a : a + len(buf)] = buf

    def ioctl(self, op, arg=0):
        if op == _IOCTL_COUNT:
            return self.n
        if op == _IOCTL_SIZE:
            return self.ss
        if op == _IOCTL_ERASE:
            self.mem[arg * self.ss : (arg + 1) * self.ss] = b"\xff" * self.ss
        return 0
