# What goes onto a esp32-devkit board: everything every board carries (../common_manifest.py), then its own pin map.
metadata(description="T-Union validator development board (no PSAM, no RTC)", version="0.1.0")
include("../common_manifest.py")
module("pins.py")  # this board's pin map -> /lib/pins.py (`from pins import PINS`)
