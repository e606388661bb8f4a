"""/main.py on the board: boot the validator from the board file and run the tap loop forever.

    # copied to the board's root by the manifest; MicroPython runs it after /boot.py

It prints READY once the validator is built: the depot's link (host_tools/link.py) waits for that line after it
restarts the app, and before it interrupts a board that is still booting (a Ctrl-C mid-boot leaves no app).
"""
import pins
from app.boot import boot

READY = "tunion: validator ready"

v = boot(pins)
print(READY)
while True:
    v.step()
