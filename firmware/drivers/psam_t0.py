"""The PSAM over ISO 7816-3 T=0 on one open-drain UART line: a SAM port, transceive(apdu) -> data + SW1 SW2.

    from drivers.psam_t0 import open_psam
    from tunion.psam import Psam
    sam = Psam(open_psam(PINS)).open()   # UART(1) on psam_io, PWM card clock on psam_clk (5 MHz), psam_rst

Hardware arrives injected (tests pass tests/sim/t0sam.py): T0Psam(uart, pwm, rst, present=None, clock=time).
Every byte written echoes back on the shared line and is drained and checked. Timeouts are kept here with
ticks_us deadlines (the UART runs with timeout=0), because parity and framing errors never reach Python
(notes/board.md): a bad byte shows as a timeout, a wrong echo or a procedure byte out of place. Such a link
fault deactivates the PSAM, cold-resets it and retries the exchange once, then raises SamError (-> OOS_SAM).
8072 is never retried across a reset: its 8070 session ends with the reset. A status word is an answer.
"""
from tunion.compat import const
from tunion.errors import SamError
from drivers.t0line import T0Line, LinkFault, CLOCK_HZ  # noqa: F401  (LinkFault, CLOCK_HZ: for callers)

_INS_GET_RESPONSE = const(0xC0)  # ISO 7816-4 section 7.6.1, after 61xx (ISO 7816-3 section 10.3.3)
_INS_CREDIT = const(0x72)  # 80 72 CREDIT SAM FOR PURCHASE: its session dies with a reset (protocol section 5)
_INS_SELECT = const(0xA4)
_NULL = const(0x60)  # procedure byte: wait, the work waiting time starts again (section 10.3.3)
_MAX_RESPONSE = const(1024)  # GET RESPONSE rounds may chain; a card that chains for ever is faulty
_AWAIT = const(-1)  # _procedure: the card asks for a body that is not known yet (prime)


