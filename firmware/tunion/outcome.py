"""The closed set of tap outcomes (validator.md section 2) and the one result object a tap returns.

    r = tap(...); if r.status == PAID: show(r.fare, r.balance)
"""

PAID = "PAID"
PAID_RECOVERED = "PAID_RECOVERED"  # a torn tap completed
IGNORED_REPEAT = "IGNORED_REPEAT"  # same card within 1 s: silent, no record
TAP_AGAIN = "TAP_AGAIN"  # torn after DEBIT was sent: intent open
REFUSED_BLOCKED = "REFUSED_BLOCKED"
REFUSED_NOT_ENABLED = "REFUSED_NOT_ENABLED"
REFUSED_EXPIRED = "REFUSED_EXPIRED"
REFUSED_NOT_YET_VALID = "REFUSED_NOT_YET_VALID"
REFUSED_DENYLISTED = "REFUSED_DENYLISTED"
REFUSED_ALREADY_PAID = "REFUSED_ALREADY_PAID"
REFUSED_INSUFFICIENT = "REFUSED_INSUFFICIENT"
REFUSED_UNSUPPORTED = "REFUSED_UNSUPPORTED"
CARD_ERROR = "CARD_ERROR"
OOS_CLOCK = "OOS_CLOCK"
OOS_RECORDS_FULL = "OOS_RECORDS_FULL"
OOS_CONFIG = "OOS_CONFIG"
OOS_SAM = "OOS_SAM"
# DEBIT answered 9000 but the PSAM rejected MAC2 (a forged card or a corrupted byte on the PSAM line look the
# same): the record is `completed` with the card's TAC and FLAG_MAC2_BAD, clearing decides; the passenger is not
# shown a paid ride but told to see the driver (validator.md section 3). Not a refusal counter: the depot counts
# these from the flag.
MAC2_REJECTED = "MAC2_REJECTED"

REFUSALS = (
    REFUSED_BLOCKED,
    REFUSED_NOT_ENABLED,
    REFUSED_EXPIRED,
    REFUSED_NOT_YET_VALID,
    REFUSED_DENYLISTED,
    REFUSED_ALREADY_PAID,
    REFUSED_INSUFFICIENT,
    REFUSED_UNSUPPORTED,
)
OUT_OF_SERVICE = (OOS_CLOCK, OOS_RECORDS_FULL, OOS_CONFIG, OOS_SAM)
# The order of ALL is an on-flash index (the journals' refusal counters are stored by position): new statuses
# are appended, never inserted (tests/test_journal_counters.py pins it).
ALL = (PAID, PAID_RECOVERED, IGNORED_REPEAT, TAP_AGAIN) + REFUSALS + (CARD_ERROR,) + OUT_OF_SERVICE + (MAC2_REJECTED,)


class Result:
    """What one tap did. `fare` and `balance` are integer fen; `balance` is after the payment (or the card's
    balance for REFUSED_INSUFFICIENT), None when unknown. `seq` is the outcome record's sequence number."""

    def __init__(self, status, fare=None, balance=None, card_no=None, seq=None, flags=0, detail=""):
        self.status = status
        self.fare = fare
        self.balance = balance
        self.card_no = card_no
        self.seq = seq
        self.flags = flags
        self.detail = detail

    def __repr__(self):
        return "Result(%s fare=%s balance=%s card=%s seq=%s flags=%d %s)" % (
            self.status,
            self.fare,
            self.balance,
            self.card_no,
            self.seq,
            self.flags,
            self.detail,
        )
