"""Boot: build the validator from the board file (pins.py) and hand it to the service entry points.

    import pins
    from app.boot import boot
    v = boot(pins)                    # main.py: then `while True: v.step()`

Order (validator.md sections 5-6, issue 8 "The app"): CPU clock up, the journal mounted and every free sector
erased (prepare(), minutes at worst, so before the watchdog starts), the configuration (missing or bad -> None:
OOS_CONFIG, retried), the denylist it names, the PSAM (or the software SAM where HAS["psam"] is False, TEST KEYS on
screen), the RTC, the segment header, the reader, screen and feedback, then the watchdog and service.attach().
"""
from tunion.compat import const

CONFIG_PATH = "/config.json"
KEYS_PATH = "/samkeys.json"  # software SAM keys (development boards only, docs/test-keys.md)
TTC_PATH = "/samttc"
ERRLOG_PATH = "/errors.log"
_CPU_HZ = const(240000000)  # ESP32 maximum (ESP32 datasheet 3.1.1): the tap budget assumes it
_WDT_MS = const(8000)  # longer than the longest tap (validator.md section 6) and one idle erase
_JOURNAL_RESERVE = const(404 * 1024)  # vfs bytes kept free for a configuration or denylist replacement


def open_journal(header, reserve=_JOURNAL_RESERVE, root="/journal"):
    """The board's journal, mounted: FlashJournal on the `journal` partition when there is one, else FsJournal
    under `root` in the vfs with `reserve` bytes kept free (docs/journal.md gives the fallback's cost)."""
    from drivers.partition import find_journal

    dev = find_journal()
    if dev is not None:
        from tunion.flashjournal import FlashJournal

        return FlashJournal(dev, header)
    from tunion.fsjournal import FsJournal

    return FsJournal(None, header, root, 4096, reserve)


def _memo(machine):
    """The last payment kept in RTC memory over resets (drivers.rtc.RtcMemo), or None on a port without it."""
    try:
        from drivers.rtc import RtcMemo

        rtc = machine.RTC()
        rtc.memory()
        return RtcMemo(rtc)
    except (AttributeError, OSError, TypeError):
        return None


class _Fs:
    """open/rename for the error log (tunion.fsjournal.OsFs without importing the fallback journal's module)."""

    def open(self, path, mode="rb"):
        return open(path, mode)

    def rename(self, src, dst):
        import os

        os.rename(src, dst)


class ReaderPort:
    """Pn532CardPort as the loop wants it: detect() -> bool, present() -> bool, transceive(apdu),
    transceive_during(apdu, fn) (tunion.card.Purse.meanwhile)."""

    def __init__(self, port):
        self.port = port

    def detect(self):
        return self.port.detect() is not None

    def present(self):
        return not self.port.removed()

    def transceive(self, apdu):
        return self.port.transceive(apdu)

    def transceive_during(self, apdu, during):
        return self.port.transceive_during(apdu, during)  # the PSAM's next header while the card works


class ScreenPort:
    """drivers.screen.Screen as the loop wants it: show(lines) only remembers, flush() draws between taps."""

    def __init__(self, scr, note=None):
        self.scr = scr
        self.note = note  # "TEST KEYS" under the software SAM: on every screen

    def show(self, lines):
        ls = list(lines)
        if self.note and len(ls) < 4:
            ls.append(self.note)
        self.scr.lines(ls)

    def flush(self):
        if self.scr.pending():
            self.scr.draw()


def read_config(path=CONFIG_PATH, log=None):
    """The configuration with its denylist opened, or None (OOS_CONFIG) when missing or bad."""
    from tunion.config import ConfigError
    from tunion.config import read_config as _read

    try:
        c = _read(path)
    except ConfigError as e:
        if log is not None:
            log.add(0, "config", e)
        return None
    if c.denylist_file:
        from tunion.denylist import Denylist, DenylistError

        p = c.denylist_file if c.denylist_file[0] == "/" else "/" + c.denylist_file
        try:
            setattr(c, "denylist", Denylist(p))  # Config declares it None until the app opens one
        except OSError:  # none installed yet: the rules check only what there is
            pass
        except DenylistError as e:
            if log is not None:
                log.add(0, "denylist", e)
    return c


def open_sam(pins_module, log=None):
    """tunion.psam.Psam over the T=0 driver, or over the software SAM when the board has no PSAM; None when it
    does not open (OOS_SAM, retried)."""
    from tunion.psam import Psam

    try:
        if pins_module.HAS.get("psam", True):
            from drivers.psam_t0 import open_psam

            port = open_psam(pins_module.PINS, clock_hz=getattr(pins_module, "PSAM_CLOCK_HZ", 5000000),
                             uart_id=pins_module.UART["psam"])
        else:
            from tunion.softsam import FileTtcStore, SoftSam, load_keys

            f = open(KEYS_PATH, "rb")
            try:
                keys = load_keys(f.read())
            finally:
                f.close()
            port = SoftSam(keys, FileTtcStore(TTC_PATH))
        return Psam(port).open()
    except Exception as e:  # any failure here is "no PSAM": out of service, retried, logged
        if log is not None:
            log.add(0, "psam", e)
        return None


