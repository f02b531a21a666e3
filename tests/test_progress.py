"""Progress output readable in a log: one line per epoch off a terminal, bars only on one."""
import io

import pytest

from fastkd import config as C
from fastkd.train import engine
from fastkd.run.progress import bars_wanted

TINY = ["data.name=sample", "data.limit_train=64", "data.limit_test=32", "model=lenet", "train.epochs=3",
        "train.batch_size=16", "data.eval_batch_size=32", "device=cpu"]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_only_on_a_terminal_unless_asked(monkeypatch):
    monkeypatch.delenv("FASTKD_PROGRESS", raising=False)
    assert bars_wanted(_Terminal()) and not bars_wanted(io.StringIO())
    monkeypatch.setenv("FASTKD_PROGRESS", "bars")
    assert bars_wanted(io.StringIO())
    monkeypatch.setenv("FASTKD_PROGRESS", "lines")
    assert not bars_wanted(_Terminal())


@pytest.mark.parametrize("choice", ["lines", "bars"])
def test_a_logged_run_writes_one_line_per_epoch_and_no_redraws(tmp_path, capfd, monkeypatch, choice):
    monkeypatch.setenv("FASTKD_PROGRESS", choice)
    engine.train(C.build(overrides=TINY), tmp_path / "r", progress=True)
    out, err = capfd.readouterr()
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/3", "2/3", "3/3"]
    redraws = (out + err).count("\r")
    assert (redraws == 0) if choice == "lines" else (redraws > 0)
