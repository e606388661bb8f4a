"""Read a board's manifest.py (micropython-lib's format) on the host: what goes where on the board.

    from tools.manifest import board_files
    for src, dest in board_files("esp32-generic"):     # (Path on the host, path on the board)
        print(src, "->", dest)                           # .../firmware/tunion/apdu.py -> /lib/tunion/apdu.py

    python -m tools.manifest esp32-generic               # the same list, one "src -> dest" a line

Supported: metadata(...), include(path), package(name, base_path=".", files=None), module(name, base_path=".",
dest=None), require(name, pypi=DIST, files=None) (a package from an installed wheel, found with
importlib.metadata: the files come from the venv, never from the repo). `$(PROJECT)` is the repository root.
Our extensions: dest= (board folder, default "/lib"; for module() a path ending in .py names the board file
itself) and optional=True (skip a source that does not exist yet).

The board layout (docs/design.md "Deploy"): what the manifest puts under /lib goes into one application folder
/apps/<id> (id: a hash of the files, so the same build is the same folder); /app.ptr names the active folder
and the previous one; /boot.py (firmware/app/loader.py) puts the first complete one on sys.path. `layout()`
turns compiled (file, board path) pairs into that layout; the virtual board's seed step and `tunion-depot
deploy` both use it, so a seeded board and a deployed one hold the same files.

    lay = layout(pairs)              # lay.id "3f2a…", lay.folder "/apps/3f2a…", lay.listing (its MANIFEST)
    for src, dest in lay.install(tmp): ...   # a fresh board's files in write order, pointer last
"""
import hashlib
import importlib.metadata
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ROOT / "boards"


class ManifestError(ValueError):
    pass


class _Reader:
    def __init__(self):
        self.files = []  # (src Path, board path)
        self.meta = {}
        self.wheels = {}  # src Path -> (distribution, its RECORD path) for files that come from a wheel

    def _path(self, text, here):
        p = Path(str(text).replace("$(PROJECT)", str(ROOT)))
        return p if p.is_absolute() else here / p

    def _add(self, src, dest):
        if any(d == dest for _, d in self.files):
            raise ManifestError("two sources for %s" % dest)
        self.files.append((src, dest))

    def run(self, path):
        path = Path(path).resolve()
        if not path.is_file():
            raise ManifestError("no manifest at %s" % path)
        here = path.parent

        def metadata(**kw):
            self.meta.update(kw)

        def include(p):
            self.run(self._path(p, here))

        def package(name, base_path=".", files=None, dest="/lib", optional=False, opt=None):
            root = self._path(base_path, here) / name
            if not root.is_dir():
                if optional:
                    return
                raise ManifestError("%s: package %s not found at %s" % (path.name, name, root))
            srcs = [root / f for f in files] if files else sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
            for src in srcs:
                if not src.is_file():
                    raise ManifestError("%s: %s not found" % (path.name, src))
                self._add(src, dest.rstrip("/") + "/" + name + "/" + src.relative_to(root).as_posix())

        def module(name, base_path=".", dest="/lib", optional=False, opt=None):
            src = self._path(base_path, here) / name
            if not src.is_file():
                if optional:
                    return
                raise ManifestError("%s: module %s not found at %s" % (path.name, name, src))
            self._add(src, dest if dest.endswith(".py") else dest.rstrip("/") + "/" + name)

        def require(name, pypi=None, files=None, dest="/lib"):
            dist = pypi or name
            try:
                d = importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError:
                raise ManifestError("%s: requires %s: `pip install` it (requirements.txt pins it)" % (path.name, dist))
            root = Path(d.locate_file(name))
            n = len(self.files)
            package(name, base_path=root.parent, files=files, dest=dest)
            for src, _ in self.files[n:]:
                self.wheels[src] = (d, src.relative_to(root.parent).as_posix())

        code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
        exec(code, {"metadata": metadata, "include": include, "package": package, "module": module,
                    "require": require, "__file__": str(path)})


def read(path, wheels=False):
    """(files, metadata) of the manifest file at path; files as (src Path, board path) pairs in manifest order.
    wheels=True adds a third item: {src: (importlib.metadata.Distribution, path in its RECORD)} for the files
    require() took from installed wheels (the deploy checks them against the RECORD's hashes)."""
    r = _Reader()
    r.run(path)
    return (r.files, r.meta, r.wheels) if wheels else (r.files, r.meta)


def board_files(board="esp32-generic"):
    """(src, board path) pairs for boards/<board>/manifest.py."""
    return read(BOARDS / board / "manifest.py")[0]


# ---- the board layout: one folder per application version, a pointer naming the active one ------------------
APPS = "/apps"  # the application folders
POINTER = "/app.ptr"  # "<active id>\n<previous id>\n"; firmware/app/loader.py reads it
LISTING = "MANIFEST"  # in each folder, written last: "<sha256> <size> <path>" a line; its presence = complete
LIB = "/lib/"  # the manifest's application files; everything else (/boot.py, /main.py, /config.json) is a root file


def source_name(board_path):
    """The name mpy-cross records for a board file (what a traceback shows): its path inside the app folder."""
    return board_path[len(LIB):] if board_path.startswith(LIB) else board_path.lstrip("/")


class Layout:
    """Where compiled files go: `app` [(host file, path in the folder, size, sha256 hex)], `root` [(host file,
    board path)], the folder's `id`, `folder` and `listing` (the MANIFEST text)."""

    def __init__(self, app, root):
        self.app = app
        self.root = root
        self.listing = "".join("%s %d %s\n" % (h, n, rel) for _, rel, n, h in app)
        self.id = hashlib.sha256(self.listing.encode()).hexdigest()[:12]
        self.folder = APPS + "/" + self.id

    def pointer(self, previous=None):
        """The pointer file's text that makes this folder active, `previous` the fallback."""
        return self.id + "\n" + (previous + "\n" if previous and previous != self.id else "")

    def install(self, tmp):
        """(host file, board path) pairs that lay this out on a blank vfs, in the order a cut can stand: the
        folder's files, its MANIFEST, the root files, the pointer. MANIFEST and pointer are written into tmp."""
        tmp = Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / LISTING).write_text(self.listing)
        (tmp / "app.ptr").write_text(self.pointer())
        if not self.app:
            return list(self.root)
        out = [(src, self.folder + "/" + rel) for src, rel, _, _ in self.app]
        out.append((tmp / LISTING, self.folder + "/" + LISTING))
        out += self.root
        out.append((tmp / "app.ptr", POINTER))
        return out


def layout(pairs):
    """The Layout of (host file, board path) pairs already compiled as they go on a board (board paths as the
    manifest says: /lib/... for the application)."""
    app, root = [], []
    for src, dest in pairs:
        if dest.startswith(LIB):
            data = Path(src).read_bytes()
            app.append((Path(src), dest[len(LIB):], len(data), hashlib.sha256(data).hexdigest()))
        else:
            root.append((Path(src), dest))
    app.sort(key=lambda a: a[1])
    return Layout(app, root)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        for src, dest in board_files(argv[0] if argv else "esp32-generic"):
            print("%s -> %s" % (src.relative_to(ROOT) if src.is_relative_to(ROOT) else src, dest))
    except ManifestError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
