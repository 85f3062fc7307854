"""Progress bars: drawn on a terminal, silent in a pipe (asv's setup_cache, CI logs)."""

import io
import time

import numpy as np

from imgload import materialize, progress, synthetic


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_once_a_step_lasts_and_erased_when_done(monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with progress.bar(4, "writing") as shown:
        shown.update(1)
        time.sleep(1.2)  # past the bar's delay: a step this long shows a bar
        shown.update(3)
    drawn = screen.getvalue()
    assert "writing" in drawn and "4/4" in drawn, drawn
    assert drawn.endswith("\r") or drawn.endswith("\x1b[A"), "erased when done (leave=False)"


def test_a_fast_step_draws_nothing_even_on_a_terminal(monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with progress.bar(4, "writing") as shown:
        shown.update(4)
    assert "writing" not in screen.getvalue()


def test_generating_and_writing_say_nothing_in_a_pipe(tmp_path, capfd):
    images = synthetic.images(seed=1, count=64, shape=(8, 8), workers=2)
    materialize.write_files(images, tmp_path, ("png",), workers=2)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert len(list((tmp_path / "png").iterdir())) == 64
    assert np.array_equal(images, synthetic.images(seed=1, count=64, shape=(8, 8), workers=1))
