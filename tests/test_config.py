"""Configuration: the documented example loads; every field made wrong in each forbidden way is rejected by
name, and the previous configuration stays in force (on disk and in the validator)."""
import copy
import json
import os
import re

import pytest

from tunion.config import Config, ConfigError, DEFAULT, load_config, install_config, read_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = object()


def doc_example():
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as fh:
        text = fh.read()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_documented_example_is_the_default():
    text = doc_example()
    assert json.loads(text) == DEFAULT
    cfg = load_config(text)
    d = Config.default()
    for name in ("line", "vehicle", "city", "local_issuers", "acquirer", "operator", "station", "version",
                 "base_fare", "all_cards_percent", "transfer_discount", "repeat_ms", "concession_s",
                 "transfer_s", "intent_timeout_s", "block_denylisted", "denylist_file"):
        assert getattr(cfg, name) == getattr(d, name), name
    assert cfg.city == b"\x24\x82" and cfg.line == 101 and cfg.base_fare == 200
    assert cfg.local_issuers == [bytes.fromhex("05212482FFFFFFFF")]
    assert cfg.acquirer == bytes.fromhex("05212482FFFFFFFF")
    assert (cfg.repeat_ms, cfg.concession_s, cfg.intent_timeout_s) == (1000, 600, 120)
    assert cfg.block_denylisted is False and cfg.denylist is None
    assert cfg.line_fares == {101: 200, 102: 150, 301: 0}
    assert cfg.card_types[2].percent == 50 and cfg.card_types[3].concession
    assert load_config(text.encode("utf-8")).line == 101


