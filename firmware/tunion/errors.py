"""The few faults the core raises; refusals are values (see outcome.py), only faults raise.

    try: resp = port.transceive(apdu)
    except CardLost: ...  # the card left the field
"""


class CardLost(Exception):
    """A card exchange failed: the card left the field or the reader timed out."""


class CardError(Exception):
    """The card answered something malformed or unexpected."""


class SamError(Exception):
    """The PSAM (or software SAM) failed or answered wrongly: the validator is out of service (OOS_SAM)."""


class SamKeyMissing(SamError):
    """The PSAM has no key for this card's key version or index: the card is refused (REFUSED_UNSUPPORTED), the
    validator stays in service."""


class JournalError(Exception):
    """The journal could not store a record."""
