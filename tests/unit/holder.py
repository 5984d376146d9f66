"""A second process that takes a lock and holds it until told to let go, synchronised through pipes."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import cli_env

SCRIPT = """
import sys
{take}
print("held", flush=True)
sys.stdin.readline()
{release}
print("released", flush=True)
sys.stdin.readline()
"""


class Holder:
    """``python -c`` running ``take`` (one line of code), then, once told, ``release``.

    Example::

        with Holder("index = RunIndex(root, key); assert index.claim()", "index.release()") as other:
            ...               # the lock is held by ``other``
            other.release()   # now it is not, and ``other`` still lives
    """

    def __init__(self, take: str, release: str = "pass"):
        self.process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT.format(take=take, release=release)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )

    def __enter__(self) -> Holder:
        self._expect("held")
        return self

    def release(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self._expect("released")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def _expect(self, word: str) -> None:
        line = self.process.stdout.readline().strip()
        if line != word:
            self.process.kill()
            raise AssertionError(
                f"the holding process said {line!r}, not {word!r}:\n{self.process.stderr.read()}"
            )

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()