class T0Psam(T0Line):
    """SAM port over T=0. Counts: sent, received (card bytes, echoes not counted), exchanges (TPDUs), apdus,
    resets (cold resets), faults, pps (accepted). baud, fi/di, atr: the link as it stands."""

    test_keys = False

    def __init__(self, uart, pwm, rst, present=None, clock_hz=CLOCK_HZ, clock=None, present_level=1, pps=True):
        super().__init__(uart, pwm, rst, present, clock_hz, clock, present_level, pps)
        self._started = None  # the command between start() and finish()
        self._early = self._fault = None
        self._begun = False
        self._prime_fault = None
        self._reselect = False  # the next cold reset selects the application again
        self._want_all = True
        self._ins = self._nb = self._sent = self._got = self._ne = 0
        self._body = None
        self._select = None  # the last SELECT that answered 9000: a reset loses it, the retry replays it
        self._hdr = bytearray(5)

    # ---- T=0 ----------------------------------------------------------------------------------------------

    def _tpdu(self, hdr, body, ne):
        # One command header and its procedure bytes (ISO 7816-3 section 10.3): -> (received, SW1, SW2).
        r = self._tpdu_start(hdr, body, ne)
        return r if r is not None else self._procedure(False)

    def _tpdu_start(self, hdr, body, ne, nb=-1):
        # The header, and the body as the procedure bytes ask for it: None once it is all sent (the card is at
        # work), or (received, SW1, SW2) when the card answered first. body None with nb > 0 (prime): _AWAIT
        # when the card asks for the body.
        self.exchanges += 1
        self._ins = hdr[1]
        self._body = body
        self._nb = nb if nb >= 0 else (len(body) if body is not None else 0)
        self._sent = self._got = 0
        self._ne = ne
        self._send(hdr)
        return self._procedure(self._nb > 0)

    def _procedure(self, until_sent):
        # The procedure-byte loop; until_sent: return None as soon as the whole body has gone.
        ins = self._ins
        nb = self._nb
        ne = self._ne
        body = self._body
        wwt = self._wwt
        rx = self._rx
        while True:
            p = self._getc(wwt, "procedure byte")
            if p == _NULL:
                continue
            hi = p & 0xF0
            if hi == 0x60 or hi == 0x90:
                return self._got, p, self._getc(wwt, "SW2")
            if p == ins:
                if self._sent < nb:
                    if body is None:
                        self._want_all = True
                        return _AWAIT
                    self._send(body[self._sent:])
                    self._sent = nb
                    if until_sent:
                        return None
                    continue
                if self._got < ne:
                    self._got = self._getn(self._got, ne, wwt)
                    continue
            elif p == ins ^ 0xFF:
                if self._sent < nb:
                    if body is None:
                        self._want_all = False
                        return _AWAIT
                    self._send(body[self._sent : self._sent + 1])
                    self._sent += 1
                    if until_sent and self._sent == nb:
                        return None
                    continue
                if self._got < ne:
                    rx[self._got] = self._getc(wwt, "data")
                    self._got += 1
                    continue
            raise LinkFault("procedure byte %02X out of place (INS %02X, %d/%d sent, %d/%d received)" % (
                p, ins, self._sent, nb, self._got, ne))

    def _feed(self, body):
        # The body of a primed header, as its procedure byte asked (all, or one byte): -> as _tpdu_start.
        self._body = body
        nb = self._nb
        if self._want_all:
            self._send(body)
            self._sent = nb
            return None
        self._send(body[0:1])
        self._sent = 1
        return None if nb == 1 else self._procedure(True)

    def _case2(self, hdr, le):
        # A TPDU that reads; 6Cxx: wrong Le, the card says how many, send the same header with it (10.3.4).
        ne = le or 256
        got, sw1, sw2 = self._tpdu(hdr, None, ne)
        if sw1 == 0x6C:
            hdr[4] = sw2
            got, sw1, sw2 = self._tpdu(hdr, None, sw2 or 256)
        return got, sw1, sw2

    def _exchange_start(self, apdu):
        # -> (received, SW1, SW2) of the command TPDU, or None while the card works on a case 3/4 body.
        n = len(apdu)
        if n < 4:
            raise ValueError("APDU of %d bytes (at least CLA INS P1 P2)" % n)
        hdr = self._hdr
        hdr[0:4] = apdu[0:4]
        if n <= 5:  # case 1 (P3 = 0) or case 2 (P3 = Le)
            hdr[4] = apdu[4] if n == 5 else 0
            if n == 5:
                return self._case2(hdr, hdr[4])
            return self._tpdu(hdr, None, 0)
        # case 3 or 4: the data in the command TPDU, an answer through 61xx GET RESPONSE
        lc = apdu[4]
        if lc == 0 or n not in (5 + lc, 6 + lc):
            raise ValueError("APDU of %d bytes does not match its Lc %d" % (n, lc))
        hdr[4] = lc
        return self._tpdu_start(hdr, memoryview(apdu)[5 : 5 + lc], 0)

    def _exchange_end(self, r):
        got, sw1, sw2 = r if r is not None else self._procedure(False)
        hdr = self._hdr
        out = bytearray(self._rx[:got])
        while sw1 == 0x61:  # 61xx: xx more bytes are waiting: GET RESPONSE 00 C0 00 00 xx (section 10.3.3)
            if len(out) > _MAX_RESPONSE:
                raise LinkFault("GET RESPONSE chained beyond %d bytes" % _MAX_RESPONSE)
            hdr[0] = 0x00
            hdr[1] = _INS_GET_RESPONSE
            hdr[2] = hdr[3] = 0
            hdr[4] = sw2
            got, sw1, sw2 = self._case2(hdr, sw2)
            out.extend(self._rx[:got])
        out.append(sw1)
        out.append(sw2)
        return bytes(out)

    def _exchange(self, apdu):
        return self._exchange_end(self._exchange_start(apdu))

    # ---- the SAM port ---------------------------------------------------------------------------------------

    def reset(self):
        """Cold reset now (deactivating first): -> the Atr. LinkFault when the card does not answer rightly."""
        self._deactivate()
        return self._cold_reset()

    def off(self):
        """Deactivate the PSAM (RST low, clock stopped); the next transceive cold-resets it."""
        self._deactivate()

    def _activate(self, apdu, reselect=False):
        # A cold reset, and, after a reset that was not the card's first (a fault, a primed header given up),
        # the application selected again (a reset leaves it) unless apdu is that SELECT.
        reselect = reselect or self._reselect
        self._reselect = False
        self._cold_reset()
        if reselect and self._select is not None and bytes(apdu) != self._select:
            r = self._exchange(self._select)
            if r[-2:] != b"\x90\x00":
                self._deactivate()
                raise SamError("PSAM: selecting its application again after a reset answered %s" % r.hex())

    def _answer(self, apdu):
        if self.atr is None:
            self._activate(apdu)
        return self._selected(apdu, self._exchange(apdu))

    def _selected(self, apdu, r):
        if apdu[1] == _INS_SELECT and r[-2:] == b"\x90\x00":
            self._select = bytes(apdu)
        return r

    def transceive(self, apdu):
        """APDU -> data + SW1 SW2 (a status word is an answer); SamError when the link fails twice."""
        self.start(apdu)
        return self.finish()

    def prime(self, hdr):
        """Send a command header now and take its procedure byte, while the tap waits for the card; the start()
        of the APDU with this header then sends only its body (docs/design.md "8070 while the card takes the
        cache update": 8070's header goes during INITIALIZE, 8072's during DEBIT). ISO 7816-3 section 10.3 sets
        a card no limit on waiting for the body. Never raises: a fault shows at start() / finish()."""
        if self._primed is not None:
            # Still waiting for a body: this one's (the last tap ended before its 8070), or another's (8072 after
            # a DEBIT whose answer was lost: its 8070 session may yet verify that card's PROVE; only a command
            # that cannot wait ends it, with a cold reset at start()).
            return
        if self.present is not None and self.present.value() != self.present_level:
            return
        self._prime_fault = None
        try:
            if self.atr is None:
                self._activate(hdr)
            h = self._hdr
            h[0:5] = hdr
            if self._tpdu_start(h, None, 0, h[4]) == _AWAIT:
                self._primed = bytes(hdr)
            else:
                self._deactivate()  # an answer to the header alone (a status word): start() sends it whole,
                self._reselect = True  # after a reset and the application selected again
        except (LinkFault, SamError) as e:
            self._prime_fault = e

    def start(self, apdu):
        """Send a command with data (case 3/4) and return while the PSAM works on it; finish() then takes its
        answer (docs/design.md "8070 while the card takes the cache update"). `apdu` must stay unchanged until
        finish(). A link fault here is kept for finish(), which recovers as transceive does; only a PSAM missing
        from its slot raises (SamError)."""
        if self.present is not None and self.present.value() != self.present_level:
            self._deactivate()
            raise SamError("PSAM not in its slot")
        self.apdus += 1
        self._started = apdu
        self._early = self._fault = None
        self._begun = False
        if self._prime_fault is not None:
            self._fault, self._prime_fault = self._prime_fault, None
            if isinstance(self._fault, SamError):
                raise self._fault
            return
        if self._primed is not None:
            if len(apdu) > 5 and apdu[0:5] == self._primed:
                self._primed = None
                try:
                    self._early = self._feed(memoryview(apdu)[5 : 5 + apdu[4]])
                    self._begun = True
                except LinkFault as e:
                    self._fault = e
                return
            self._deactivate()  # the PSAM waits for another command's body: reset, select again, send this one
            self._reselect = True
        if len(apdu) <= 5:
            return  # nothing to send ahead: finish() exchanges it whole
        try:
            if self.atr is None:
                self._activate(apdu)
            self._early = self._exchange_start(apdu)
            self._begun = True
        except LinkFault as e:
            self._fault = e

    def finish(self):
        """The answer to the command start() sent: data + SW1 SW2; SamError when the link fails twice."""
        apdu = self._started
        if apdu is None:
            raise ValueError("finish() without start()")
        self._started = None
        first = self._fault
        if first is None:
            try:
                if self._begun:
                    return self._selected(apdu, self._exchange_end(self._early))
                return self._answer(apdu)
            except LinkFault as e:
                first = e
        self.faults += 1
        self._deactivate()
        if apdu[1] == _INS_CREDIT:
            raise SamError("PSAM link fault at 8072 (%s); not retried: a reset ends the 8070 session" % first)
        try:
            self._activate(apdu, True)
            return self._answer(apdu)
        except LinkFault as e:
            self.faults += 1
            self._deactivate()
            raise SamError("PSAM link fault: %s; again after a cold reset: %s" % (first, e))


def open_psam(pins, clock_hz=CLOCK_HZ, uart_id=1, present_level=1, pps=True, clock=None):
    """T0Psam on the board's pins: {"psam_io": (25, "io"), "psam_clk": ..., "psam_rst": ..., "psam_detect": ...}.

    TX and RX on the one I/O pin: the UART driver makes it open drain (MicroPython 1.27 / ESP-IDF 5.5,
    notes/board.md); the slot's pull-up holds the line high.
    """
    import machine

    io = pins["psam_io"][0]
    uart = machine.UART(uart_id, baudrate=9600, bits=8, parity=0, stop=2, tx=io, rx=io, timeout=0, timeout_char=0)
    pwm = machine.PWM(machine.Pin(pins["psam_clk"][0]), freq=clock_hz, duty_u16=0)
    rst = machine.Pin(pins["psam_rst"][0], machine.Pin.OUT, value=0)
    det = pins.get("psam_detect")
    present = machine.Pin(det[0], machine.Pin.IN) if det else None
    return T0Psam(uart, pwm, rst, present, clock_hz=clock_hz, clock=clock, present_level=present_level, pps=pps)
