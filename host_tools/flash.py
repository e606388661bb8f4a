"""`tunion-depot flash`: write a MicroPython image with the board's own partition table patched in, verify it, and
after a change of layout start the board's flash over without ever repeating a sequence number or a TTC.

    tunion-depot --port /dev/ttyUSB0 flash ESP32_GENERIC-20260406-v1.29.0.bin --board esp32-generic

    from host_tools.flash import prepare_image
    plan = prepare_image(Path("ESP32_GENERIC.bin").read_bytes(), "esp32-generic")  # checks, patches; no board
    plan.image[0x7000:0x7C00] == plan.table                                         # the board's own table

Order (notes/depot.md "Flashing", boards/esp32-generic/README.md): 1. check the image offline (ESP32 magic 0xE9,
the chip ID at bytes 12-13, a merged image for 0x1000 with a partition table at file offset 0x7000, the app
fitting the board's factory partition) and patch boards/<board>/partitions.csv into it, so image and table never
disagree; 2. unless --force, ask the running app (service.status) and refuse while records wait to be pulled or
an unresolved intent is younger than the recovery window (its card may still come back to be recovered);
3. esptool 5's API: detect_chip -> run_stub -> attach_flash -> read the table on the chip (read_flash 0x8000) ->
write_flash -> verify_flash -> on a change of layout erase_region(first vfs sector) and the journal partition
if it moved -> reset_chip; 4. after a change of layout the vfs is blank: deploy the application, then raise the
journal's sequence floor past the last sequence the depot stored (and, on a board without a PSAM, the software
SAM's TTC floor past the last TTC it stored), so no number repeats (validator.md section 4).
"""
import ast
import struct
import time
from pathlib import Path

import click

from host_tools import parttable
from host_tools.errors import DepotError

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ROOT / "boards"
IMAGE_OFFSET = 0x1000  # where the ESP32's merged MicroPython image starts (the second-stage bootloader)
TABLE_IN_IMAGE = parttable.TABLE_OFFSET - IMAGE_OFFSET  # 0x7000
SECTOR = 0x1000
_ESP_MAGIC = 0xE9  # esp_image_header_t.magic (ESP-IDF bootloader_support/include/esp_app_format.h)
_CHIP_IDS = {0: "esp32", 2: "esp32s2", 5: "esp32c3", 9: "esp32s3", 12: "esp32c2", 13: "esp32c6", 16: "esp32h2"}
_CHIP_NAMES = {"esp32": "ESP32", "esp32s2": "ESP32-S2", "esp32c3": "ESP32-C3", "esp32s3": "ESP32-S3",
               "esp32c2": "ESP32-C2", "esp32c6": "ESP32-C6", "esp32h2": "ESP32-H2"}
_CST = 8 * 3600
RECOVERY_WINDOW_S = 600  # tunion.config RECOVERY_WINDOW_S: when the board's status does not say
DOWNLOAD = "https://micropython.org/download/ESP32_GENERIC/ (the .bin, not the .app-bin)"


