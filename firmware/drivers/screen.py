"""The SSD1306 128x64 panel on I2C: the passenger's messages drawn with the core's renderer, only changed bytes sent.

    scr = make_screen(i2c)           # i2c = machine.I2C(0, ...); scr.init() sends the panel's set-up once
    scr.result(result)               # right after a tap: only remembers the lines (no drawing, no I2C)
    if scr.pending(): scr.draw()     # between taps: render, then send the pages that changed
    scr.idle(); scr.out_of_service(outcome.OOS_CLOCK)

The frame is drawn by tunion.display (the same layout and Unifont subset the host tests draw with), then
converted from its MONO_HLSB rows to the panel's pages (8 pixel rows a page, one byte a column, LSB on top:
SSD1306 datasheet 8.7 "Graphic Display Data RAM"). When the factory passes MicroPython's framebuf in, the glyph
blits and that conversion run in its C code; without it (CPython tests) in pure Python; the pixels are identical
(tests/mpcases/feedback_cases.py checks both against tunion.display under MicroPython).
The last frame sent is kept: a page is sent only if it changed, and only from its first to its last changed column.
A full frame is 1 KB, ~23 ms at 400 kHz (notes/board.md), so drawing never happens inside a tap.

Not micropython-lib's ssd1306 nor PyPI micropython-ssd1306-driver 1.0.2 (same constructor): their `show()`
always sends the whole 1 KB buffer, the constructor itself sends a full frame, and they need framebuf, which
CPython lacks; we would bypass everything but `write_cmd`. The set-up sequence below is theirs in substance (it
is the datasheet's application example for a 128x64 module with the internal charge pump).
"""
from tunion import messages
from tunion.compat import const
from tunion.display import Frame, show

ADDR = const(0x3C)  # SSD1306 datasheet 8.1.5: 011110 + SA0 (SA0 low on the common modules)
WIDTH = const(128)
HEIGHT = const(64)
PAGES = const(8)  # 64 rows / 8
_ALL = const(0xFF)  # one bit a page
_CTRL_CMDS = const(0x00)  # control byte: Co = 0, D/C# = 0: the rest of the transfer is commands (datasheet 8.1.5.2)
_CTRL_DATA = const(0x40)  # Co = 0, D/C# = 1: the rest is display data
_SET_COL = const(0x21)  # column start, end (horizontal addressing: datasheet 10.1.4)
_SET_PAGE = const(0x22)  # page start, end (datasheet 10.1.5)
_DISPLAY_ON = const(0xAF)

# Datasheet 10.1 commands, in the order of its application example (figure "Software initialization flow").
_INIT = bytes((
    _CTRL_CMDS,
    0xAE,  # display off while setting up
    0x20, 0x00,  # memory addressing mode: horizontal
    0x40,  # display start line 0
    0xA1,  # segment remap: column 127 -> SEG0 (module mounting)
    0xA8, HEIGHT - 1,  # multiplex ratio
    0xC8,  # COM scan remapped (module mounting)
    0xD3, 0x00,  # display offset 0
    0xDA, 0x12,  # COM pins: alternative configuration, no left/right remap (128x64)
    0xD5, 0x80,  # clock divide ratio / oscillator frequency: reset value
    0xD9, 0xF1,  # pre-charge: internal VCC
    0xDB, 0x30,  # VCOMH deselect ~0.83 VCC
    0x81, 0xFF,  # contrast
    0xA4,  # display follows RAM
    0xA6,  # normal (not inverted)
    0x8D, 0x14,  # charge pump on (internal VCC)
))


def hlsb_to_pages(src, dst, width=WIDTH, height=HEIGHT):
    """MONO_HLSB rows (tunion.display.Frame.buf) -> SSD1306 pages (MONO_VLSB), in pure Python."""
    stride = width >> 3
    for p in range(height >> 3):
        base = p * width
        for x in range(width):
            dst[base + x] = 0
        for r in range(8):
            row = ((p << 3) + r) * stride
            m = 1 << r
            for bx in range(stride):
                v = src[row + bx]
                if v:
                    x = base + (bx << 3)
                    for bit in range(8):
                        if v & (0x80 >> bit):
                            dst[x + bit] |= m


class _BlitFrame(Frame):
    """tunion.display.Frame whose glyph blits and fills run in framebuf's C code (same buffer, same MONO_HLSB
    layout): the layout and glyph choice stay the core's; only the per-pixel loop moves to C. The pure Frame
    costs ~4,000 pixel() calls for a payment screen, about half a second on the ESP32."""

    def __init__(self, fbmod):
        Frame.__init__(self, WIDTH, HEIGHT)
        self._fb = fbmod.FrameBuffer(self.buf, WIDTH, HEIGHT, fbmod.MONO_HLSB)
        self._g = bytearray(32)  # one glyph: 16 rows of 2 bytes, or of 1 byte for a half-width one
        self._full = fbmod.FrameBuffer(self._g, 16, 16, fbmod.MONO_HLSB)
        self._half = fbmod.FrameBuffer(self._g, 8, 16, fbmod.MONO_HLSB)

    def fill(self, c):
        self._fb.fill(1 if c else 0)

    def blit(self, bits, w, h, x, y):
        if h != 16 or w not in (8, 16) or len(bits) != w * 2:
            Frame.blit(self, bits, w, h, x, y)
            return
        self._g[0:len(bits)] = bits
        self._fb.blit(self._full if w == 16 else self._half, x, y, 0)  # key 0: set pixels only, as Frame.blit


