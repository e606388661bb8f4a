"""The PN532 on a `machine.I2C` at 0x24: status-byte polling with ticks_us deadlines, frames read to their LEN.

    from drivers.pn532_i2c import Pn532I2c
    pn = Pn532I2c(machine.I2C(1, scl=machine.Pin(22), sda=machine.Pin(21), freq=400000))
    pn.set_max_retries()

The I2C object is injected: readfrom_into(addr, buf) and writeto(addr, buf). Every read transaction starts with
the PN532's status byte (bit 0: an answer is ready) followed by the frame from its first byte (UM0701-02
6.2.4); a frame is only used up once a read went through its postamble. So an answer is read in two
transactions: status + header to learn LEN, then status + exactly that frame; an ACK is one read of 1 + 6.
The stock adafruit class sleeps 10 ms between polls and reads `length + 7`; this one does neither.
"""
from tunion.compat import const
from drivers.pn532 import Pn532Link, Pn532Error, F_NONE, F_BAD, F_ACK, F_NACK, F_DATA, BUF_SIZE, default_clock

ADDRESS = const(0x24)  # 7-bit address (UM0701-02 6.2.4: 0x48 write / 0x49 read)
_READY = const(0x01)  # status byte bit 0
_HDR = const(6)  # status, 00 00 FF, LEN, LCS


class Pn532I2c(Pn532Link):
    def __init__(self, i2c, address=ADDRESS, freq=400000, reset=None, clock=None, debug=False):
        self._i2c = i2c
        self._addr = address
        self._byte_us = (9000000 + freq - 1) // freq  # 8 bits + ACK per byte
        self._ibuf = bytearray(BUF_SIZE + 4)  # status, 00 00 FF, then what _rx sees
        self._imv = memoryview(self._ibuf)
        self._rx = self._imv[4:]
        self._rxmv = self._rx
        self.polls = 0  # status reads that found the PN532 busy
        self._link_init(clock)
        super().__init__(debug=debug, reset=reset)

    # ---- bus hooks of the base class
    def _wakeup(self):
        # I2C wakes the PN532 on its address; SAMConfiguration is still the first command (UM0701-02 6.2.2).
        self.low_power = False
        self.sam_configuration()

    def _wait_ready(self, timeout):
        return self._poll(self._deadline(int(timeout * 1000000)))

    def _read_data(self, count):
        buf = bytearray(count + 1)
        self._xfer_in(memoryview(buf), count + 1)
        if buf[0] != _READY:
            from adafruit_pn532.adafruit_pn532 import BusyError  # pyright: ignore[reportMissingImports]

            raise BusyError("PN532 not ready")
        return bytes(buf[1:])

    def _write_data(self, framebytes):
        self._send(framebytes)

    # ---- what Pn532Link needs
    def _send(self, buf):
        try:
            self._i2c.writeto(self._addr, buf)
        except OSError as e:  # no ACK on the address: not there, or held in reset
            raise Pn532Error("I2C write: %s" % e)
        self.bytes_out += len(buf) + 1  # the address byte too

    def _drain(self):
        pass  # an I2C answer is only taken when read; a new command replaces it

    def _xfer_in(self, mv, n):
        try:
            self._i2c.readfrom_into(self._addr, mv[:n])
        except OSError as e:
            raise Pn532Error("I2C read: %s" % e)
        self.bytes_in += n + 1

    def _poll(self, deadline):
        ib = self._ibuf
        while True:
            self._xfer_in(self._imv, 1)
            if ib[0] & _READY:
                return True
            self.polls += 1
            if self._expired(deadline):
                return False

    def _read_raw(self, deadline, ack):
        if not self._poll(deadline):
            return F_NONE
        ib = self._ibuf
        mv = self._imv
        if ack:
            self._xfer_in(mv, 7)  # status + the 6 bytes of an ACK or NACK
            if ib[1] == 0 and ib[2] == 0 and ib[3] == 0xFF:
                if ib[4] == 0 and ib[5] == 0xFF:
                    self.frames_in += 1
                    return F_ACK
                if ib[4] == 0xFF and ib[5] == 0:
                    self.frames_in += 1
                    return F_NACK
            return F_BAD
        self._xfer_in(mv, _HDR)
        if ib[1] != 0 or ib[2] != 0 or ib[3] != 0xFF:
            return F_BAD
        ln = ib[4]
        if (ln + ib[5]) & 0xFF or ln == 0 or ln == 0xFF:
            return F_BAD
        self._xfer_in(mv, _HDR + ln + 2)  # the same frame again, now to its postamble
        if not ib[0] & _READY or ib[4] != ln:
            return F_BAD
        self.frames_in += 1
        return F_DATA


def open_i2c(bus=0, scl=22, sda=21, freq=400000, reset=None, clock=None):
    """The board's PN532 on I2C bus `bus`, woken and set to answer at once when no card is there."""
    import machine

    i2c = machine.I2C(bus, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)
    pn = Pn532I2c(i2c, freq=freq, reset=reset, clock=default_clock(clock))
    pn.set_max_retries()
    return pn
