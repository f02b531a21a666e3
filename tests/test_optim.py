import pytest

from fastkd.config import TrainConfig
from fastkd.train.optim import lr_factor


def test_step_schedule_decays_at_milestone_epochs():
    tc = TrainConfig(epochs=10, schedule="step", milestones=[3, 6], lr_decay=0.1)
    f = [lr_factor(s, steps_per_epoch=4, tc=tc) for s in range(40)]
    assert f[0] == f[11] == 1.0
    assert f[12] == pytest.approx(0.1) and f[23] == pytest.approx(0.1)
    assert f[24] == pytest.approx(0.01)


def test_warmup_then_cosine_reaches_floor():
    tc = TrainConfig(epochs=10, schedule="cosine", warmup_epochs=2, min_lr_ratio=0.1)
    spe = 5
    warm = [lr_factor(s, steps_per_epoch=spe, tc=tc) for s in range(10)]
    assert warm == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lr_factor(10, steps_per_epoch=spe, tc=tc) == pytest.approx(1.0)
    assert lr_factor(50, steps_per_epoch=spe, tc=tc) == pytest.approx(0.1)
    assert lr_factor(30, steps_per_epoch=spe, tc=tc) == pytest.approx(0.1 + 0.9 * 0.5)


def test_linear_schedule_midpoint():
    tc = TrainConfig(epochs=4, schedule="linear")
    assert lr_factor(20, steps_per_epoch=10, tc=tc) == pytest.approx(0.5)
