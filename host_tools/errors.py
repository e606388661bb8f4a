"""The depot tool's one error type: every failure the technician can meet is a DepotError with a one-line message.

    from host_tools.errors import DepotError
    raise DepotError("board on /dev/ttyUSB0 stopped answering (no raw REPL after 3 Ctrl-C)")

The CLI (host_tools/cli.py) turns it into `error: <message>` on stderr and exit status `code` (1 unless said);
OSError, serial errors and a board that stops answering are wrapped into it where they happen, so no traceback
ever reaches the technician.
"""


class DepotError(Exception):
    """One line for the technician; `code` is the exit status (2: bad usage or input, 3: damaged data found)."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code
