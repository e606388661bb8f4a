"""byte_sum in viper: native code on the board (mpy-cross -march=xtensawin); drivers/bytesum.py falls back to
plain Python where this cannot load (CPython, the WebAssembly interpreter, a .mpy for another architecture).

    from drivers._sum_viper import byte_sum   # ImportError / SyntaxError / ValueError where viper is missing
    byte_sum(b"\x01\x02\x03", 0, 3)          # -> 6
"""
import micropython


@micropython.viper
def byte_sum(buf, start: int, end: int) -> int:
    p = ptr8(buf)  # noqa: F821  (viper's built-in)
    s = 0
    i = start
    while i < end:
        s += p[i]
        i += 1
    return s
