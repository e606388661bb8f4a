"""The virtual board: the firmware's files running on the real MicroPython unix port with simulated hardware,
reachable by the real `mpremote` through a pseudo-terminal (issue 8, "On the board").

    from vboard import Board                         # tests put tests/ on sys.path (pyproject)
    with Board("/tmp/board1") as b:
        subprocess.run([".venv/bin/mpremote", "connect", b.port, "exec", "print(1 + 1)"])

    PYTHONPATH=tests .venv/bin/python -m vboard --dir /tmp/board1 [--real-time] [--seed]   # from a shell

Parts: board/ (what MicroPython imports: machine.py, esp32.py, time.py stand-ins and the boot), controller.py
(the host side of their requests), clock.py, devices.py (the device interface, ReaderStub), ds3231.py,
ssd1306.py, relay.py (the pty), virtual.py (Board: the host API), helpers.py (what the app tests share).
"""
from .virtual import Board, VBoardError, micropython_command, read_partitions  # noqa: F401
