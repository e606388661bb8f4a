# What goes onto a esp32-generic board: everything every board carries (../common_manifest.py), then its own pin map.
metadata(description="T-Union bus validator, ESP32 generic 4 MB", version="0.1.0")
include("../common_manifest.py")
module("pins.py")  # this board's pin map -> /lib/pins.py (`from pins import PINS`)