# (path, bad value or MISSING, the field the message must name, words it must contain)
BAD = [
    (("format",), MISSING, "format", "missing"),
    (("format",), "1", "format", "integer"),
    (("format",), 1.0, "format", "integer"),
    (("format",), True, "format", "integer"),
    (("format",), 2, "format", "reads format 1"),
    (("version",), MISSING, "version", "missing"),
    (("version",), "1", "version", "integer"),
    (("version",), 1.5, "version", "integer"),
    (("version",), -1, "version", "between"),
    (("version",), 1 << 32, "version", "between"),
    (("line",), MISSING, "line", "missing"),
    (("line",), "101", "line", "integer"),
    (("line",), True, "line", "integer"),
    (("line",), -1, "line", "between"),
    (("line",), 65536, "line", "between"),
    (("line",), 999, "fares.lines", "no fare for line 999"),
    (("vehicle",), MISSING, "vehicle", "missing"),
    (("vehicle",), 1234, "vehicle", "string"),
    (("vehicle",), None, "vehicle", "string"),
    (("vehicle",), "", "vehicle", "1 to 16"),
    (("vehicle",), "B" * 17, "vehicle", "1 to 16"),
    (("vehicle",), "B-12\n34", "vehicle", "control"),
    (("city",), MISSING, "city", "missing"),
    (("city",), 2482, "city", "string"),
    (("city",), "248", "city", "4 hex digits"),
    (("city",), "24820", "city", "4 hex digits"),
    (("city",), "24A2", "city", "decimal digits"),
    (("local_issuers",), MISSING, "local_issuers", "missing"),
    (("local_issuers",), "05212482FFFFFFFF", "local_issuers", "list"),
    (("local_issuers",), ["05212482FFFFFFFF"] * 33, "local_issuers", "at most 32"),
    (("local_issuers",), ["05212482"], "local_issuers[0]", "16 hex digits"),
    (("local_issuers",), ["05212482FFFFFFFF", "05212482FFFFFFFG"], "local_issuers[1]", "hex digits"),
    (("local_issuers",), [5212482], "local_issuers[0]", "string"),
    (("acquirer",), MISSING, "acquirer", "missing"),
    (("acquirer",), 5, "acquirer", "string"),
    (("acquirer",), "0521", "acquirer", "16 hex digits"),
    (("acquirer",), "ZZ212482FFFFFFFF", "acquirer", "hex digits"),
    (("operator",), MISSING, "operator", "missing"),
    (("operator",), -1, "operator", "between"),
    (("operator",), 65536, "operator", "between"),
    (("operator",), "1", "operator", "integer"),
    (("station",), MISSING, "station", "missing"),
    (("station",), 65536, "station", "between"),
    (("station",), False, "station", "integer"),
    (("fares",), MISSING, "fares", "missing"),
    (("fares",), [200], "fares", "object"),
    (("fares", "lines"), MISSING, "fares.lines", "missing"),
    (("fares", "lines"), [200], "fares.lines", "object"),
    (("fares", "lines"), {}, "fares.lines", "at least one"),
    (("fares", "lines"), {"101": 200, "x1": 5}, "fares.lines", "decimal numbers"),
    (("fares", "lines"), {"101": 200, "65536": 5}, "fares.lines", "above 65535"),
    (("fares", "lines"), {"102": 150}, "fares.lines", "no fare for line 101"),
    (("fares", "lines", "101"), -5, "fares.lines.101", "between 0 and 99999"),
    (("fares", "lines", "101"), 100000, "fares.lines.101", "between 0 and 99999"),
    (("fares", "lines", "101"), "200", "fares.lines.101", "integer"),
    (("fares", "lines", "101"), 2.0, "fares.lines.101", "integer"),
    (("fares", "card_types"), MISSING, "fares.card_types", "missing"),
    (("fares", "card_types"), [], "fares.card_types", "object"),
    (("fares", "card_types"), {"student": {"percent": 50, "concession": True}}, "fares.card_types", "decimal"),
    (("fares", "card_types"), {"256": {"percent": 50, "concession": True}}, "fares.card_types", "above 255"),
    (("fares", "card_types", "2"), 50, "fares.card_types.2", "object"),
    (("fares", "card_types", "2", "percent"), MISSING, "fares.card_types.2.percent", "missing"),
    (("fares", "card_types", "2", "percent"), 101, "fares.card_types.2.percent", "between 0 and 100"),
    (("fares", "card_types", "2", "percent"), -1, "fares.card_types.2.percent", "between 0 and 100"),
    (("fares", "card_types", "2", "percent"), 0.5, "fares.card_types.2.percent", "integer"),
    (("fares", "card_types", "2", "concession"), MISSING, "fares.card_types.2.concession", "missing"),
    (("fares", "card_types", "2", "concession"), 1, "fares.card_types.2.concession", "true or false"),
    (("fares", "card_types", "2", "free"), True, "fares.card_types.2.free", "unknown field"),
    (("fares", "all_cards_percent"), MISSING, "fares.all_cards_percent", "missing"),
    (("fares", "all_cards_percent"), 101, "fares.all_cards_percent", "between 0 and 100"),
    (("fares", "all_cards_percent"), -1, "fares.all_cards_percent", "between 0 and 100"),
    (("fares", "all_cards_percent"), "100", "fares.all_cards_percent", "integer"),
    (("fares", "transfer_discount"), MISSING, "fares.transfer_discount", "missing"),
    (("fares", "transfer_discount"), -1, "fares.transfer_discount", "between"),
    (("fares", "transfer_discount"), 100000, "fares.transfer_discount", "between"),
    (("fares", "transfer_discount"), 1.0, "fares.transfer_discount", "integer"),
    (("fares", "base"), 200, "fares.base", "unknown field"),
    (("windows",), MISSING, "windows", "missing"),
    (("windows",), 1000, "windows", "object"),
    (("windows", "repeat_ms"), MISSING, "windows.repeat_ms", "missing"),
    (("windows", "repeat_ms"), 0, "windows.repeat_ms", "between 100 and 60000"),
    (("windows", "repeat_ms"), 60001, "windows.repeat_ms", "between 100 and 60000"),
    (("windows", "repeat_ms"), "1000", "windows.repeat_ms", "integer"),
    (("windows", "concession_s"), MISSING, "windows.concession_s", "missing"),
    (("windows", "concession_s"), -1, "windows.concession_s", "between 0 and 86400"),
    (("windows", "concession_s"), 86401, "windows.concession_s", "between 0 and 86400"),
    (("windows", "concession_s"), 600.0, "windows.concession_s", "integer"),
    (("windows", "transfer_s"), MISSING, "windows.transfer_s", "missing"),
    (("windows", "transfer_s"), -1, "windows.transfer_s", "between 0 and 86400"),
    (("windows", "transfer_s"), 86401, "windows.transfer_s", "between 0 and 86400"),
    (("windows", "transfer_s"), True, "windows.transfer_s", "integer"),
    (("windows", "intent_timeout_s"), MISSING, "windows.intent_timeout_s", "missing"),
    (("windows", "intent_timeout_s"), 9, "windows.intent_timeout_s", "between 10 and 86400"),
    (("windows", "intent_timeout_s"), 86401, "windows.intent_timeout_s", "between 10 and 86400"),
    (("windows", "intent_timeout_s"), "120", "windows.intent_timeout_s", "integer"),
    (("windows", "transfer_min"), 90, "windows.transfer_min", "unknown field"),
    (("windows", "recovery_window_s"), 119, "windows.recovery_window_s", "at least windows.intent_timeout_s"),
    (("windows", "recovery_window_s"), 86401, "windows.recovery_window_s", "between 0 and 86400"),
    (("windows", "recovery_window_s"), "600", "windows.recovery_window_s", "integer"),
    # issue 7 finding 11: a vehicle that passed load_config but did not fit the 10-byte segment header field
    (("vehicle",), "沪AD123456", "vehicle", "at most 10 bytes"),
    (("vehicle",), "ABCDEFGHIJK", "vehicle", "at most 10 bytes"),
    # finding 13: two keys naming one number
    (("fares", "lines", "0101"), 300, "fares.lines", "name the same number 101"),
    (("fares", "card_types", "02"), {"percent": 10, "concession": False}, "fares.card_types", "same number 2"),
    (("block_denylisted",), MISSING, "block_denylisted", "missing"),
    (("block_denylisted",), 0, "block_denylisted", "true or false"),
    (("block_denylisted",), "false", "block_denylisted", "true or false"),
    (("block_denylisted",), None, "block_denylisted", "true or false"),
    (("denylist_file",), MISSING, "denylist_file", "missing"),
    (("denylist_file",), "", "denylist_file", "1 to 64"),
    (("denylist_file",), "d" * 65, "denylist_file", "1 to 64"),
    (("denylist_file",), 5, "denylist_file", "string"),
    (("terminal",), "000000000001", "terminal", "unknown field"),  # the terminal number is the PSAM's
]


