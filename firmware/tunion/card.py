"""The purse application client: the card-side APDUs of a T-Union purchase (tunion-protocol.md sections 1-3).

    purse = Purse(card_port); sw, ef15 = purse.select(); ef17 = purse.read_ef17()

Expected status words come back as values (the tap decides what they mean); answers that cannot be right
raise CardError; a failed exchange raises CardLost from the port.
"""
from tunion.compat import const, put_u16, put_u32
from tunion.apdu import SW_OK, SW_FILE_NOT_FOUND, SW_RECORD_NOT_FOUND, sw, data, expect, tlv_find, tlv_items
from tunion.cardfiles import EF15_SIZE, EF17_SIZE, EF18_SIZE, EF1E_SIZE, INIT_SIZE
from tunion.errors import CardError

AID = b"\xa0\x00\x00\x06\x32\x01\x01\x05"  # MOT_T_EP, section 1
_SELECT_PPSE = b"\x00\xa4\x04\x00\x0e2PAY.SYS.DDF01\x00"
_SELECT_AID = b"\x00\xa4\x04\x00\x08" + AID + b"\x00"
_READ_EF15 = b"\x00\xb0\x95\x00\x1e"  # READ BINARY SFI 0x15, 30 bytes
_READ_EF17 = b"\x00\xb0\x97\x00\x3c"  # READ BINARY SFI 0x17, 60 bytes
_GET_BALANCE = b"\x80\x5c\x00\x02\x04"  # section 7.3: P1 00 = purse balance
_TAG_FCI_PROPRIETARY = const(0xA5)
_TAG_ISSUER_DISCRETIONARY = const(0xBF0C)
_TAG_APP_TEMPLATE = const(0x61)
_TAG_AID = const(0x4F)
_TAG_EF15 = const(0x9F0C)  # EF15 carried in the SELECT answer (section 1)
_SFI_EF18 = const(0x18)
_SFI_EF1E = const(0x1E)
_P1_PURCHASE = const(0x01)
_P1_CAPP_PURCHASE = const(0x03)
_P2_EP = const(0x02)


def ef15_in_fci(fci):
    """EF15's 30 bytes from a SELECT answer's tag 9F0C (section 1), or None when it has none of that size;
    CardError when the FCI is malformed."""
    at = tlv_find(fci, _TAG_EF15)
    if at is None or at[1] - at[0] != EF15_SIZE:
        return None
    return bytes(fci[at[0] : at[1]])


