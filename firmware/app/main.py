"""/main.py on the board: boot the validator from the board file and run the tap loop forever.

    # copied to the board's root by the manifest; MicroPython runs it after /boot.py
"""
import pins
from app.boot import boot

v = boot(pins)
while True:
    v.step()
