# What every validator board carries, in micropython-lib's manifest.py format (metadata / package / module /
# require / include), read on the host by tools/manifest.py; the virtual board's seed step and the depot's deploy
# install the same list. Each board's own manifest.py includes this file and adds its pin map. It lives here, not
# in firmware/, because firmware/ holds only board code (every file there is compiled and type-checked as such).
# Our one extension: `dest=` (the board folder, "/lib" unless given), since we copy files rather than freeze them;
# `optional=True` skips a source that does not exist yet.
package("tunion", base_path="$(PROJECT)/firmware")  # the pure core
package("drivers", base_path="$(PROJECT)/firmware")  # board-only: partition, PN532, PSAM, RTC, display
package("app", base_path="$(PROJECT)/firmware", optional=True)  # the tap loop and service entry points
module("main.py", base_path="$(PROJECT)/firmware/app", dest="/", optional=True)  # run after /boot.py
# /boot.py: puts the active application folder (/app.ptr -> /apps/<id>) on sys.path; everything above that goes
# to /lib lands in that folder (tools/manifest.py layout(), the seed step and `tunion-depot deploy` alike).
module("loader.py", base_path="$(PROJECT)/firmware/app", dest="/boot.py")

# Third party, from the pinned wheel in the venv (requirements.txt), never copied into the repo:
# the PN532 base class our bus subclasses run on.
require("adafruit_pn532", pypi="adafruit-circuitpython-pn532", files=("__init__.py", "adafruit_pn532.py"))