class Purse:
    def __init__(self, port):
        self.port = port
        self.apdus = 0
        # Run by the next command on a port with transceive_during(apdu, fn) while the card works on it (the
        # PN532: after its ACK), then dropped; other ports never run it (docs/design.md, the tap's overlaps).
        self.meanwhile = None
        self._init = bytearray(17)  # 80 50 P1 02 0B keyIdx amount(4) term(6) 0F
        self._debit = bytearray(21)  # 80 54 01 00 0F TTC(4) date(4) time(3) MAC1(4) 08
        self._cache = bytearray(5 + EF1E_SIZE)  # 80 DC 00 F0 30 + record
        self._rec = bytearray(b"\x00\xb2\x01\x00\x00")

    def _x(self, apdu):
        self.apdus += 1
        m = self.meanwhile
        if m is not None:
            self.meanwhile = None
            during = getattr(self.port, "transceive_during", None)
            if during is not None:
                return during(apdu, m)
        return self.port.transceive(apdu)

    def select(self):
        """PPSE then the purse AID, or the AID directly when PPSE fails (section 1). Returns (sw, ef15_raw or None):
        ef15_raw when the SELECT answer carried EF15 in tag 9F0C."""
        s, fci = self.select_fci()
        return s, ef15_in_fci(fci) if fci is not None else None

    def select_fci(self):
        """select() without the answer read: (sw, the SELECT answer's data or None unless 9000), for
        ef15_in_fci() (the tap runs it while the card reads out EF17: tunion/meanwhile.py)."""
        aid = _SELECT_AID
        try:
            r = self._x(_SELECT_PPSE)
            if sw(r) == SW_OK:
                aid = self._aid_from_ppse(data(r)) or _SELECT_AID
        except CardError:
            pass  # PPSE is only discovery: a malformed one falls back to the AID itself
        r = self._x(aid)
        s = sw(r)
        if s != SW_OK:
            return s, None
        return s, data(r)

    def _aid_from_ppse(self, fci):
        # The entry whose AID is the purse AID, or a 16-byte extended form of it (section 1).
        raw = bytes(fci)
        i = raw.find(AID)
        if i >= 2 and raw[i - 2] == _TAG_AID and raw[i - 1] == 8 and raw.find(AID, i + 1) < 0:
            # The usual FCI, found in C: the AID's bytes once, as a 4F 08 value. The walk below gives the same
            # answer whenever that holds (an extended form would hold the bytes a second time; a stray copy
            # outside an entry leaves the walk empty or failing, and select() then sends the plain AID too), and
            # costs ~55 us a tap on the interpreter (~1.2 ms on an ESP32).
            return _SELECT_AID
        at = tlv_find(fci, _TAG_ISSUER_DISCRETIONARY)
        if at is None:
            return None
        for t, a, b in tlv_items(fci, at[0], at[1]):
            if t != _TAG_APP_TEMPLATE:
                continue
            v = tlv_find(fci, _TAG_AID, a, b)
            if v is None:
                continue
            n = v[1] - v[0]
            if n >= 8 and n <= 16 and bytes(fci[v[0] : v[0] + 8]) == AID:
                if n == 8:
                    return _SELECT_AID
                return b"\x00\xa4\x04\x00" + bytes((n,)) + bytes(fci[v[0] : v[1]]) + b"\x00"
        return None

    def read_ef15(self):
        return bytes(expect(self._x(_READ_EF15), EF15_SIZE, "EF15"))

    def read_ef17(self):
        return bytes(expect(self._x(_READ_EF17), EF17_SIZE, "EF17"))

    def read_record(self, sfi, n, size):
        """(sw, raw) of record n (1 = newest) of a cyclic file; raw None unless 9000 with `size` bytes."""
        a = self._rec
        a[2] = n
        a[3] = (sfi << 3) | 4  # P2: SFI, P1 is a record number
        r = self._x(a)
        s = sw(r)
        if s != SW_OK:
            return s, None
        d = data(r)
        if len(d) != size:
            raise CardError("record %02X/%d: %d bytes, expected %d" % (sfi, n, len(d), size))
        return s, bytes(d)

    def read_last_ef1e(self):
        """(has_ef1e, raw or None): the newest EF1E record; has_ef1e False when the card has no EF1E (6A82), which
        means the simple purchase form (validator.md section 1)."""
        s, raw = self.read_record(_SFI_EF1E, 1, EF1E_SIZE)
        if s == SW_OK:
            return True, raw
        if s == SW_RECORD_NOT_FOUND:
            return True, None
        if s == SW_FILE_NOT_FOUND:
            return False, None
        raise CardError("EF1E: status %04X" % s)

    def read_ef18(self, n):
        """(sw, raw or None) of EF18 record n (1 = newest)."""
        return self.read_record(_SFI_EF18, n, EF18_SIZE)

    def get_balance(self):
        d = expect(self._x(_GET_BALANCE), 4, "GET BALANCE")
        return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) & 0x7FFFFFFF  # section 7.3: mask bit 31

    def init_purchase(self, compound, key_index, amount, terminal):
        """(sw, raw15 or None): INITIALIZE FOR CAPP PURCHASE (compound) or FOR PURCHASE (section 3)."""
        a = self._init
        a[0] = 0x80
        a[1] = 0x50
        a[2] = _P1_CAPP_PURCHASE if compound else _P1_PURCHASE
        a[3] = _P2_EP
        a[4] = 0x0B
        a[5] = key_index
        put_u32(a, 6, amount)
        a[10:16] = terminal
        a[16] = 0x0F
        r = self._x(a)
        s = sw(r)
        if s != SW_OK:
            return s, None
        d = data(r)
        if len(d) != INIT_SIZE:
            raise CardError("INITIALIZE: %d bytes, expected %d" % (len(d), INIT_SIZE))
        return s, bytes(d)

    def update_cache(self, ef1e_record):
        """UPDATE CAPP DATA CACHE of EF1E (80 DC 00 F0 30, section 3): the card commits it with the DEBIT."""
        a = self._cache
        a[0:5] = b"\x80\xdc\x00\xf0\x30"
        a[5:] = ef1e_record
        return sw(self._x(a))

    def debit(self, ttc, dt7, mac1):
        """(sw, tac, mac2): DEBIT FOR (CAPP) PURCHASE. tac and mac2 are None unless the answer is 9000 with 8 bytes:
        a 9000 with another length is (9000, None, None), so the tap can tell "the card said it debited, but the
        proof is garbled" (never settled as not debited) from an error status."""
        a = self._debit
        a[0:5] = b"\x80\x54\x01\x00\x0f"
        put_u32(a, 5, ttc)
        a[9:16] = dt7
        a[16:20] = mac1
        a[20] = 0x08
        r = self._x(a)
        s = sw(r)
        if s != SW_OK:
            return s, None, None
        d = data(r)
        if len(d) != 8:
            return s, None, None
        return s, bytes(d[0:4]), bytes(d[4:8])

    def get_prove(self, ttype, counter):
        """(sw, mac2, tac) for the card's purchase with this type and (incremented) counter (section 3, GET
        TRANSACTION PROVE; section 7.2 for the counter); mac2 and tac are None unless the answer is 9000.
        A 9000 answer that is not 8 bytes raises CardError."""
        a = bytearray(b"\x80\x5a\x00\x00\x02\x00\x00\x08")
        a[3] = ttype
        put_u16(a, 5, counter & 0xFFFF)
        r = self._x(a)
        s = sw(r)
        if s != SW_OK:
            return s, None, None
        d = data(r)
        if len(d) != 8:
            raise CardError("GET TRANSACTION PROVE: %d bytes, expected 8" % len(d))
        return s, bytes(d[0:4]), bytes(d[4:8])
