"""A real LittleFS image (littlefs-python, the LittleFS C library) behind an `os`-like port, logging every flash
operation so a power cut can be replayed at any point. CPython only (littlefs-python is a C extension).

    dev = LogDevice(64)                          # 64 blocks of 4096 bytes, erased
    fs = LfsPort(dev)                            # formats when there is no filesystem, then mounts
    fs.write_atomic("/data/config.bin", b"...")  # new file, then rename over the old one, as the board does
    k = len(dev.log); ...                        # run something, then:
    img = replay(base_image, dev.log, k, ("erase", "front"))
    fs2 = LfsPort(LogDevice(64, image=img), format_if_needed=False)   # mount what the cut left

The LittleFS configuration is MicroPython's VfsLfs2 (extmod/vfs_lfsx.c): read and prog size 32, lookahead 32,
cache min(block size, 4 * 32), block_cycles 100, block size 4096 (the ESP32 partition's sector).
Operations log as sim.nor does: ("prog", address, bytes) and ("erase", block), so sim.nor.replay applies them.
"""
import littlefs
from sim.nor import apply_op, replay  # noqa: F401  (replay is re-exported for the power-cut tests)

_READ_SIZE = 32  # MicroPython VfsLfs2 default readsize
_PROG_SIZE = 32  # progsize
_LOOKAHEAD = 32  # lookahead
_BLOCK_CYCLES = 100  # extmod/vfs_lfsx.c


class LogDevice(littlefs.UserContext):
    def __init__(self, blocks, block_size=4096, image=None, log=True):
        self.block_size = block_size
        self.blocks = blocks
        if image is None:
            buf = bytearray(b"\xff" * (blocks * block_size))
        else:
            buf = bytearray(image)
        super().__init__(buffer=buf)
        self.log = [] if log else None
        self.programs = 0
        self.erases = 0
        self.bytes_programmed = 0

    def read(self, cfg, block, off, size):
        start = block * self.block_size + off
        return self.buffer[start : start + size]

    def prog(self, cfg, block, off, data):
        op = ("prog", block * self.block_size + off, bytes(data))
        apply_op(self.buffer, self.block_size, op)
        if self.log is not None:
            self.log.append(op)
        self.programs += 1
        self.bytes_programmed += len(data)
        return 0

    def erase(self, cfg, block):
        op = ("erase", block)
        apply_op(self.buffer, self.block_size, op)
        if self.log is not None:
            self.log.append(op)
        self.erases += 1
        return 0

    def sync(self, cfg):
        return 0

    def image(self):
        return bytes(self.buffer)


class LfsPort:
    """The few `os` calls the journal and the file installers use, on a LittleFS image."""

    def __init__(self, dev, format_if_needed=True):
        self.dev = dev
        cache = min(dev.block_size, 4 * max(_READ_SIZE, _PROG_SIZE))
        kw = dict(
            block_size=dev.block_size,
            block_count=dev.blocks,
            read_size=_READ_SIZE,
            prog_size=_PROG_SIZE,
            cache_size=cache,
            lookahead_size=_LOOKAHEAD,
            block_cycles=_BLOCK_CYCLES,
        )
        self.lfs = littlefs.LittleFS(context=dev, mount=False, **kw)
        try:
            self.lfs.mount()
        except littlefs.LittleFSError:
            if not format_if_needed:
                raise
            self.lfs.format()
            self.lfs.mount()

    def open(self, path, mode="rb"):
        return self.lfs.open(path, mode)

    def remove(self, path):
        self.lfs.remove(path)

    def rename(self, src, dst):
        self.lfs.rename(src, dst)

    def listdir(self, path="/"):
        return self.lfs.listdir(path)

    def mkdir(self, path):
        try:
            self.lfs.mkdir(path)
        except FileExistsError:
            raise OSError(17, "exists")  # what MicroPython's os.mkdir raises (EEXIST)

    def stat(self, path):
        st = self.lfs.stat(path)
        return (0x8000 if st.type == 1 else 0x4000, 0, 0, 0, 0, 0, st.size, 0, 0, 0)

    def statvfs(self, path="/"):
        """os.statvfs's tuple: (bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax)."""
        used = self.lfs.used_block_count
        free = self.dev.blocks - used
        return (self.dev.block_size, self.dev.block_size, self.dev.blocks, free, free, 0, 0, 0, 0, 255)

    def read_file(self, path):
        with self.lfs.open(path, "rb") as f:
            return f.read()

    def write_atomic(self, path, data, chunk=4096):
        """Write a new file, then rename it over the old one (how the board installs config and denylist)."""
        tmp = path + ".new"
        with self.lfs.open(tmp, "wb") as f:
            for i in range(0, len(data), chunk):
                f.write(data[i : i + chunk])
        self.lfs.rename(tmp, path)
