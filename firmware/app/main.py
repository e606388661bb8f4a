"""/main.py on the board: boot the validator from the board file and run the tap loop forever.

    # copied to the board's root by the manifest; MicroPython runs it after /boot.py

It prints READY once the validator is built: the depot's link (host_tools/link.py) waits for that line after it
restarts the app, and before it interrupts a board that is still booting (a Ctrl-C mid-boot leaves no app).
"""
# First, while the heap is still one free block: the block the depot's session gets (app/service.py _RESERVE).
# Taken after the imports it would not exist: loading the app leaves the free heap in holes of a few KB. 10 KB:
# one chunk of the depot's file writes (host_tools/link.py put) needs the raw REPL's 4 KB line buffer, the 2.7 KB
# base64 string and the 2 KB it decodes to at once, on top of what the previous chunk left (6 KB was too little
# once: "MemoryError allocating 4096 bytes" in a provision under load).
_reserve = bytearray(10240)
import pins  # noqa: E402
from app.boot import boot  # noqa: E402

READY = "tunion: validator ready"

v = boot(pins, _reserve)
del _reserve
print(READY)
try:
    while True:
        v.step()
except KeyboardInterrupt:
    # The depot's Ctrl-C (host_tools/link.py): free the reserved block before the REPL compiles its first
    # command (a compile needs a contiguous block the day's heap may not have: app/service.py _RESERVE).
    import gc
    from app import service

    service.release()
    gc.collect()
    raise
