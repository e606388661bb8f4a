"""An SSD1306 128x64 OLED controller on the simulated I2C bus: the command stream decoded into its display RAM.

    oled = SSD1306Sim(); bus.attach(0x3C, oled)
    ... the driver draws ...
    oled.rows()          # 64 strings of '#'/'.', as the passenger sees the panel (blank while it is off)
    oled.data_bytes, oled.cmd_bytes, oled.transfers   # its work, to bound what a redraw costs

Datasheet (Solomon Systech SSD1306 rev 1.1): each I2C write starts with a control byte (8.1.5.2): Co = bit 7,
D/C# = bit 6; Co = 0 means every following byte of the transfer is of that kind, Co = 1 means one byte follows
and then another control byte. Commands (section 9/10) with their argument counts below; an unknown command or an
argument out of range is an error here (the chip would do something undefined). Addressing (10.1.3): page mode
(column wraps within the page), horizontal (column, then page, both within the window set by 21h/22h) and
vertical. GDDRAM: 8 pages of 128 columns, a byte = 8 rows, LSB on top. The module is taken to be mounted as the
common 0.96" boards are, upright with segment remap (A1h) and COM scan remapped (C8h); without them the picture
is mirrored, as it would be on the panel. Reads are not supported on I2C (the controller has no read path there).
"""
ADDR = 0x3C
WIDTH = 128
PAGES = 8
HEIGHT = 64

# opcode -> number of argument bytes (datasheet table 9-1); ranges handled in _range below
_ARGS = {0x81: 1, 0x20: 1, 0x21: 2, 0x22: 2, 0xA8: 1, 0xD3: 1, 0xDA: 1, 0xD5: 1, 0xD9: 1, 0xDB: 1, 0x8D: 1,
         0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5, 0xA3: 2}
_SINGLE = set([0xA4, 0xA5, 0xA6, 0xA7, 0xAE, 0xAF, 0xA0, 0xA1, 0xC0, 0xC8, 0xE3, 0x2E, 0x2F])


def _is_single(op):
    return op in _SINGLE or op <= 0x1F or 0x40 <= op <= 0x7F or 0xB0 <= op <= 0xB7


