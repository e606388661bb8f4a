"""The sum of a buffer's bytes over [start, end), for the PN532 frames' checksums: viper on the board, the same
in plain Python where native code cannot load.

    from drivers.bytesum import byte_sum
    byte_sum(b"\xd4\x4a\x01\x00", 0, 4) & 0xFF   # -> 31 (0x1f): DCS is its complement, 0xe1

drivers/_sum_viper.py is native code once mpy-cross compiles it for the board's architecture (-march=xtensawin;
the virtual board's x64). Where it cannot load, this module's loop stands in: CPython (no `micropython`), the
WebAssembly interpreter (no native emitter: "invalid micropython decorator"), a .mpy built for another
architecture (ValueError). NATIVE says which one runs. notes/board.md: viper is 20-50x the bytecode.
"""
try:
    from drivers._sum_viper import byte_sum  # noqa: F401

    NATIVE = True
except (ImportError, SyntaxError, ValueError):
    NATIVE = False

    def byte_sum(buf, start, end):
        s = 0
        for i in range(start, end):
            s += buf[i]
        return s
