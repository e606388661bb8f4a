# Run case_* functions of a tests/mpcases module on the MicroPython unix port (tests/test_vboard.py):
#     micropython -X heapsize=100k runcases.py <repo root> <module> <case> [<case> ...]
# One line per case: "PASS name alloc" or "FAIL name" followed by the traceback, then "DONE".
import sys
import gc

root = sys.argv[1]
# this folder first: its time.py gives the ESP32's 2**30 tick wrap (the 64-bit unix port wraps at 2**62)
# then the board's own folders; ./lib holds third-party board modules the test copies from installed packages
sys.path[:] = [root + "/tests/vboard/board", root + "/tests", root + "/firmware", ".frozen", "lib"]
mod = __import__("mpcases." + sys.argv[2], None, None, ["x"])
for name in sys.argv[3:]:
    gc.collect()
    m0 = gc.mem_alloc()
    try:
        getattr(mod, name)()
        print("PASS", name, gc.mem_alloc() - m0)
    except BaseException as e:  # noqa: B036 - MemoryError and SystemExit fail the case too
        print("FAIL", name)
        sys.print_exception(e)
print("DONE")
