"""A tiny 1-bit frame buffer and the screen layout: what a 128x64 display shows for a tap result.

    fb = Frame(); show(fb, screen(result)); fb.pixel(0, 0) -> 0 or 1; fb.buf -> 1024 bytes, MONO_HLSB

Pure Python so the host tests draw exactly what the board draws; on the board a driver copies `buf` to the panel
(or blits the same glyph bytes with MicroPython's framebuf, which reads MONO_HLSB too). Lines are centred,
one 16 px row each, at most four.
"""
from tunion.compat import const
from tunion.glyphs import glyph, width, HEIGHT

WIDTH = const(128)
ROWS = const(4)  # 64 px / 16 px


class Frame:
    """MONO_HLSB: row-major, 8 pixels per byte, most significant bit leftmost."""

    def __init__(self, w=WIDTH, h=64):
        self.width = w
        self.height = h
        self.stride = (w + 7) // 8
        self.buf = bytearray(self.stride * h)
        self.clipped = 0  # pixels that fell outside: a layout test asserts none did

    def fill(self, c):
        v = 0xFF if c else 0
        for i in range(len(self.buf)):
            self.buf[i] = v

    def pixel(self, x, y, c=None):
        if not (0 <= x < self.width and 0 <= y < self.height):
            if c is None:
                return 0
            if c:
                self.clipped += 1
            return None
        i = y * self.stride + (x >> 3)
        m = 0x80 >> (x & 7)
        if c is None:
            return 1 if self.buf[i] & m else 0
        if c:
            self.buf[i] |= m
        else:
            self.buf[i] &= ~m & 0xFF
        return None

    def blit(self, bits, w, h, x, y):
        """Draw a MONO_HLSB bitmap (set pixels only)."""
        stride = (w + 7) // 8
        for r in range(h):
            for cx in range(w):
                if bits[r * stride + (cx >> 3)] & (0x80 >> (cx & 7)):
                    self.pixel(x + cx, y + r, 1)

    def box(self, x, y, w, h):
        for i in range(w):
            self.pixel(x + i, y, 1)
            self.pixel(x + i, y + h - 1, 1)
        for j in range(h):
            self.pixel(x, y + j, 1)
            self.pixel(x + w - 1, y + j, 1)

    def text(self, s, x, y):
        """Draw a line; a character without a glyph becomes a hollow box. Returns the x after it."""
        for ch in s:
            g = glyph(ch)
            if g is None:
                self.box(x + 1, y + 1, 14, HEIGHT - 2)
                x += 16
            else:
                self.blit(g[1], g[0], HEIGHT, x, y)
                x += g[0]
        return x

    def lit(self):
        n = 0
        for b in self.buf:
            while b:
                n += b & 1
                b >>= 1
        return n


def fits(lines, w=WIDTH):
    """True when the lines fit the screen: at most four rows, each at most `w` px wide."""
    if len(lines) > ROWS:
        return False
    for s in lines:
        if width(s) > w:
            return False
    return True


def show(fb, lines):
    """Clear the frame and draw the lines centred, one 16 px row each."""
    fb.fill(0)
    y = 0
    for s in lines[:ROWS]:
        x = (fb.width - width(s)) // 2
        fb.text(s, x if x > 0 else 0, y)
        y += HEIGHT
