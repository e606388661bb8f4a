"""`tunion-depot flash` without hardware: the image checks, the board's partition table patched into the image
(checked against a hand-made encoding and against the layout the virtual board reads), the refusals from a real
service.status(), the TTC floor on the software SAM's store, and the esptool calls in their order.

No ESP32 is attached here, so esptool's functions are replaced by a recorder (EsptoolRecorder below): this is
the one place in the project a stand-in is allowed, and it stands only for esptool's chip I/O.
"""
import hashlib
import json
import struct

import pytest

from host_tools import flash, parttable
from host_tools.errors import DepotError
from vboard.virtual import read_partitions

ROOT = flash.ROOT
CSV = ROOT / "boards" / "esp32-generic" / "partitions.csv"
_E = struct.Struct("<2sBBLL16sL")


def hand_table(rows):
    """The partition-table binary written out by hand from ESP-IDF's format (independent of parttable):
    rows are (label, type, subtype, offset, size)."""
    out = bytearray()
    for label, t, s, off, size in rows:
        out += b"\xaa\x50" + bytes([t, s]) + off.to_bytes(4, "little") + size.to_bytes(4, "little")
        out += label.encode().ljust(16, b"\x00") + b"\x00\x00\x00\x00"
    out += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(bytes(out)).digest()
    return bytes(out) + b"\xff" * (0xC00 - len(out))


