# What goes onto an ESP32 (4 MB) validator with the PN532 on I2C (esp32-generic otherwise): micropython-lib's manifest.py format (metadata / package /
# module / require / include), read on the host by tools/manifest.py; the virtual board's seed step and the
# depot's deploy install the same list. It lives here, not in firmware/, because firmware/ holds only board code
# (every file there is compiled and type-checked as such). Another board includes this file and adds its own.
# Our one extension: `dest=` (the board folder, "/lib" unless given), since we copy files rather than freeze them;
# `optional=True` skips a source that does not exist yet.
metadata(description="T-Union bus validator, ESP32 4 MB, PN532 on I2C", version="0.1.0")

package("tunion", base_path="$(PROJECT)/firmware")  # the pure core
package("drivers", base_path="$(PROJECT)/firmware")  # board-only: partition, PN532, PSAM, RTC, display
package("app", base_path="$(PROJECT)/firmware", optional=True)  # the tap loop and service entry points
module("main.py", base_path="$(PROJECT)/firmware/app", dest="/", optional=True)  # run after /boot.py
module("pins.py")  # this board's pin map -> /lib/pins.py (`from pins import PINS`)

# Third party, from the pinned wheel in the venv (requirements.txt), never copied into the repo:
# the PN532 framing base class our UART bus subclass runs on.
require("adafruit_pn532", pypi="adafruit-circuitpython-pn532", files=("__init__.py", "adafruit_pn532.py"))