class Board:
    """What the depot knows of a board type from boards/<name>/: chip, flash size, dev board, its table rows."""

    def __init__(self, name):
        folder = BOARDS / name
        pins = folder / "pins.py"
        if not pins.is_file():
            known = ", ".join(sorted(p.name for p in BOARDS.iterdir() if (p / "pins.py").is_file()))
            raise DepotError("no board %r (boards/: %s)" % (name, known), code=2)
        v = {}
        for node in ast.parse(pins.read_text(encoding="utf-8")).body:  # plain data: read it, never run it
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    v[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
        self.name = name
        self.chip = v.get("CHIP", "esp32")
        self.flash_size = v.get("FLASH_MB", 4) * 1024 * 1024
        self.dev_board = not v.get("HAS", {}).get("psam", True)
        # esp32-devkit and esp32-pn532-i2c say in their READMEs: "use esp32-generic's partitions.csv"
        csv = folder / "partitions.csv"
        self.csv = csv if csv.is_file() else BOARDS / "esp32-generic" / "partitions.csv"
        self.rows = parttable.read_csv(self.csv, self.flash_size)
        self.table = parttable.encode(self.rows)
        self.vfs = parttable.find(self.rows, "vfs")
        self.journal = parttable.find(self.rows, "journal")
        if self.vfs is None:
            raise DepotError("%s: no `vfs` partition (MicroPython's filesystem)" % self.csv, code=2)


class Plan:
    """A checked image with the board's table in it: `image` (bytes for IMAGE_OFFSET), `table`, `board`."""

    def __init__(self, image, board, image_rows):
        self.image = image
        self.board = board
        self.table = board.table
        self.image_rows = image_rows


def prepare_image(data, board_name, source="the image"):
    """Check a MicroPython image for board_name's chip and patch the board's table in; DepotError (code 2) when
    it is not an ESP32 image, is for another chip, or is not a merged image for 0x1000."""
    board = board_name if isinstance(board_name, Board) else Board(board_name)
    data = bytes(data)
    want = board.chip
    if len(data) < 24 or data[0] != _ESP_MAGIC:
        raise DepotError("%s is not an ESP32 image (first byte %s, an image starts with 0xE9): download %s" % (
            source, "0x%02X" % data[0] if data else "missing", DOWNLOAD), code=2)
    (chip_id,) = struct.unpack_from("<H", data, 12)  # esp_image_header_t.chip_id
    chip = _CHIP_IDS.get(chip_id, "chip ID %d" % chip_id)
    if chip != want:
        raise DepotError("%s is an image for the %s (chip ID %d), board %s is an %s (chip ID %d): download %s" % (
            source, _CHIP_NAMES.get(chip, chip), chip_id, board.name, _CHIP_NAMES[want],
            [k for k, n in _CHIP_IDS.items() if n == want][0], DOWNLOAD), code=2)
    if len(data) < TABLE_IN_IMAGE + parttable.TABLE_SIZE:
        raise DepotError("%s (%d bytes) is too short for a merged image with a partition table at 0x%x: it is a "
                         "bootloader or an .app-bin; download %s" % (source, len(data), TABLE_IN_IMAGE, DOWNLOAD),
                         code=2)
    try:
        own = parttable.decode(data[TABLE_IN_IMAGE:TABLE_IN_IMAGE + parttable.TABLE_SIZE])
    except DepotError:
        raise DepotError("%s has no partition table at file offset 0x%x: not a merged image for offset 0x1000 "
                         "(an .app-bin?); download %s" % (source, TABLE_IN_IMAGE, DOWNLOAD), code=2) from None
    app = next((p for p in own if p.type == 0), None)
    factory = next((p for p in board.rows if p.type == 0), None)
    if app is None or factory is None:
        raise DepotError("%s or %s has no app partition" % (source, board.csv.name), code=2)
    if app.offset != factory.offset:
        raise DepotError("%s puts MicroPython at 0x%x, %s's table at 0x%x: they must agree" % (
            source, app.offset, board.name, factory.offset), code=2)
    at = app.offset - IMAGE_OFFSET
    if len(data) <= at or data[at] != _ESP_MAGIC:
        raise DepotError("%s has no application image at 0x%x" % (source, app.offset), code=2)
    if len(data) - at > factory.size:
        raise DepotError("MicroPython in %s takes %d bytes, %s's %s partition holds %d" % (
            source, len(data) - at, board.name, factory.label, factory.size), code=2)
    image = data[:TABLE_IN_IMAGE] + board.table + data[TABLE_IN_IMAGE + parttable.TABLE_SIZE:]
    return Plan(image, board, own)


def refusals(status, now_cst=None):
    """Why flashing now would lose something (service.status()), as one-line reasons; [] when it is safe."""
    out = []
    if status.get("records_waiting"):
        out.append("%d records wait to be pulled: run `tunion-depot pull` first" % status["records_waiting"])
    if status.get("open_intent") is not None:
        out.append("intent %d is still open (a tap in progress)" % status["open_intent"])
    window = status.get("recovery_window_s") or RECOVERY_WINDOW_S
    now = status.get("clock") if status.get("clock_valid") else None
    if now is None:
        now = now_cst if now_cst is not None else int(time.time()) + _CST
    for u in status.get("unresolved") or ():
        age = now - u["time"]
        if age < window:
            out.append("unresolved intent %d (card %s) is %d s old, inside the %d s recovery window: its card may "
                       "come back to be recovered" % (u["seq"], u["card"], age, window))
    return out


def _esptool():
    import esptool

    return esptool


def write_chip(port, plan, baud=115200, floors=None, api=None, echo=None):
    """Write plan.image at 0x1000 with esptool and verify it; on a change of layout also erase the first vfs
    sector (and the journal partition when it moved). floors(board_id) is called before anything is written
    when the layout changes (so a depot database that cannot answer stops the flash). Returns
    {"board_id", "chip", "layout_changed", "erased": [(offset, size)], "floors": ...}."""
    es = api or _esptool()
    say = echo or (lambda s: None)
    board = plan.board
    from esptool.util import FatalError

    try:
        esp = es.detect_chip(port, baud)
        try:
            if esp.CHIP_NAME != _CHIP_NAMES[board.chip]:
                raise DepotError("the chip on %s is an %s, board %s is an %s: nothing written" % (
                    port, esp.CHIP_NAME, board.name, _CHIP_NAMES[board.chip]), code=2)
            esp = es.run_stub(esp)
            es.attach_flash(esp)
            board_id = bytes(esp.read_mac()).hex()
            old = es.read_flash(esp, parttable.TABLE_OFFSET, parttable.TABLE_SIZE)
            changed = bytes(old) != board.table
            erase = []
            if changed:
                erase.append((board.vfs.offset, SECTOR))
                try:
                    old_rows = parttable.decode(old)
                except DepotError:
                    old_rows = []
                j = board.journal
                if j is not None and parttable.find(old_rows, j.label) != j:
                    erase.append((j.offset, j.size))
            got = floors(board_id) if (changed and floors is not None) else None
            say("writing %d bytes at 0x%x (%s, table from %s)" % (len(plan.image), IMAGE_OFFSET, board.name,
                                                                  board.csv.relative_to(ROOT)))
            es.write_flash(esp, [(IMAGE_OFFSET, plan.image)])
            es.verify_flash(esp, [(IMAGE_OFFSET, plan.image)])
            for off, size in erase:
                say("layout changed: erasing 0x%x..0x%x" % (off, off + size))
                es.erase_region(esp, off, size)
            es.reset_chip(esp, "hard-reset")
        finally:
            port_obj = getattr(esp, "_port", None)
            if port_obj is not None:
                port_obj.close()
    except FatalError as e:
        raise DepotError("esptool on %s: %s" % (port, str(e).splitlines()[0] if str(e) else type(e).__name__)) \
            from None
    return {"board_id": board_id, "chip": esp.CHIP_NAME, "layout_changed": changed, "erased": erase,
            "floors": got}


def depot_floors(db_url):
    """floors(board_id) -> (last sequence, last TTC) the depot database accounts for on the board (0: none): the
    highest seq of its stored records and fault rows (host_tools/db.py Depot.covered: a damaged stretch's
    numbers were used too) and the highest TTC of its records."""
    def floors(board_id):
        from sqlalchemy import func, select

        from host_tools.db import open_db

        depot = open_db(db_url)
        try:
            seq = depot.covered(board_id)
            rec = depot.t.records
            with depot.read() as conn:
                ttc = conn.execute(select(func.max(rec.c.ttc)).where(rec.c.board_id == board_id)).scalar()
            return seq, int(ttc or 0)
        finally:
            depot.close()

    return floors


def raise_floors(port, baud, board, floors, status_next_seq=None, dev_board=None, link_module=None):
    """After a change of layout (blank vfs, application deployed again): no sequence number or TTC repeats."""
    if link_module is None:
        from host_tools import link as link_module
    last_seq, last_ttc = floors if floors else (0, 0)
    seq = max((last_seq or 0) + 1, status_next_seq or 1)
    out = {}
    with link_module.Board(port, baud=baud) as b:
        waiting = b.service("status")["records_waiting"]
        r = b.service("raise_floor", seq)
        out["next_seq"] = r.get("next_seq")
        if waiting == 0 and out["next_seq"] and out["next_seq"] > 1:
            # The journals count records waiting as next_seq - 1 - acknowledged, so the numbers skipped by the
            # floor would look like records to pull; none exist (nothing waited): acknowledge them.
            b.service("ack", out["next_seq"] - 1)
        if dev_board if dev_board is not None else board.dev_board:
            ttc = (last_ttc or 0) + 1
            r = b.service("raise_ttc", ttc)  # link.Board.service raises a DepotError on {"ok": False}
            out["ttc_next"] = r.get("ttc_next")
        b.close(restart_app=True)
    return out


def read_status(port, baud, link_module=None):
    """service.status() of the running app, or (None, why) when it cannot be had."""
    if link_module is None:
        from host_tools import link as link_module
    try:
        with link_module.Board(port, baud=baud) as b:
            st = b.service("status")
            b.close(restart_app=True)
    except DepotError as e:
        return None, str(e)
    if not st.get("ok"):
        return None, "%s: %s" % (st.get("error"), st.get("detail"))
    return st, None


@click.command("flash")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--board", "board_name", help="boards/<name> (default: what the running board says, else "
                                            "esp32-generic)")
@click.option("--force", is_flag=True, help="flash although records wait or a recent intent is unresolved, or "
                                            "the board does not answer")
@click.option("--no-deploy", is_flag=True, help="after a change of layout, do not deploy the application or "
                                                "raise the floors (do it yourself before the board goes out)")
@click.pass_obj
def flash_cmd(obj, image, board_name, force, no_deploy):
    """Write a MicroPython IMAGE (ESP32_GENERIC-<version>.bin from micropython.org) with the board's partition
    table patched in, verify it, and after a change of layout redeploy and raise the sequence and TTC floors."""
    import json

    try:
        data = Path(image).read_bytes()
    except OSError as e:
        raise DepotError("cannot read %s: %s" % (image, e.strerror or e), code=2) from None
    port = obj.need_port()
    # every board type is an ESP32 today: the image is checked offline before the board is asked anything
    plan = prepare_image(data, board_name or "esp32-generic", Path(image).name)
    status, why = read_status(port, obj.baud)
    if board_name is None and status is not None and status.get("board") not in (None, plan.board.name):
        plan = prepare_image(data, status["board"], Path(image).name)  # the board's own table and dev flag
    if not force:
        if status is None:
            raise DepotError("cannot read the board's status (%s): nothing written; a board without the app "
                             "(new, or erased): pass --force" % why)
        if status.get("board") and board_name and status["board"] != board_name:
            raise DepotError("the board says it is %s, not %s: nothing written (--force to change it)" % (
                status["board"], board_name), code=2)
        bad = refusals(status)
        if bad:
            raise DepotError("not flashing (--force to override): " + "; ".join(bad))
    say = (lambda s: None) if obj.json else click.echo
    if obj.json:  # esptool prints its stages and progress on stdout: keep stdout for the one JSON answer
        try:
            from esptool.logger import log

            log.set_verbosity("silent")
        except (ImportError, AttributeError, ValueError):
            pass
    res = write_chip(port, plan, obj.baud, floors=depot_floors(obj.db), echo=say)
    if res["layout_changed"] and not no_deploy:
        from host_tools.deploy import deploy

        say("layout changed: vfs blank; deploying the application")
        res["deploy"] = deploy(port, plan.board.name, baud=obj.baud, echo=say)
        res["raised"] = raise_floors(port, obj.baud, plan.board, res["floors"],
                                     (status or {}).get("next_seq"), (status or {}).get("dev_board"))
        say("provision the board again: configuration, denylist%s, clock" % (
            ", test keys" if plan.board.dev_board else ""))
    if obj.json:
        click.echo(json.dumps(res, default=list))
    else:
        click.echo("flashed %s (%s, board id %s)%s" % (plan.board.name, res["chip"], res["board_id"],
                                                      ", layout changed" if res["layout_changed"] else ""))
