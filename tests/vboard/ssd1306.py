"""SSD1306 128x64 OLED on I2C (address 0x3C): a frame sink that decodes the command stream and page data.

    oled = SSD1306()
    board.i2c_devices[0][0x3C] = oled
    print(oled.text())            # the panel as 64 lines of '#' and '.' (what a rider would see)
    oled.data_bytes, oled.commands

As the datasheet (Solomon Systech SSD1306 rev 1.1, sections 8.1.5 and 10): every transaction starts with a
control byte: 0x00 = commands follow, 0x40 = display data follow, Co bit (0x80) = one byte then another control
byte. Commands with arguments (0x20, 0x21, 0x22, 0x81, 0x8D, 0xA8, 0xD3, 0xD5, 0xD9, 0xDA, 0xDB, scrolling)
take them from the following command bytes. Data go to GDDRAM at the column/page pointer under the addressing
mode (0 horizontal, 1 vertical, 2 page). The view applies segment remap (0xA1), COM scan direction (0xC8),
inversion (0xA7) and display on/off (0xAF/0xAE). An unknown command is recorded in `errors`.
"""

_ARGS = {0x20: 1, 0x21: 2, 0x22: 2, 0x81: 1, 0x8D: 1, 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1,
         0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5, 0xA3: 2}
_SIMPLE = set(range(0x00, 0x20)) | set(range(0x40, 0x80)) | set(range(0xB0, 0xB8)) | {
    0x2E, 0x2F, 0xA0, 0xA1, 0xA4, 0xA5, 0xA6, 0xA7, 0xAE, 0xAF, 0xC0, 0xC8, 0xE3}


class SSD1306:
    ADDR = 0x3C
    WIDTH = 128
    PAGES = 8

    def __init__(self):
        self.power_cycle()
        self.transactions = 0
        self.data_bytes = 0
        self.command_bytes = 0
        self.commands = []
        self.errors = []

    def power_cycle(self):
        self.ram = bytearray(self.WIDTH * self.PAGES)
        self.on = False
        self.mode = 2  # page addressing after reset
        self.col, self.page = 0, 0
        self.col_range = (0, 127)
        self.page_range = (0, 7)
        self.remap = False
        self.com_flip = False
        self.invert = False
        self.contrast = 0x7F
        self._pending = None  # (command, args so far, args needed)

    # ---- the I2C device interface ---------------------------------------------------------------------------
    def write(self, data, t_us, stop=True):
        self.transactions += 1
        i = 0
        while i < len(data):
            ctrl = data[i]
            i += 1
            if ctrl & 0x3F:
                self.errors.append("bad control byte 0x%02X" % ctrl)
                return True
            co, dc = ctrl & 0x80, ctrl & 0x40
            chunk = data[i:i + 1] if co else data[i:]
            i += len(chunk)
            for b in chunk:
                self._data(b) if dc else self._cmd(b)
        return True

    def read(self, n, t_us):
        return bytes(n)  # status reads are not used over I2C

    # ---- decoding -------------------------------------------------------------------------------------------
    def _cmd(self, b):
        self.command_bytes += 1
        if self._pending:
            cmd, args, need = self._pending
            args.append(b)
            if len(args) == need:
                self._pending = None
                self._apply(cmd, args)
            return
        if b in _ARGS:
            self._pending = (b, [], _ARGS[b])
        elif b in _SIMPLE:
            self._apply(b, [])
        else:
            self.errors.append("unknown command 0x%02X" % b)

    def _apply(self, c, a):
        self.commands.append((c, tuple(a)))
        if c == 0x20:
            self.mode = a[0] & 3
        elif c == 0x21:
            self.col_range = (a[0] & 127, a[1] & 127)
            self.col = self.col_range[0]
        elif c == 0x22:
            self.page_range = (a[0] & 7, a[1] & 7)
            self.page = self.page_range[0]
        elif c == 0x81:
            self.contrast = a[0]
        elif c in (0xAE, 0xAF):
            self.on = c == 0xAF
        elif c in (0xA0, 0xA1):
            self.remap = c == 0xA1
        elif c in (0xC0, 0xC8):
            self.com_flip = c == 0xC8
        elif c in (0xA6, 0xA7):
            self.invert = c == 0xA7
        elif 0xB0 <= c <= 0xB7:
            self.page = c & 7
        elif c <= 0x0F:
            self.col = (self.col & 0xF0) | c
        elif c <= 0x1F:
            self.col = (self.col & 0x0F) | ((c & 0x0F) << 4)

    def _data(self, b):
        self.data_bytes += 1
        self.ram[self.page * self.WIDTH + (self.col & 127)] = b
        c0, c1 = self.col_range
        p0, p1 = self.page_range
        if self.mode == 0:  # horizontal: column first, then page, wrapping in the window
            if self.col >= c1:
                self.col = c0
                self.page = p0 if self.page >= p1 else self.page + 1
            else:
                self.col += 1
        elif self.mode == 1:  # vertical
            if self.page >= p1:
                self.page = p0
                self.col = c0 if self.col >= c1 else self.col + 1
            else:
                self.page += 1
        else:  # page mode: the column runs on within the page and wraps to 0 at 127
            self.col = (self.col + 1) & 127

    # ---- what the panel shows -------------------------------------------------------------------------------
    def pixel(self, x, y):
        """What the rider sees at (x, y), 0 <= x < 128, 0 <= y < 64, top left = (0, 0)."""
        if not self.on:
            return 0
        # Panels are mounted so that 0xA1 + 0xC8 (what micropython-lib's ssd1306 sends) show GDDRAM upright.
        col = x if self.remap else 127 - x
        row = y if self.com_flip else 63 - y
        v = (self.ram[(row >> 3) * self.WIDTH + col] >> (row & 7)) & 1
        return v ^ 1 if self.invert else v

    def text(self, on="#", off="."):
        return "\n".join("".join(on if self.pixel(x, y) else off for x in range(128)) for y in range(64))

    def lit(self):
        return sum(self.pixel(x, y) for x in range(128) for y in range(64))