# MicroPython's ports/esp32/partitions-4MiB.csv, the table inside an ESP32_GENERIC image
MP_DEFAULT = [("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000),
              ("factory", 0, 0, 0x10000, 0x1F0000), ("vfs", 1, 0x81, 0x200000, 0x200000)]
GENERIC = [("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000),
           ("factory", 0, 0, 0x10000, 0x1F0000), ("vfs", 1, 0x81, 0x200000, 0x120000),
           ("journal", 1, 0x40, 0x320000, 0xE0000)]


def esp_header(chip_id, segments=3):
    """esp_image_header_t (ESP-IDF esp_app_format.h): magic, segment count, SPI mode, size/freq, entry, then the
    extended header: WP pin, drive settings, chip_id (u16 at byte 12), min revision..."""
    h = bytes([0xE9, segments, 2, 0x20]) + (0x40080000).to_bytes(4, "little")
    h += bytes([0xEE, 0, 0, 0]) + chip_id.to_bytes(2, "little") + bytes(10)
    return h


def mp_image(chip_id=0, app_len=0x1000, table=None):
    """A merged image for 0x1000 laid out as MicroPython's ESP32_GENERIC .bin: bootloader, its table at file
    offset 0x7000, the app at 0xF000 (flash 0x10000)."""
    img = bytearray(b"\xff" * 0xF000)
    img[0:24] = esp_header(chip_id)
    img[24:64] = bytes(range(40))
    img[0x7000:0x7C00] = hand_table(MP_DEFAULT) if table is None else table
    app = bytearray(esp_header(chip_id, 5)) + bytes((i * 7) & 0xFF for i in range(app_len - 24))
    return bytes(img + app)


# ---- the partition table -----------------------------------------------------------------------------------

def test_the_encoder_writes_the_boards_table_as_esp_idf_lays_it_out():
    rows = parttable.read_csv(CSV)
    blob = parttable.encode(rows)
    assert blob == hand_table(GENERIC)
    assert len(blob) == 0xC00 and blob[5 * 32:5 * 32 + 2] == b"\xeb\xeb"
    # the same layout the virtual board gives its esp32.Partition stand-in
    assert [[p.type, p.subtype, p.offset, p.size, p.label] for p in parttable.decode(blob)] == read_partitions(CSV)
    assert parttable.decode(blob) == rows


def test_a_damaged_table_and_a_bad_csv_are_refused_in_one_line():
    blob = bytearray(parttable.encode(parttable.read_csv(CSV)))
    blob[40] ^= 1  # a bit of the second entry's offset
    with pytest.raises(DepotError, match="MD5 row does not match"):
        parttable.decode(bytes(blob))
    with pytest.raises(DepotError, match="overlap"):
        parttable.parse_csv("a, data, nvs, 0x9000, 0x2000\nb, data, nvs, 0xA000, 0x1000\n")
    with pytest.raises(DepotError, match="0x10000 boundary"):
        parttable.parse_csv("factory, app, factory, 0x11000, 0x100000\n")
    with pytest.raises(DepotError, match="outside"):
        parttable.parse_csv("vfs, data, fat, 0x300000, 0x200000\n")
    with pytest.raises(DepotError, match="give the offset"):
        parttable.parse_csv("vfs, data, fat, , 0x200000\n")


# ---- the image ---------------------------------------------------------------------------------------------

def test_the_boards_table_is_patched_into_the_image_and_nothing_else_changes():
    img = mp_image()
    plan = flash.prepare_image(img, "esp32-generic")
    assert len(plan.image) == len(img)
    assert plan.image[0x7000:0x7C00] == hand_table(GENERIC)
    assert plan.image[:0x7000] == img[:0x7000] and plan.image[0x7C00:] == img[0x7C00:]
    assert [p.label for p in plan.image_rows] == ["nvs", "phy_init", "factory", "vfs"]  # the image's own


@pytest.mark.parametrize("data, match", [
    (b"PK\x03\x04" + bytes(0x10000), "not an ESP32 image .first byte 0x50"),
    (b"", "not an ESP32 image .first byte missing"),
    (mp_image(chip_id=9), "image for the ESP32-S3 .chip ID 9., board esp32-generic is an ESP32 .chip ID 0."),
    (mp_image(chip_id=5), "image for the ESP32-C3 .chip ID 5."),
    (mp_image()[:0x5000], "too short"),
    (mp_image(table=b"\xff" * 0xC00), "no partition table at file offset 0x7000"),
    (mp_image(app_len=0x1F0001), "takes 2031617 bytes, esp32-generic's factory partition holds 2031616"),
], ids=["zip", "empty", "s3", "c3", "bootloader-only", "app-bin", "too-big"])
def test_an_image_that_is_not_for_this_board_is_refused_before_the_chip_is_touched(data, match, monkeypatch):
    rec = EsptoolRecorder()
    monkeypatch.setattr(flash, "_esptool", lambda: rec)
    with pytest.raises(DepotError, match=match) as e:
        flash.prepare_image(data, "esp32-generic")
    assert e.value.code == 2 and "\n" not in str(e.value)
    assert rec.calls == []


def test_the_cli_refuses_a_wrong_image_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from host_tools import cli

    rec = EsptoolRecorder()
    monkeypatch.setattr(flash, "_esptool", lambda: rec)
    monkeypatch.setattr(cli, "COMMANDS", (("host_tools.flash", "flash_cmd"),))
    bad = tmp_path / "ESP32_GENERIC_S3.bin"
    bad.write_bytes(mp_image(chip_id=9))
    code = cli.run(["--port", str(tmp_path / "no-such-port"), "flash", str(bad), "--board", "esp32-generic"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ESP32-S3" in err and "micropython.org/download" in err
    assert rec.calls == []
    missing = cli.run(["--port", "x", "flash", str(tmp_path / "nope.bin")])
    assert missing == 2 and "cannot read" in capsys.readouterr().err


# ---- refusals from the board's own status ------------------------------------------------------------------

def test_flash_refuses_while_records_wait_or_a_torn_tap_is_inside_the_recovery_window():
    from test_app_loop import _app

    from app import service
    from sim import keys
    from sim.card import AFTER, make_card

    rig, reader, v, scr, fb = _app()
    service.attach(v, board="esp32-generic", board_id="00", log=v.log)
    a = make_card(balance=5000)
    a.tear_on_ins(0x54, AFTER)  # the debit reached the card, the answer did not: unresolved
    reader.place(a)
    v.step()
    reader.lift()
    v.step()
    b = make_card(card_no=keys.TEST_CARD_NO + 9, balance=5000)
    reader.place(b)
    v.step()
    st = json.loads(json.dumps(service.status()))  # as it arrives over the link
    assert st["recovery_window_s"] == 600
    why = flash.refusals(st)
    assert len(why) == 2 and "records wait to be pulled" in why[0] and "recovery window" in why[1]
    assert str(a.card_no) in why[1]
    service.ack(st["next_seq"] - 1)
    st = service.status()
    assert st["records_waiting"] == 0 and st["unresolved"]
    assert len(flash.refusals(st)) == 1  # the torn tap still holds the flash
    rig.advance(601 * 1000)
    assert flash.refusals(service.status()) == []  # past the window: the depot settles it with clearing


def test_raise_ttc_moves_the_software_sams_store_past_what_the_depot_saw(tmp_path):
    from test_app_loop import _app

    from app import service
    from tunion.softsam import FileTtcStore

    rig, reader, v, scr, fb = _app()
    path = str(tmp_path / "samttc")
    service.attach(v, board="esp32-devkit", board_id="00", ttc_path=path, dev_board=True)
    assert service.raise_ttc(5000) == {"ok": True, "ttc_next": 5000}
    assert FileTtcStore(path).reserve(32) == 5000
    assert service.raise_ttc(100) == {"ok": True, "ttc_next": 5032}  # never lowered
    service.attach(v, board="esp32-generic", board_id="00", ttc_path=path)
    assert service.raise_ttc(9000)["error"] == "refused"


# ---- esptool, in order -------------------------------------------------------------------------------------

class _Port:
    def __init__(self, log):
        self.log = log

    def close(self):
        self.log.append(("close_port",))


class _Esp:
    def __init__(self, log, chip):
        self.CHIP_NAME = chip
        self._port = _Port(log)

    def read_mac(self):
        return (0x24, 0x0A, 0xC4, 0x00, 0x00, 0x01)


class EsptoolRecorder:
    """Stands in for the esptool module (esptool 5's API, esptool/cmds.py): records each call and its arguments;
    read_flash answers with `chip_table` (what is at 0x8000 on the pretend chip)."""

    def __init__(self, chip="ESP32", chip_table=None):
        self.calls = []
        self.chip = chip
        self.chip_table = chip_table if chip_table is not None else hand_table(MP_DEFAULT)

    def detect_chip(self, port, baud):
        self.calls.append(("detect_chip", port, baud))
        return _Esp(self.calls, self.chip)

    def run_stub(self, esp):
        self.calls.append(("run_stub",))
        return esp

    def attach_flash(self, esp):
        self.calls.append(("attach_flash",))

    def read_flash(self, esp, address, size):
        self.calls.append(("read_flash", address, size))
        return self.chip_table

    def write_flash(self, esp, addr_data):
        self.calls.append(("write_flash", [(a, len(d), hashlib.sha256(d).hexdigest()) for a, d in addr_data]))

    def verify_flash(self, esp, addr_data):
        self.calls.append(("verify_flash", [(a, len(d), hashlib.sha256(d).hexdigest()) for a, d in addr_data]))

    def erase_region(self, esp, address, size):
        self.calls.append(("erase_region", address, size))

    def reset_chip(self, esp, mode):
        self.calls.append(("reset_chip", mode))


def _write(plan, rec):
    return flash.write_chip("/dev/ttyUSB9", plan, 115200, api=rec,
                            floors=lambda bid: rec.calls.append(("floors", bid)) or (41, 7))


def test_esptool_writes_verifies_and_resets_in_order_when_the_table_is_already_the_boards():
    plan = flash.prepare_image(mp_image(), "esp32-generic")
    rec = EsptoolRecorder(chip_table=hand_table(GENERIC))
    res = _write(plan, rec)
    img = [(0x1000, len(plan.image), hashlib.sha256(plan.image).hexdigest())]
    assert rec.calls == [("detect_chip", "/dev/ttyUSB9", 115200), ("run_stub",), ("attach_flash",),
                         ("read_flash", 0x8000, 0xC00), ("write_flash", img), ("verify_flash", img),
                         ("reset_chip", "hard-reset"), ("close_port",)]
    assert res["layout_changed"] is False and res["board_id"] == "240ac4000001" and res["floors"] is None


def test_a_change_of_layout_reads_the_floors_first_then_erases_the_first_vfs_sector_and_the_moved_journal():
    plan = flash.prepare_image(mp_image(), "esp32-generic")
    rec = EsptoolRecorder()  # the chip still has MicroPython's default table
    res = _write(plan, rec)
    names = [c[0] for c in rec.calls]
    assert names == ["detect_chip", "run_stub", "attach_flash", "read_flash", "floors", "write_flash",
                     "verify_flash", "erase_region", "erase_region", "reset_chip", "close_port"]
    assert rec.calls[4] == ("floors", "240ac4000001")
    assert rec.calls[7:9] == [("erase_region", 0x200000, 0x1000), ("erase_region", 0x320000, 0xE0000)]
    assert res["layout_changed"] and res["floors"] == (41, 7)


def test_a_depot_database_that_cannot_answer_stops_the_flash_before_anything_is_written():
    plan = flash.prepare_image(mp_image(), "esp32-generic")
    rec = EsptoolRecorder()

    def floors(bid):
        raise DepotError("database locked")

    with pytest.raises(DepotError, match="database locked"):
        flash.write_chip("/dev/ttyUSB9", plan, api=rec, floors=floors)
    assert "write_flash" not in [c[0] for c in rec.calls] and rec.calls[-1] == ("close_port",)


def test_another_chip_on_the_port_is_refused_before_the_stub_runs():
    plan = flash.prepare_image(mp_image(), "esp32-generic")
    rec = EsptoolRecorder(chip="ESP32-S3")
    with pytest.raises(DepotError, match="is an ESP32-S3, board esp32-generic is an ESP32: nothing written"):
        _write(plan, rec)
    assert [c[0] for c in rec.calls] == ["detect_chip", "close_port"]


def test_a_board_that_does_not_answer_is_not_flashed_unless_forced(tmp_path, monkeypatch, capsys):
    from host_tools import cli

    rec = EsptoolRecorder(chip_table=hand_table(GENERIC))
    monkeypatch.setattr(flash, "_esptool", lambda: rec)
    monkeypatch.setattr(cli, "COMMANDS", (("host_tools.flash", "flash_cmd"),))
    img = tmp_path / "ESP32_GENERIC.bin"
    img.write_bytes(mp_image())
    port = str(tmp_path / "no-such-port")
    assert cli.run(["--port", port, "flash", str(img)]) == 1
    err = capsys.readouterr().err
    assert "cannot read the board's status" in err and "--force" in err and err.count("\n") == 1
    assert rec.calls == []
    assert cli.run(["--port", port, "flash", str(img), "--force"]) == 0  # a new board: esptool alone
    assert [c[0] for c in rec.calls][-3:] == ["verify_flash", "reset_chip", "close_port"]
    assert "flashed esp32-generic (ESP32, board id 240ac4000001)" in capsys.readouterr().out
