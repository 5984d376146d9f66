"""Messages start on a line of their own while Keras draws its progress bar.

Keras redraws the bar of an epoch in place (``\\r``) and ends its line only when
the epoch ends. A warning or a log record written meanwhile, to either stream,
would continue the bar's line. :func:`own_lines` ends the bar's line first; the
bar goes on, redrawn, on the line below the message::

    with own_lines():
        model.fit(...)   # a warnings.warn() mid-epoch prints on its own line

Hydra's console log handler holds the ``sys.stdout`` it was configured with,
so handlers writing to that stream are pointed at the wrapper too, and back
when the block ends.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

#: What Keras's progress bar starts each redraw with.
REDRAW = ("\r", "\b")


class BarLine:
    """Whether the terminal's current line is an unfinished one (Keras's bar) on ``stdout``."""

    def __init__(self, stdout: TextIO):
        self.stdout = stdout
        self.open = False

    def end(self) -> None:
        """End the open line, if there is one."""
        if self.open:
            self.stdout.write("\n")
            self.stdout.flush()
            self.open = False


class LineStream:
    """A text stream that ends ``line``'s open bar before writing anything but a redraw of it."""

    def __init__(self, stream: TextIO, line: BarLine, is_stdout: bool):
        self._stream = stream
        self._line = line
        self._is_stdout = is_stdout

    def write(self, text: str) -> int:
        if not text:
            return 0
        redraw = self._is_stdout and text.startswith(REDRAW)
        if not redraw:
            self._line.end()
        written = self._stream.write(text)
        if self._is_stdout:
            self._line.open = not text.endswith("\n")
        return written

    def close(self) -> None:
        """Flush only: the wrapped stream is the process's own. (absl's log handler, made while
        the wrapper was ``sys.stderr``, closes its stream when Hydra sets up logging for a sweep's
        next job; closing ``stderr`` then would fail that job's first warning.)"""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def own_lines() -> Iterator[BarLine]:
    """Within the block, messages on ``stdout`` or ``stderr`` never continue Keras's bar line."""
    stdout, stderr = sys.stdout, sys.stderr
    line = BarLine(stdout)
    wrapped = {id(stdout): LineStream(stdout, line, True), id(stderr): LineStream(stderr, line, False)}
    handlers = [
        handler
        for logger in _loggers()
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in wrapped
    ]
    originals = [handler.stream for handler in handlers]
    sys.stdout, sys.stderr = wrapped[id(stdout)], wrapped[id(stderr)]
    for handler, stream in zip(handlers, originals, strict=True):
        handler.setStream(wrapped[id(stream)])
    try:
        yield line
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        for handler, stream in zip(handlers, originals, strict=True):
            handler.setStream(stream)


def _loggers() -> list[logging.Logger]:
    """The root logger and every logger created so far."""
    named = [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    return [logging.getLogger(), *named]
