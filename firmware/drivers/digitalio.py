"""The little of CircuitPython's `digitalio` that adafruit_pn532's base class uses, over a `machine.Pin`.

    from drivers.digitalio import DigitalInOut, Direction
    rst = DigitalInOut(machine.Pin(4))      # the PN532 RSTPD_N line
    rst.direction = Direction.OUTPUT; rst.value = False

adafruit_pn532/adafruit_pn532.py (2.4.9) imports `from digitalio import Direction` at the top and, in
`PN532.reset()`, sets `direction` and `value` on the reset pin object it was given. MicroPython has no
`digitalio` module: drivers/pn532.py registers this one as `sys.modules["digitalio"]` before importing the
base. On CPython Blinka's own `digitalio` is used instead and this module is only imported by name.
"""


class Direction:
    """digitalio.Direction: the two values the base compares and assigns."""

    INPUT = 0
    OUTPUT = 1


class DigitalInOut:
    """`direction` and `value` as properties over a machine.Pin-like object (`init(mode)`, `value([v])`)."""

    def __init__(self, pin):
        self._pin = pin
        self._direction = Direction.INPUT

    @property
    def direction(self):
        return self._direction

    @direction.setter
    def direction(self, d):
        # On CPython the base passes Blinka's Direction, whose str() is "digitalio.Direction.OUTPUT".
        out = d == Direction.OUTPUT or str(d).endswith("OUTPUT")
        if not out and d != Direction.INPUT and not str(d).endswith("INPUT"):
            raise ValueError("direction must be Direction.INPUT or Direction.OUTPUT, not %r" % (d,))
        self._direction = Direction.OUTPUT if out else Direction.INPUT
        # machine.Pin.OUT == 1 and Pin.IN == 0 on the ESP32 port; a stand-in may define its own.
        self._pin.init(getattr(self._pin, "OUT", 1) if out else getattr(self._pin, "IN", 0))

    @property
    def value(self):
        return bool(self._pin.value())

    @value.setter
    def value(self, v):
        self._pin.value(1 if v else 0)
