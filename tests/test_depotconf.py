"""The depot's configuration file (host_tools/depotconf.py): defaults, a good file, and each bad key refused with
a message naming it."""
import pytest

from host_tools.depotconf import DEFAULT_TEMPLATE, load_depot_config
from host_tools.errors import DepotError


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNION_DEPOT_CONFIG", raising=False)
    c = load_depot_config()
    assert c.name and c.city is None and c.template == DEFAULT_TEMPLATE and c.path is None


def test_a_good_file(tmp_path):
    p = tmp_path / "depot.toml"
    p.write_text('name = "North"\ncity = "9990"\nexport_template = "{batch}_{kind}.{ext}"\nexport_formats = ["csv"]\n')
    c = load_depot_config(str(p))
    assert (c.name, c.city, c.template, c.formats) == ("North", "9990", "{batch}_{kind}.{ext}", ("csv",))


@pytest.mark.parametrize("text,word", [
    ('name = "A"\ncolour = 1\n', "colour"),
    ('city = "99"\n', "city"),
    ('export_template = "{batch}.{ext}"\n', "export_template"),
    ('export_formats = ["xml"]\n', "export_formats"),
    ('test_fleet = "yes"\n', "test_fleet"),
    ('name = \n', "TOML"),
    ('name = ""\n', "name"),
])
def test_bad_files_are_refused_naming_the_key(tmp_path, text, word):
    p = tmp_path / "depot.toml"
    p.write_text(text)
    with pytest.raises(DepotError) as e:
        load_depot_config(str(p))
    assert word in str(e.value) and e.value.code == 2


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(DepotError) as e:
        load_depot_config(str(tmp_path / "nope.toml"))
    assert "nope.toml" in str(e.value) and "\n" not in str(e.value)
