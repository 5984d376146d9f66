"""The wrapper ``own_lines`` puts around stdout and stderr never closes the process's streams."""

import io
import sys

from orchestrator.terminal import BarLine, LineStream, own_lines


def test_closing_the_wrapper_leaves_the_stream_open():
    stream = io.StringIO()
    wrapper = LineStream(stream, BarLine(stream), is_stdout=False)
    wrapper.write("before\n")
    wrapper.close()  # as absl's log handler does with the sys.stderr it was made with
    assert not stream.closed
    stream.write("after\n")
    assert stream.getvalue() == "before\nafter\n"


def test_the_streams_are_the_process_own_again_after_the_block():
    stdout, stderr = sys.stdout, sys.stderr
    with own_lines():
        assert isinstance(sys.stderr, LineStream)
        sys.stderr.close()
    assert sys.stdout is stdout and sys.stderr is stderr and not stderr.closed