def make_header(board_id, sam, config):
    from tunion.segment import SegmentHeader

    return SegmentHeader(board_id, sam.serial if sam is not None else b"", sam.terminal if sam is not None else b"",
                         str(config.line) if config is not None else "",
                         config.vehicle if config is not None else "",
                         config.version if config is not None else 0)


def boot(pins_module, reserve=None):
    """Everything from the board file; returns the app.validator.Validator (service.attach() done). `reserve`
    (a bytearray main.py took first) is kept for the depot's session (app/service.py `_RESERVE`)."""
    import machine
    import micropython
    import time

    from app import service
    from app.errlog import ErrorLog
    from app.validator import Validator
    from drivers.rtc import make_clock

    # The board's modules first, the objects after: a module loaded after the journal's mount and the SAM found
    # its bytecode's block in a heap they had left in holes (MemoryError importing tunion.glyphs, now and then,
    # on the virtual board at its ESP32-equivalent heap).
    from drivers.pn532 import Pn532CardPort

    i2c_reader = getattr(pins_module, "PN532_BUS", "uart") == "i2c"
    if i2c_reader:
        from drivers.pn532_i2c import Pn532I2c, default_clock
    else:
        from drivers.pn532_uart import open_uart
    if pins_module.HAS.get("display"):
        import framebuf
        from drivers.screen import Screen
    if pins_module.HAS.get("buzzer"):
        from drivers.feedback import make_feedback

    try:
        machine.freq(_CPU_HZ)
    except (ValueError, OSError, AttributeError):  # a port without a settable clock
        pass
    P = pins_module.PINS
    A = pins_module.I2C_ADDR
    board_id = machine.unique_id()
    i2c = machine.I2C(0, sda=machine.Pin(P["i2c_sda"][0]), scl=machine.Pin(P["i2c_scl"][0]), freq=400000)
    # The display's three 1 KB buffers before the journal and the SAM cut the heap up (a 1 KB block failed).
    scr = Screen(i2c, A["display"], framebuf) if pins_module.HAS.get("display") else None
    log = ErrorLog(ERRLOG_PATH, fs=_Fs())
    journal = open_journal(make_header(board_id, None, None))
    journal.prepare()
    config = read_config(CONFIG_PATH, log)
    sam = open_sam(pins_module, log)
    clock = make_clock(i2c if pins_module.HAS.get("rtc") else None, A["rtc"])
    clock.boot(warm=machine.reset_cause() in (machine.SOFT_RESET, machine.WDT_RESET))
    journal.set_header(make_header(board_id, sam, config))
    if i2c_reader:  # the PN532 beside the RTC and display on I2C bus 0
        link = Pn532I2c(i2c, A["pn532"], 400000, clock=default_clock(None))
        link.set_max_retries()
    else:  # HSU, the default wiring
        link = open_uart(pins_module.UART["pn532"], P["pn532_tx"][0], P["pn532_rx"][0], P["pn532_reset"][0],
                         pins_module.PN532_BAUD_RUN)
    reader = ReaderPort(Pn532CardPort(link))
    screen = None
    if scr is not None:
        scr.init()
        screen = ScreenPort(scr, None if sam is None or not sam.test_keys else "TEST KEYS")
    feedback = None
    if pins_module.HAS.get("buzzer"):
        feedback = make_feedback(P["buzzer"][0], P["led_green"][0], P["led_red"][0])
    state = {"v": None}

    def reload():
        # The running validator's PSAM is kept unless it has none (never opened, or dropped after it failed in a
        # tap): then it is opened again.
        c = read_config(CONFIG_PATH, log)
        v = state["v"]
        s = v.sam if v is not None else sam
        if s is None:
            s = open_sam(pins_module, log)
        journal.set_header(make_header(board_id, s, c))
        if screen is not None:
            screen.note = None if s is None or not s.test_keys else "TEST KEYS"
        return c, s

    wdt = machine.WDT(timeout=_WDT_MS)
    v = Validator(reader, sam, journal, config, clock, screen=screen, feedback=feedback, wdt=wdt, log=log,
                  kbd=micropython.kbd_intr, retry=reload, ticks=time.ticks_ms, memo=_memo(machine))
    state["v"] = v
    service.attach(v, board=pins_module.NAME, board_id=board_id.hex() if hasattr(board_id, "hex") else board_id,
                   config_path=CONFIG_PATH, keys_path=KEYS_PATH, ttc_path=TTC_PATH,
                   reset_cause=machine.reset_cause(), log=log,
                   reload=reload, dev_board=not pins_module.HAS.get("psam", True))
    service.reserve(reserve)
    return v
