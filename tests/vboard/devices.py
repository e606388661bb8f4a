"""Host-side devices of the virtual board, and the small interface a simulator implements to be plugged in.

UART device (one per UART id; the board's machine.UART talks to it through the controller):

    write(data, t_us)        bytes the board sent, at simulated time t_us
    read(n, t_us) -> bytes   up to n bytes the device has made available by t_us (b"" when none)
    any(t_us) -> int         how many bytes read() would return now
    set_baud(baud)           the board called UART.init(baudrate=...); optional: set_format(bits, parity, stop)
    power_cycle()            optional: the board lost power (the chip resets too)

I2C device (one per 7-bit address on bus 0 or 1):

    write(data, t_us, stop=True) -> bool   one write transaction; False = NACK (the board sees OSError ENODEV)
    read(n, t_us) -> bytes                 one read transaction of exactly n bytes
    power_cycle()                          optional

`adapt_uart(obj)` wraps a chip simulator whose UART stand-in methods take no time (write/read/any/init, as the
PN532 and PSAM simulators' stand-ins): the time argument is dropped, set_baud calls init(baudrate=...).
"""


class AdaptedUart:
    def __init__(self, obj):
        self.obj = obj

    def write(self, data, t_us):
        self.obj.write(data)

    def read(self, n, t_us):
        return self.obj.read(n) or b""

    def any(self, t_us):
        return self.obj.any()

    def set_baud(self, baud):
        if hasattr(self.obj, "init"):
            self.obj.init(baudrate=baud)

    def power_cycle(self):
        if hasattr(self.obj, "power_cycle"):
            self.obj.power_cycle()


def adapt_uart(obj):
    if hasattr(obj, "write") and _takes_time(obj.write):
        return obj
    return AdaptedUart(obj)


def _takes_time(fn):
    try:
        import inspect

        return len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        return False


class ReaderStub:
    """Stands where the PN532 will be (UART 2): holds the card placed on the reader, swallows what the board
    sends and answers nothing, as a PN532 that is not wired. The PN532 simulator replaces it and reads `card`."""

    def __init__(self):
        self.card = None
        self.rx = bytearray()  # everything the board sent
        self.baud = None

    def place(self, card):
        self.card = card

    def remove(self):
        self.card = None

    def write(self, data, t_us):
        self.rx += data

    def read(self, n, t_us):
        return b""

    def any(self, t_us):
        return 0

    def set_baud(self, baud):
        self.baud = baud


class UartEcho:
    """A loopback plug (TX wired to RX): what the board writes comes back one byte time later at the line's baud."""

    def __init__(self):
        self.baud = 115200
        self._q = []  # (t_ready_us, byte)
        self.bytes_in = 0

    def set_baud(self, baud):
        self.baud = baud

    def write(self, data, t_us):
        per = max(1, 10_000_000 // self.baud)  # one 8N1 byte is 10 bit times, in microseconds
        t = max([t_us] + [q[0] for q in self._q[-1:]])
        for b in data:
            t += per
            self._q.append((t, b))
        self.bytes_in += len(data)

    def any(self, t_us):
        return sum(1 for t, _ in self._q if t <= t_us)

    def read(self, n, t_us):
        k = min(n, self.any(t_us))
        out = bytes(b for _, b in self._q[:k])
        del self._q[:k]
        return out
