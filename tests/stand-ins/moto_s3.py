"""A moto server (S3 and the rest of moto's AWS stand-ins) on 127.0.0.1 and the port given as
the first argument, that exits when its standard input closes: the test process that started it
holds the other end, so the server never outlives the tests."""
import os
import sys
import threading


def exit_on_eof():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=exit_on_eof, daemon=True).start()
from moto.server import main  # noqa: E402

main(["-H", "127.0.0.1", "-p", sys.argv[1]])