def mutate(path, value):
    d = copy.deepcopy(DEFAULT)
    obj = d
    for k in path[:-1]:
        obj = obj[k]
    if value is MISSING:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return json.dumps(d)


@pytest.mark.parametrize("path,value,field,words", BAD, ids=["%s=%r" % (".".join(b[0]), b[1])[:60] for b in BAD])
def test_each_wrong_field_is_rejected_by_name(tmp_path, path, value, field, words):
    with pytest.raises(ConfigError) as e:
        load_config(mutate(path, value))
    msg = str(e.value)
    assert msg.startswith(field + ": "), msg
    assert words in msg, msg
    # Installing it keeps the previous file and configuration.
    cfg_path = str(tmp_path / "config.json")
    current = install_config(json.dumps(DEFAULT), cfg_path)
    before = open(cfg_path, "rb").read()
    with pytest.raises(ConfigError):
        current = install_config(mutate(path, value), cfg_path)
    assert current.line == 101 and current.version == 1
    assert open(cfg_path, "rb").read() == before
    assert not os.path.exists(cfg_path + ".new")
    assert read_config(cfg_path).base_fare == 200


def test_every_documented_field_is_covered_by_the_table():
    # Each leaf and object of the example appears in BAD at least twice (missing and one wrong value).
    def walk(d, prefix):
        for k, v in d.items():
            p = prefix + (k,)
            yield p
            if isinstance(v, dict) and p != ("fares", "lines") and p != ("fares", "card_types"):
                yield from walk(v, p)
    covered = {}
    for path, _, _, _ in BAD:
        covered[path] = covered.get(path, 0) + 1
    for p in walk(DEFAULT, ()):
        assert covered.get(p, 0) >= 2, p


def test_not_json_not_an_object_not_utf8():
    for text, words in (("{", "not valid JSON"), ("[]", "must be an object"), (b"\xff\xfe", "not UTF-8"),
                        ("", "not valid JSON")):
        with pytest.raises(ConfigError) as e:
            load_config(text)
        assert words in str(e.value)


def test_install_is_new_file_then_rename(tmp_path, monkeypatch):
    path = str(tmp_path / "config.json")
    good = copy.deepcopy(DEFAULT)
    install_config(json.dumps(good), path)
    good["version"] = 2
    good["line"] = 102
    renames = []
    real = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (renames.append((a, b)), real(a, b)))
    cfg = install_config(json.dumps(good), path)
    assert renames == [(path + ".new", path)]
    assert cfg.version == 2 and cfg.base_fare == 150
    assert read_config(path).line == 102


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "config.json")
    install_config(json.dumps(DEFAULT), path)
    d = copy.deepcopy(DEFAULT)
    d["version"] = 9

    def boom(a, b):
        raise OSError("power cut before the rename")
    monkeypatch.setattr(os, "rename", boom)
    with pytest.raises(OSError):
        install_config(json.dumps(d), path)
    monkeypatch.undo()
    assert read_config(path).version == 1
    assert not os.path.exists(path + ".new")
    with pytest.raises(ConfigError) as e:
        read_config(str(tmp_path / "absent.json"))
    assert str(e.value).startswith("file: ")


def test_recovery_window_defaults_to_600_and_a_vehicle_that_loads_fits_the_segment_header():
    from tunion.segment import SegmentHeader, HEADER_SIZE

    assert load_config(json.dumps(DEFAULT)).recovery_window_s == 600
    d = copy.deepcopy(DEFAULT)
    d["windows"]["recovery_window_s"] = 900
    d["vehicle"] = "沪AD12345"  # 10 bytes of UTF-8: the longest plate of this form that fits
    cfg = load_config(json.dumps(d))
    assert cfg.recovery_window_s == 900
    raw = SegmentHeader(line=cfg.line, vehicle=cfg.vehicle, config_version=cfg.version).encode(1, 1)
    assert len(raw) == HEADER_SIZE and SegmentHeader.decode(raw)[0].fields()["vehicle"] == "沪AD12345"
