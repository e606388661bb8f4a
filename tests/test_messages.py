"""Messages: every outcome has a Chinese and an English line and a beep, drawn within 128x64 by shipped glyphs."""
import os
import subprocess
import sys

import pytest

from tunion import messages, outcome as O
from tunion.display import Frame, show, fits, WIDTH
from tunion.glyphs import glyph, width, missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _results():
    """A result per status, with the largest amounts a screen must hold."""
    for s in O.ALL:
        yield O.Result(s, fare=99999, balance=99999999)
        yield O.Result(s, fare=0, balance=0)
        yield O.Result(s)


def test_every_outcome_has_lines_and_a_known_beep():
    for s in O.ALL:
        zh, en = messages.text(s)
        assert zh and en
        assert messages.beep(s) in messages.BEEPS
    assert messages.beep(O.PAID) == messages.ACCEPTED
    assert messages.beep(O.IGNORED_REPEAT) == messages.SILENT and messages.BEEPS[messages.SILENT] == ()
    assert messages.beep(O.TAP_AGAIN) == messages.TAP_AGAIN
    for s in O.REFUSALS:
        assert messages.beep(s) == messages.REFUSED
    for s in O.OUT_OF_SERVICE:
        assert messages.beep(s) == messages.OUT_OF_SERVICE
    with pytest.raises(KeyError):
        messages.text("NOT_A_STATUS")


def test_refusals_are_told_apart():
    # A passenger must be able to tell why: no two refusals share a line.
    zh = [messages.text(s)[0] for s in O.REFUSALS]
    en = [messages.text(s)[1] for s in O.REFUSALS]
    assert len(set(zh)) == len(zh) and len(set(en)) == len(en)


def test_yuan_formatting_is_integer_exact():
    assert messages.yuan(200) == "\u00a52.00"
    assert messages.yuan(5) == "\u00a50.05"
    assert messages.yuan(0) == "\u00a50.00"
    assert messages.yuan(4800) == "\u00a548.00"
    assert messages.yuan(-150) == "-\u00a51.50"
    assert messages.screen(O.Result(O.PAID, 200, 4800)) == ["扣款成功", "Paid", "扣款 ¥2.00", "余额 ¥48.00"]
    assert messages.screen(O.Result(O.REFUSED_INSUFFICIENT, balance=50))[2:] == ["余额 ¥0.50"]
    assert messages.screen(O.Result(O.REFUSED_EXPIRED, balance=50))[2:] == []


def test_every_character_has_a_shipped_glyph():
    assert missing(messages.all_text()) == ""
    assert glyph("你") is None  # the set is a subset, not a whole font
    assert glyph("A")[0] == 8 and len(glyph("A")[1]) == 16
    assert glyph("额")[0] == 16 and len(glyph("额")[1]) == 32


@pytest.mark.parametrize("status", O.ALL)
def test_every_screen_draws_inside_128x64(status):
    for r in _results():
        if r.status != status:
            continue
        lines = messages.screen(r)
        assert fits(lines), [(s, width(s)) for s in lines]
        fb = Frame()
        show(fb, lines)
        assert fb.clipped == 0
        # Each row has ink, and the ink is where the glyphs are, centred.
        for row, s in enumerate(lines):
            ink = [x for x in range(WIDTH) for y in range(row * 16, row * 16 + 16) if fb.pixel(x, y)]
            assert ink, s
            left = (WIDTH - width(s)) // 2
            assert min(ink) >= left and max(ink) < left + width(s)


def test_drawing_uses_the_glyph_bits():
    fb = Frame()
    fb.text("扣", 0, 0)
    bits = glyph("扣")[1]
    for y in range(16):
        for x in range(16):
            assert fb.pixel(x, y) == (1 if bits[y * 2 + (x >> 3)] & (0x80 >> (x & 7)) else 0)
    # A character outside the set draws a box, so a missing glyph is visible in a test picture.
    fb2 = Frame()
    fb2.text("你", 0, 0)
    assert fb2.pixel(1, 1) == 1 and fb2.pixel(7, 7) == 0


def test_wider_than_the_screen_is_caught():
    assert not fits(["扣款成功扣款成功扣"])
    assert not fits(["a", "b", "c", "d", "e"])
    fb = Frame()
    fb.text("扣款成功扣款成功扣", 0, 0)
    assert fb.clipped > 0


@pytest.mark.skipif(not os.path.exists("/usr/share/unifont/unifont.hex"), reason="unifont not installed")
def test_shipped_glyphs_match_the_font_and_messages():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_glyphs.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_documented_message_table_matches_the_firmware():
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as fh:
        rows = [line.split("|")[1:5] for line in fh if line.startswith("| ") and line.count("|") == 5]
    documented = {r[0].strip(): (r[1].strip(), r[2].strip(), r[3].strip()) for r in rows if r[0].strip() in O.ALL}
    assert documented == {s: messages.text(s) + (messages.beep(s),) for s in O.ALL}
