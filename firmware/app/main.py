"""/main.py on the board: boot the validator from the board file and run the tap loop forever.

    # copied to the board's root by the manifest; MicroPython runs it after /boot.py

It prints READY once the validator is built: the depot's link (host_tools/link.py) waits for that line after it
restarts the app, and before it interrupts a board that is still booting (a Ctrl-C mid-boot leaves no app).
"""
# First, while the heap is still one free block: the block the depot's session gets (app/service.py _RESERVE).
# Taken after the imports it would not exist: loading the app leaves the free heap in holes of a few KB. 6 KB: a
# compile and one 1 KB file chunk (host_tools/link.py put) at a time; 10 KB left boot itself short of a 1 KB
# block on the virtual board ("MemoryError allocating 1024 bytes" in the demo and the 20,000-record board).
_reserve = bytearray(6144)
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