class SSD1306Sim:
    def __init__(self):
        self.ram = bytearray(WIDTH * PAGES)
        # Power-on RAM is not cleared: fill it with a pattern so a driver that forgets to clear is seen.
        for i in range(len(self.ram)):
            self.ram[i] = 0xA5 if (i // 7) & 1 else 0x5A
        self.on = False
        self.charge_pump = False
        self.mode = 2  # reset: page addressing
        self.col_start, self.col_end = 0, WIDTH - 1
        self.page_start, self.page_end = 0, PAGES - 1
        self.col, self.page = 0, 0
        self.seg_remap = False
        self.com_remap = False
        self.mux = HEIGHT - 1
        self.contrast = 0x7F
        self.inverted = False
        self.entire_on = False
        self.start_line = 0
        self._op = None  # command waiting for arguments
        self._args = []
        self.reset_counts()

    def reset_counts(self):
        self.transfers = 0
        self.bytes = 0  # everything received, control bytes included
        self.cmd_bytes = 0
        self.data_bytes = 0
        self.commands = []  # (opcode, args) in order

    # ---- the I2C side
    def i2c_write(self, data, stop=True):
        self.transfers += 1
        self.bytes += len(data)
        i = 0
        n = len(data)
        while i < n:
            ctrl = data[i]
            if ctrl & 0x3F:
                raise ValueError("SSD1306: control byte 0x%02X has low bits set" % ctrl)
            i += 1
            is_data = bool(ctrl & 0x40)
            end = n if not ctrl & 0x80 else min(n, i + 1)
            for b in data[i:end]:
                if is_data:
                    self._data(b)
                else:
                    self._cmd_byte(b)
            i = end

    def i2c_read(self, n):
        raise OSError(5)  # EIO: no read path in I2C mode as wired here

    # ---- commands
    def _cmd_byte(self, b):
        self.cmd_bytes += 1
        if self._op is None:
            if _is_single(b):
                self._run(b, ())
                return
            if b not in _ARGS:
                raise ValueError("SSD1306: unknown command 0x%02X" % b)
            self._op, self._args = b, []
            return
        self._args.append(b)
        if len(self._args) == _ARGS[self._op]:
            op, args = self._op, tuple(self._args)
            self._op, self._args = None, []
            self._run(op, args)

    def _run(self, op, args):
        self.commands.append((op, args))
        if op == 0x20:
            if args[0] > 2:
                raise ValueError("SSD1306: addressing mode %d is invalid" % args[0])
            self.mode = args[0]
        elif op == 0x21:
            self._range(args, WIDTH - 1, "column")
            self.col_start, self.col_end = args
            self.col = self.col_start
        elif op == 0x22:
            self._range(args, PAGES - 1, "page")
            self.page_start, self.page_end = args
            self.page = self.page_start
        elif op <= 0x0F:
            self.col = (self.col & 0xF0) | op  # page mode: lower column nibble
        elif op <= 0x1F:
            self.col = (self.col & 0x0F) | ((op & 0x0F) << 4)
            if self.col >= WIDTH:
                raise ValueError("SSD1306: column %d" % self.col)
        elif 0xB0 <= op <= 0xB7:
            self.page = op & 7
        elif 0x40 <= op <= 0x7F:
            self.start_line = op & 0x3F
        elif op in (0xAE, 0xAF):
            self.on = op == 0xAF
        elif op in (0xA0, 0xA1):
            self.seg_remap = op == 0xA1
        elif op in (0xC0, 0xC8):
            self.com_remap = op == 0xC8
        elif op in (0xA6, 0xA7):
            self.inverted = op == 0xA7
        elif op in (0xA4, 0xA5):
            self.entire_on = op == 0xA5
        elif op == 0x81:
            self.contrast = args[0]
        elif op == 0xA8:
            if not 15 <= args[0] <= 63:
                raise ValueError("SSD1306: multiplex ratio %d" % args[0])
            self.mux = args[0]
        elif op == 0x8D:
            if args[0] & ~0x04 != 0x10:
                raise ValueError("SSD1306: charge pump setting 0x%02X" % args[0])
            self.charge_pump = bool(args[0] & 0x04)

    @staticmethod
    def _range(args, top, what):
        a, b = args
        if a > top or b > top:
            raise ValueError("SSD1306: %s address %d..%d outside 0..%d" % (what, a, b, top))

    # ---- display data
    def _data(self, b):
        self.data_bytes += 1
        self.ram[self.page * WIDTH + self.col] = b
        if self.mode == 2:  # page mode: the column wraps, the page stays (10.1.3)
            self.col = 0 if self.col >= WIDTH - 1 else self.col + 1
        elif self.mode == 0:  # horizontal
            if self.col >= self.col_end:
                self.col = self.col_start
                self.page = self.page_start if self.page >= self.page_end else self.page + 1
            else:
                self.col += 1
        else:  # vertical
            if self.page >= self.page_end:
                self.page = self.page_start
                self.col = self.col_start if self.col >= self.col_end else self.col + 1
            else:
                self.page += 1

    # ---- what the passenger sees
    def ram_pixel(self, col, row):
        return (self.ram[(row >> 3) * WIDTH + col] >> (row & 7)) & 1

    def pixel(self, x, y):
        """The lit state at panel position (x, y): 0 when the display is off or the charge pump is not on."""
        if not (self.on and self.charge_pump):
            return 0
        if self.entire_on:
            return 1
        col = x if self.seg_remap else WIDTH - 1 - x
        row = y if self.com_remap else HEIGHT - 1 - y
        v = self.ram_pixel(col, (row + self.start_line) % HEIGHT)
        return v ^ 1 if self.inverted else v

    def rows(self):
        out = []
        for y in range(HEIGHT):
            out.append("".join("#" if self.pixel(x, y) else "." for x in range(WIDTH)))
        return out

    def text(self):
        return "\n".join(self.rows())