class Screen:
    def __init__(self, i2c, addr=ADDR, framebuf=None):
        self.i2c = i2c
        self.addr = addr
        self.frame = Frame(WIDTH, HEIGHT) if framebuf is None else _BlitFrame(framebuf)
        self._next = bytearray(WIDTH * PAGES)  # the frame as pages
        self._shown = bytearray(WIDTH * PAGES)  # what the panel holds
        self._known = 0  # bit p: the panel's page p is known (its RAM is garbage after power-up)
        self._on = False
        self._dirty = 0  # bit p: page p differs from the panel
        self._want = None  # lines asked for
        self._drawn = None  # lines in self.frame
        self._cmd = bytearray(7)
        self._cmd[0] = _CTRL_CMDS
        self._cmd[1] = _SET_COL
        self._cmd[4] = _SET_PAGE
        self._data = bytearray(1)
        self._data[0] = _CTRL_DATA
        self._conv = None
        if framebuf is not None:
            src = framebuf.FrameBuffer(self.frame.buf, WIDTH, HEIGHT, framebuf.MONO_HLSB)
            dst = framebuf.FrameBuffer(self._next, WIDTH, HEIGHT, framebuf.MONO_VLSB)
            self._conv = (src, dst)
        self.bytes_sent = 0  # bytes handed to the bus (control bytes included, address bytes not)
        self.pages_sent = 0
        self.renders = 0  # frames drawn (pure-Python work: tens of ms on the board, so never redone for nothing)

    def init(self):
        """Set the panel up (display stays off until the first full frame is in its RAM: no garbage shown)."""
        self._write(_INIT)
        self._known = 0
        self._on = False
        self._dirty = _ALL

    # ---- what to show (cheap: may be called right after a tap)
    def lines(self, lines):
        if len(lines) > 4:
            raise ValueError("at most four lines on a 128x64 screen")
        self._want = list(lines)

    def result(self, result):
        self.lines(messages.screen(result))

    def idle(self, note=None):
        """The waiting screen; `note` an optional third line (e.g. "TEST KEYS" with the software SAM)."""
        ls = list(messages.IDLE)
        if note:
            ls.append(note)
        self.lines(ls)

    def out_of_service(self, status):
        self.lines(list(messages.text(status)))

    # ---- drawing (between taps only)
    def pending(self):
        """True when a draw() would change or send something."""
        return self._want != self._drawn or self._dirty != 0

    def render(self):
        """Draw the wanted lines into the frame and mark the pages that differ from the panel. No I/O."""
        if self._want is None or self._want == self._drawn:
            return
        show(self.frame, self._want)
        self._drawn = self._want
        self.renders += 1
        if self._conv is not None:
            self._conv[1].fill(0)
            self._conv[1].blit(self._conv[0], 0, 0)
        else:
            hlsb_to_pages(self.frame.buf, self._next)
        for p in range(PAGES):
            if self._changed(p) is not None:
                self._dirty |= 1 << p
            else:
                self._dirty &= ~(1 << p)

    def flush(self, max_pages=PAGES):
        """Send up to `max_pages` changed pages (each ~3 ms at 400 kHz); returns how many were sent."""
        sent = 0
        for p in range(PAGES):
            if sent >= max_pages:
                break
            if not self._dirty & (1 << p):
                continue
            span = self._changed(p)
            if span is not None:
                self._send(p, span[0], span[1])
                sent += 1
            self._dirty &= ~(1 << p)
        if self._known == _ALL and not self._on:
            self._write(bytes((_CTRL_CMDS, _DISPLAY_ON)))
            self._on = True
        return sent

    def draw(self):
        """render() then flush() everything: the app's between-taps call."""
        self.render()
        return self.flush()

    # ---- internals
    def _changed(self, p):
        """(first, last) column of page p that differs from the panel, None when it does not."""
        base = p * WIDTH
        if not self._known & (1 << p):
            return 0, WIDTH - 1
        a, b = self._next, self._shown
        if a[base:base + WIDTH] == b[base:base + WIDTH]:
            return None  # compared in C (two 128-byte copies): most pages of most redraws are unchanged
        first = -1
        for x in range(WIDTH):
            if a[base + x] != b[base + x]:
                first = x
                break
        if first < 0:
            return None
        last = WIDTH - 1
        while a[base + last] == b[base + last]:
            last -= 1
        return first, last

    def _send(self, p, c0, c1):
        c = self._cmd
        c[2] = c0
        c[3] = c1
        c[5] = p
        c[6] = p
        self._write(c)
        base = p * WIDTH
        mv = memoryview(self._next)[base + c0:base + c1 + 1]
        self.i2c.writevto(self.addr, (self._data, mv))
        self.bytes_sent += 1 + len(mv)
        self._shown[base + c0:base + c1 + 1] = mv
        self._known |= 1 << p
        self.pages_sent += 1

    def _write(self, buf):
        self.i2c.writeto(self.addr, buf)
        self.bytes_sent += len(buf)


def make_screen(i2c, addr=ADDR):
    """The board's screen, converting frames with MicroPython's framebuf."""
    import framebuf

    return Screen(i2c, addr, framebuf)
