"""The buzzer (a PWM tone) and the green and red LEDs: each outcome's pattern, played without blocking the loop.

    fb = make_feedback(buzzer_pin=13, green_pin=32, red_pin=33)   # boards/esp32-generic pins
    fb.start(result.status, time.ticks_ms())    # right after the tap: buzzer on, LED lit, returns at once
    while ...: fb.poll(time.ticks_ms())         # the loop steps the pattern (ticks_diff, never sleeps)

The patterns are tunion.messages.BEEPS (on/off durations in ms, starting "on"), chosen by messages.beep(status).
LEDs: green for an accepted tap, red for refused, tap-again and out of service; lit from the first beep until
HOLD_MS after the last, except out of service, whose red stays lit until the next start() or clear() (the
validator stays out of service until the cause is fixed). IGNORED_REPEAT is silent (validator.md s.2 "no beep"):
it changes nothing, so the beep of the payment it repeats plays to its end.
A poll that comes late lengthens the step it ends rather than shortening the next, so no beep is ever swallowed
by a slow loop.
"""
from tunion import messages
from tunion.compat import const, ticks_diff

TONE_HZ = const(2700)  # a common piezo buzzer's resonant frequency (loudest for the least current)
_DUTY_ON = const(32768)  # duty_u16: a 50 % square wave
HOLD_MS = const(600)  # an LED flash of a 120 ms beep alone is too short to see in daylight

_GREEN = {messages.ACCEPTED: True}
_RED = {messages.REFUSED: True, messages.TAP_AGAIN: True, messages.OUT_OF_SERVICE: True}


class Feedback:
    def __init__(self, buzzer, green, red, tone_hz=TONE_HZ, hold_ms=HOLD_MS):
        self.buzzer = buzzer  # machine.PWM
        self.green = green  # machine.Pin, output, 1 = lit
        self.red = red
        self.hold_ms = hold_ms
        buzzer.freq(tone_hz)
        buzzer.duty_u16(0)
        green.value(0)
        red.value(0)
        self._pattern = ()
        self._step = -1  # index into the pattern; len(pattern) = the hold; -1 = idle
        self._t = 0  # tick at which the current step began
        self._led = None
        self._steady = False
        self.name = None  # the pattern playing (a key of messages.BEEPS), None when idle
        self.beeps = 0  # beeps started since construction: the virtual board's tests count them

    def start(self, status, now_ms):
        """Play the pattern of an outcome status (KeyError for a status outside outcome.ALL)."""
        name = messages.beep(status)
        if name == messages.SILENT:
            return
        self._leds_off()
        self._pattern = messages.BEEPS[name]
        self.name = name
        self._led = self.green if name in _GREEN else (self.red if name in _RED else None)
        self._steady = name == messages.OUT_OF_SERVICE
        if self._led is not None:
            self._led.value(1)
        self._t = now_ms
        self._step = 0
        self._apply()

    def poll(self, now_ms):
        """Step the pattern; True while something is still to change."""
        if self._step < 0:
            return False
        n = len(self._pattern)
        if self._step < n:
            if ticks_diff(now_ms, self._t) >= self._pattern[self._step]:
                self._step += 1
                self._t = now_ms
                self._apply()
            return True
        if ticks_diff(now_ms, self._t) >= self.hold_ms:
            self._step = -1
            self.name = None
            if not self._steady:
                self._leds_off()
            return False
        return True

    def due(self, now_ms):
        """ms until the next change (0 = now), or -1 when idle: how long the loop may wait for a card."""
        if self._step < 0:
            return -1
        d = self._pattern[self._step] if self._step < len(self._pattern) else self.hold_ms
        left = d - ticks_diff(now_ms, self._t)
        return left if left > 0 else 0

    def busy(self):
        return self._step >= 0

    def clear(self):
        """Silence and darken everything (back in service, or before a reboot)."""
        self._step = -1
        self.name = None
        self._steady = False
        self.buzzer.duty_u16(0)
        self._leds_off()

    def _apply(self):
        on = self._step < len(self._pattern) and not self._step & 1
        self.buzzer.duty_u16(_DUTY_ON if on else 0)
        if on:
            self.beeps += 1

    def _leds_off(self):
        self.green.value(0)
        self.red.value(0)


def make_feedback(buzzer_pin, green_pin, red_pin):
    """The board's buzzer and LEDs from their GPIO numbers (the board file's PINS)."""
    from machine import PWM, Pin

    return Feedback(PWM(Pin(buzzer_pin), freq=TONE_HZ, duty_u16=0), Pin(green_pin, Pin.OUT),
                    Pin(red_pin, Pin.OUT))
