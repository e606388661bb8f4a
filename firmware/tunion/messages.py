"""What the passenger sees and hears for every outcome: a Chinese line, an English line, a beep pattern.

    zh, en = text(PAID)            # ("扣款成功", "Paid")
    beep(REFUSED_EXPIRED)          # "refused" -> BEEPS["refused"] = on/off durations in ms
    screen(result)                 # ["扣款成功", "Paid", "扣款 ¥2.00", "余额 ¥48.00"]

Every line fits a 128x64 display drawn with the shipped glyphs (tunion/glyphs.py): a Chinese character is 16 px
wide, an ASCII character 8 px, four 16 px rows. Only characters in the glyph set may appear here
(tools/make_glyphs.py builds the set from this module; tests draw every screen).
"""
from tunion import outcome as O

ACCEPTED = "accepted"
REFUSED = "refused"
TAP_AGAIN = "tap_again"
OUT_OF_SERVICE = "out_of_service"
SILENT = "silent"  # IGNORED_REPEAT: validator.md s.2 "no beep"

# Buzzer patterns: alternating on/off durations in ms, starting with "on".
BEEPS = {
    ACCEPTED: (120,),
    REFUSED: (80, 60, 80, 60, 80),
    TAP_AGAIN: (300, 150, 300),
    OUT_OF_SERVICE: (800,),
    SILENT: (),
}

# status: (Chinese line, English line, beep pattern)
_TABLE = {
    O.PAID: ("扣款成功", "Paid", ACCEPTED),
    O.PAID_RECOVERED: ("扣款成功", "Paid (recovered)", ACCEPTED),
    O.IGNORED_REPEAT: ("已刷卡", "Already tapped", SILENT),
    O.TAP_AGAIN: ("请重新刷卡", "Tap card again", TAP_AGAIN),
    O.REFUSED_BLOCKED: ("卡已锁定", "Card blocked", REFUSED),
    O.REFUSED_NOT_ENABLED: ("卡未启用", "Card not enabled", REFUSED),
    O.REFUSED_EXPIRED: ("卡已过期", "Card expired", REFUSED),
    O.REFUSED_NOT_YET_VALID: ("卡未到启用日期", "Not yet valid", REFUSED),
    O.REFUSED_DENYLISTED: ("黑名单卡", "Card denylisted", REFUSED),
    O.REFUSED_ALREADY_PAID: ("本线路已付费", "Already paid", REFUSED),
    O.REFUSED_INSUFFICIENT: ("余额不足", "Balance too low", REFUSED),
    O.REFUSED_UNSUPPORTED: ("不支持此卡", "Card unsupported", REFUSED),
    O.CARD_ERROR: ("读卡失败", "Card read error", TAP_AGAIN),
    O.OOS_CLOCK: ("暂停服务 时钟", "Clock not set", OUT_OF_SERVICE),
    O.OOS_RECORDS_FULL: ("暂停服务 存储满", "Records full", OUT_OF_SERVICE),
    O.OOS_CONFIG: ("暂停服务 配置", "No configuration", OUT_OF_SERVICE),
    O.OOS_SAM: ("暂停服务 PSAM", "PSAM failure", OUT_OF_SERVICE),
    O.MAC2_REJECTED: ("请找司机", "See the driver", REFUSED),
}

IDLE = ("请刷卡", "Please tap card")
FARE_LABEL = "扣款"
BALANCE_LABEL = "余额"
YUAN = "\u00a5"  # ¥, an 8 px glyph


def text(status):
    """(Chinese line, English line) for an outcome status; KeyError for a status outside outcome.ALL."""
    t = _TABLE[status]
    return t[0], t[1]


def beep(status):
    """The beep pattern's name for an outcome status (a key of BEEPS)."""
    return _TABLE[status][2]


def yuan(fen):
    """Integer fen as yuan text: 200 -> "¥2.00", 5 -> "¥0.05" (no floats: the ESP32's are single precision)."""
    sign = ""
    if fen < 0:
        sign = "-"
        fen = -fen
    return "%s%s%d.%02d" % (sign, YUAN, fen // 100, fen % 100)


def amount_lines(result):
    """The fare and balance lines for a result: after a payment both, for an insufficient balance the balance
    (when the card told it), otherwise none."""
    out = []
    if result.status in (O.PAID, O.PAID_RECOVERED):
        if result.fare is not None:
            out.append(FARE_LABEL + " " + yuan(result.fare))
        if result.balance is not None:
            out.append(BALANCE_LABEL + " " + yuan(result.balance))
    elif result.status == O.REFUSED_INSUFFICIENT and result.balance is not None:
        out.append(BALANCE_LABEL + " " + yuan(result.balance))
    return out


def screen(result):
    """All the lines to show for a result, at most four (one 16 px row each)."""
    zh, en = text(result.status)
    return [zh, en] + amount_lines(result)


def all_text():
    """Every character these messages can show (tools/make_glyphs.py and the tests use it)."""
    s = IDLE[0] + IDLE[1] + FARE_LABEL + BALANCE_LABEL + YUAN + "0123456789.- "
    for k in _TABLE:
        s += _TABLE[k][0] + _TABLE[k][1]
    return s
