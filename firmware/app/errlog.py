"""A small bounded error log: the last few unexpected exceptions, in RAM and in one small file (atomic rewrite).

    log = ErrorLog("/errors.log", keep=8); log.add(now_secs, "tap", exc); log.entries() -> [(secs, where, text)]

The tap loop never dies (issue 8): what it could not handle lands here, the screen shows out of service, and the
depot reads the entries with `service.status()`. Writes happen between taps only; a failing write is ignored
(the entry stays in RAM): the log must never be the reason the loop stops.
"""
from tunion.compat import const

_KEEP = const(8)
_TEXT = const(120)  # characters kept of each message


class ErrorLog:
    def __init__(self, path=None, keep=_KEEP, fs=None):
        self.path = path
        self.keep = keep
        self.fs = fs  # an object with open/rename (tunion.fsjournal.OsFs), or None for RAM only
        self.total = 0
        self._entries = []
        self._load()

    def _load(self):
        if self.path is None or self.fs is None:
            return
        try:
            f = self.fs.open(self.path, "rb")
            try:
                text = f.read().decode()
            finally:
                f.close()
        except (OSError, UnicodeError):
            return
        lines = text.split("\n")
        if lines and lines[0].startswith("total "):
            try:
                self.total = int(lines[0][6:])
            except ValueError:
                self.total = 0
            lines = lines[1:]
        for line in lines:
            parts = line.split("\t", 2)
            if len(parts) == 3:
                try:
                    self._entries.append((int(parts[0]), parts[1], parts[2]))
                except ValueError:
                    pass
        self._entries = self._entries[-self.keep :]

    def add(self, secs, where, exc):
        text = "%s: %s" % (type(exc).__name__, exc) if isinstance(exc, BaseException) else str(exc)
        text = text.replace("\n", " ").replace("\t", " ")[:_TEXT]
        self.total += 1
        self._entries.append((secs, where, text))
        if len(self._entries) > self.keep:
            self._entries.pop(0)
        self._save()

    def _save(self):
        if self.path is None or self.fs is None:
            return
        out = "total %d\n" % self.total
        for e in self._entries:
            out += "%d\t%s\t%s\n" % e
        tmp = self.path + ".new"
        try:
            f = self.fs.open(tmp, "wb")
            try:
                f.write(out.encode())
            finally:
                f.close()
            self.fs.rename(tmp, self.path)
        except OSError:
            pass

    def entries(self):
        return list(self._entries)
