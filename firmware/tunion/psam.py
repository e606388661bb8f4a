"""The PSAM client: terminal identity and the two purchase commands (tunion-protocol.md section 5).

    sam = Psam(port); sam.open(); ttc, mac1 = sam.init_purchase(...); ok = sam.credit(mac2)
    sam.begin_purchase(...); card.update_cache(...); ttc, mac1 = sam.end_purchase()   # 8070 while the card works

A port with start(apdu) / finish() (drivers/psam_t0.py) gets 8070 sent at begin_purchase and answered at
end_purchase, so the PSAM computes while the tap talks to the card (docs/design.md "8070 while the card takes
the cache update"); any other port (the software SAM) answers it whole at end_purchase.

Any failure of the PSAM raises SamError: the validator goes out of service (OOS_SAM). Keys never leave it.
"""
from tunion.compat import const, u32, put_u32
from tunion.apdu import SW_OK, SW_MAC_INVALID, sw, data, sw_name
from tunion.errors import CardLost, SamError, SamKeyMissing

_READ_EF15 = b"\x00\xb0\x95\x00\x0e"  # serial(10) version(1) key card type(1) FCI(2)
_READ_EF16 = b"\x00\xb0\x96\x00\x06"  # terminal number, 6 bytes BCD
_SELECT_DF = b"\x00\xa4\x00\x00\x02\x80\x11"  # the T-Union PSAM application
_READ_EF17 = b"\x00\xb0\x97\x00\x01"  # byte 0: purchase key index for 8050
_LC_8070_TWO_LEVELS = const(0x24)  # 20 bytes + 2 factors of 8 (cardSN8 || issuerID8)
_HDR_8070 = b"\x80\x70\x00\x00\x24"  # its fixed header, Lc = _LC_8070_TWO_LEVELS
_HDR_8072 = b"\x80\x72\x00\x00\x04"  # Lc 4: MAC2
# 8070 answers meaning "no key for this card's key version / index" (protocol section 3 table: 9403 key index not
# supported; ISO 7816-4 6A88 referenced data not found): the card is refused, the PSAM is fine.
_KEY_MISSING_SWS = (0x9403, 0x6A88)


class Psam:
    def __init__(self, port):
        self.port = port
        self.serial = None
        self.terminal = None
        self.key_index = 1
        self.apdus = 0
        # The TTC of the last 8070: 8072 can verify MAC2 only for the session that 8070 opened.
        self.session_ttc = None
        self.test_keys = bool(getattr(port, "test_keys", False))
        self._cmd = bytearray(5 + _LC_8070_TWO_LEVELS + 1)
        self._started = False  # 8070 went out through port.start(): end_purchase() takes port.finish()

    def _x(self, apdu, n, what, started=False):
        self.apdus += 1
        try:
            r = self.port.finish() if started else self.port.transceive(apdu)
        except CardLost:
            self.session_ttc = None
            raise SamError("%s: PSAM not answering" % what)
        except (OSError, ValueError) as e:
            # A SAM port's own store failing (the software SAM's TTC file): the SAM cannot work (OOS_SAM).
            self.session_ttc = None
            raise SamError("%s: %s" % (what, e))
        if len(r) < 2:
            raise SamError("%s: answer too short" % what)
        s = sw(r)
        if s != SW_OK:
            if what == "PSAM 8070" and s in _KEY_MISSING_SWS:
                raise SamKeyMissing("%s: %s" % (what, sw_name(s)))
            raise SamError("%s: %s" % (what, sw_name(s)))
        d = data(r)
        if n is not None and len(d) != n:
            raise SamError("%s: %d bytes, expected %d" % (what, len(d), n))
        return d

    def open(self):
        """Read the PSAM's identity and select its T-Union application; SamError when it is not usable."""
        self.serial = bytes(self._x(_READ_EF15, 14, "PSAM EF15")[0:10])
        self.terminal = bytes(self._x(_READ_EF16, 6, "PSAM EF16"))
        self._x(_SELECT_DF, None, "PSAM select 8011")
        self.key_index = self._x(_READ_EF17, 1, "PSAM EF17")[0]
        self.session_ttc = None
        return self

    def init_purchase(self, random4, counter, amount, ttype, dt7, key_version, alg_id, sn8, issuer8):
        """INIT SAM FOR PURCHASE (80 70): (ttc, mac1). Factors cardSN8 || issuerID8 (section 5, T-Union N=2)."""
        self.begin_purchase(random4, counter, amount, ttype, dt7, key_version, alg_id, sn8, issuer8)
        return self.end_purchase()

    def prime_purchase(self):
        """8070's header ahead, on a port that can prime one (T=0: while the card works on INITIALIZE)."""
        p = getattr(self.port, "prime", None)
        if p is not None:
            p(_HDR_8070)

    def prime_credit(self):
        """8072's header ahead (T=0: while the card works on DEBIT)."""
        p = getattr(self.port, "prime", None)
        if p is not None:
            p(_HDR_8072)

    def begin_purchase(self, random4, counter, amount, ttype, dt7, key_version, alg_id, sn8, issuer8):
        """8070 sent (on a port that can start a command); end_purchase() returns its (ttc, mac1)."""
        a = self._cmd
        a[0:5] = _HDR_8070
        a[5:9] = random4
        a[9] = (counter >> 8) & 0xFF
        a[10] = counter & 0xFF
        put_u32(a, 11, amount)
        a[15] = ttype
        a[16:23] = dt7
        a[23] = key_version
        a[24] = alg_id
        a[25:33] = sn8
        a[33:41] = issuer8
        a[41] = 0x08
        self.session_ttc = None
        start = getattr(self.port, "start", None)
        self._started = False
        if start is not None:
            start(a)  # a link fault waits for finish(), which recovers; a missing PSAM raises SamError now
            self._started = True

    def end_purchase(self):
        """(ttc, mac1) of the 8070 begin_purchase() built; SamError / SamKeyMissing as init_purchase."""
        d = self._x(self._cmd, 8, "PSAM 8070", self._started)
        self._started = False
        ttc = u32(d, 0)
        self.session_ttc = ttc
        return ttc, bytes(d[4:8])

    def credit(self, mac2):
        """CREDIT SAM FOR PURCHASE (80 72): True when the PSAM verified MAC2, False when it rejected it."""
        self.apdus += 1
        try:
            r = self.port.transceive(_HDR_8072 + bytes(mac2))
        except CardLost:
            raise SamError("PSAM 8072: PSAM not answering")
        except (OSError, ValueError) as e:
            raise SamError("PSAM 8072: %s" % e)
        finally:
            self.session_ttc = None  # one 8072 per 8070
        s = sw(r) if len(r) >= 2 else 0
        if s == SW_OK:
            return True
        if s == SW_MAC_INVALID or (s >> 8) in (0x93, 0x69):
            return False
        raise SamError("PSAM 8072: %s" % sw_name(s))
