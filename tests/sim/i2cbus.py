"""An I2C bus stand-in with the `machine.I2C` methods the drivers use, dispatching to simulated chips by address.

    bus = I2CBus(freq=400000); bus.attach(0x68, DS3231Sim())
    bus.readfrom_mem(0x68, 0x0F, 1)      # one write (register pointer) + one read transaction
    bus.bytes_total, bus.wire_us()       # bytes on the wire (address bytes included) and their time at `freq`

A chip is any object with `i2c_write(data, stop)` (one write transaction: the bytes after the address byte) and
`i2c_read(n)` (one read transaction). Pure Python, so the same bus serves CPython tests, the MicroPython cases and
a virtual board. As on the ESP32 port, a missing chip raises OSError(ENODEV) and a cut bus OSError(ETIMEDOUT);
`cut_after(n)` cuts the bus after n more bytes, the chip having received the bytes before the cut (a torn write).
"""
ENODEV = 19  # the ESP32 port's errno for an address that does not ACK
ETIMEDOUT = 116


class I2CBus:
    def __init__(self, freq=400000):
        self.freq = freq
        self.chips = {}
        self._cut = None
        self.reset_counts()

    def attach(self, addr, chip):
        if not 0x08 <= addr <= 0x77:
            raise ValueError("7-bit I2C address outside 0x08..0x77: 0x%02X" % addr)
        self.chips[addr] = chip

    def detach(self, addr):
        self.chips.pop(addr, None)

    def reset_counts(self):
        self.transactions = 0
        self.bytes_written = 0  # data bytes written (address bytes not included)
        self.bytes_read = 0
        self.bytes_total = 0  # everything clocked on the wire: address bytes, data written, data read

    def cut_after(self, n):
        """The next transfer fails after n more data bytes (None: never). Bytes before the cut reach the chip."""
        self._cut = n

    def wire_us(self, freq=None):
        """Time these transfers take on the wire: 9 clocks a byte (8 bits + ACK), 2 for START/STOP each."""
        f = freq or self.freq
        return (self.bytes_total * 9 + self.transactions * 2) * 1000000 // f

    # ---- machine.I2C
    def scan(self):
        return sorted(self.chips)

    def writeto(self, addr, buf, stop=True):
        self._write(addr, bytes(buf), stop)
        return len(buf) + 1  # ACKs received: the address byte and every data byte

    def writevto(self, addr, vector, stop=True):
        data = b"".join(bytes(b) for b in vector)
        self._write(addr, data, stop)
        return len(data) + 1

    def readfrom_into(self, addr, buf, stop=True):
        data = self._read(addr, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def readfrom(self, addr, n, stop=True):
        return self._read(addr, n)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._write(addr, self._mem(memaddr, addrsize) + bytes(buf), True)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self._write(addr, self._mem(memaddr, addrsize), False)
        self.readfrom_into(addr, buf)

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        self._write(addr, self._mem(memaddr, addrsize), False)
        return self._read(addr, n)

    # ---- the wire
    @staticmethod
    def _mem(memaddr, addrsize):
        if addrsize not in (8, 16):
            raise ValueError("addrsize must be 8 or 16")
        if addrsize == 8:
            if not 0 <= memaddr <= 0xFF:
                raise ValueError("memaddr outside 8 bits")
            return bytes((memaddr,))
        return bytes((memaddr >> 8, memaddr & 0xFF))

    def _chip(self, addr):
        self.transactions += 1
        self.bytes_total += 1  # the address byte is clocked whether or not a chip answers
        chip = self.chips.get(addr)
        if chip is None:
            raise OSError(ENODEV)
        return chip

    def _take(self, n):
        """How many of n bytes get through before a cut (and whether the cut happens)."""
        if self._cut is None or n <= self._cut:
            if self._cut is not None:
                self._cut -= n
            return n, False
        k = self._cut
        self._cut = None
        return k, True

    def _write(self, addr, data, stop):
        chip = self._chip(addr)
        k, cut = self._take(len(data))
        self.bytes_written += k
        self.bytes_total += k
        if k:
            chip.i2c_write(data[:k], stop and not cut)
        if cut:
            raise OSError(ETIMEDOUT)

    def _read(self, addr, n):
        chip = self._chip(addr)
        k, cut = self._take(n)
        data = chip.i2c_read(n)
        if len(data) != n:
            raise AssertionError("chip at 0x%02X returned %d bytes for a %d-byte read" % (addr, len(data), n))
        self.bytes_read += k
        self.bytes_total += k
        if cut:
            raise OSError(ETIMEDOUT)
        return bytes(data)
