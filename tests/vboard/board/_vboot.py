# The virtual board's power-on script (tests/vboard/relay.py runs it):
#     micropython -X heapsize=100k [-i] _vboot.py <board dir>/config.json [raw | seed <list file>]
# Everything lives in _vbinit so that the REPL after it sees only what boot.py and main.py defined.
import _vbinit
_vbinit.boot(globals())
del _vbinit
