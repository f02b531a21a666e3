"""A distillation method is one class plus one registry line: a small method registered here
gets its config keys, its loss in training, its cache rule and its report description."""
from dataclasses import dataclass

import pytest
import torch

from fastkd import config as C
from fastkd.train import engine
from fastkd.distill import KDMethod, method_for
from fastkd.distill.registry import register, unregister
from fastkd.errors import ConfigError
from fastkd.fields import POSITIVE, opt
from fastkd.train.objectives import CachedDistillation, Distillation, objective_for
from fastkd.report.summary import _setting
from fastkd.train.teacher_cache import use_cache

TINY = ["data.name=sample", "data.limit_train=64", "data.limit_test=32", "train.epochs=1", "train.batch_size=16",
        "data.eval_batch_size=32", "device=cpu", "model=lenet"]


class LogitMatching(KDMethod):
    """(1 - gamma) CE + gamma * weight * mean squared difference of the logits (Ba & Caruana 2014)."""

    @dataclass
    class Options:
        weight: float = opt(1.0, range=POSITIVE)

    reads_cached_outputs = False  # pretend it needs the live teacher

    def loss(self, student_logits, teacher_logits, targets):
        ce = torch.nn.functional.cross_entropy(student_logits, targets.argmax(-1))
        mse = (student_logits - teacher_logits).pow(2).mean()
        return (1 - self.gamma) * ce + self.gamma * self.options.weight * mse


@pytest.fixture
def registered():
    register("logit_l2", LogitMatching)
    yield
    unregister("logit_l2")


def test_a_registered_method_gets_config_keys_ranges_docs_and_identity(registered):
    cfg = C.build(overrides=["distill.method=logit_l2", "distill.logit_l2.weight=3"])
    assert cfg.distill.logit_l2.weight == 3
    assert cfg.identity_fields()["distill"]["method"] == "logit_l2"
    assert cfg.identity_fields()["distill"]["logit_l2"] == {"weight": 3}
    with pytest.raises(ConfigError, match="distill.logit_l2.weight: -1.0 is out of range"):
        C.build(overrides=["distill.method=logit_l2", "distill.logit_l2.weight=-1"])
    ref = C.config_reference()
    assert "| `distill.method` | choice | `'kd'` | kd, dkd, lskd, logit_l2 |" in ref and "`distill.logit_l2.weight`" in ref
    # the default method and an untouched section leave identities as they were before methods had names
    assert set(C.build().identity_fields()["distill"]) == {"temperature", "gamma", "reduction"}


def test_its_loss_is_what_the_training_objective_computes(registered):
    cfg = C.build(overrides=["distill.method=logit_l2", "distill.logit_l2.weight=2", "distill.gamma=0.25"])
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    y = torch.nn.functional.one_hot(torch.arange(8) % 10, 10).float()
    expected = 0.75 * torch.nn.functional.cross_entropy(s.double(), y.argmax(-1).long()) + 0.5 * (s - t).double().pow(2).mean()
    teacher = torch.nn.Identity()
    objective = objective_for(cfg, teacher, autocast=lambda: torch.autocast("cpu", enabled=False))
    assert isinstance(objective, Distillation) and isinstance(objective.method, LogitMatching)
    batch = type("Batch", (), {"images": t, "targets": y})
    assert objective.loss(s, batch).item() == pytest.approx(expected.item(), rel=1e-6)
    cached = objective_for(cfg, teacher, autocast=None, cached_logits=t)
    assert isinstance(cached, CachedDistillation)
    assert method_for(cfg.distill).options.weight == 2


def test_a_method_that_needs_the_live_teacher_is_never_cached(registered, tmp_path):
    base = TINY + ["augment=none", f"distill.teacher={tmp_path}"]
    assert use_cache(C.build(overrides=base), "student")
    assert not use_cache(C.build(overrides=base + ["distill.method=logit_l2"]), "student")
    with pytest.raises(ConfigError, match="distill.method=logit_l2 needs more of the teacher"):
        use_cache(C.build(overrides=base + ["distill.method=logit_l2", "distill.cache_teacher=on"]), "student")


def test_a_student_trains_with_the_registered_method_and_the_report_names_it(registered, tmp_path):
    engine.train(C.build(overrides=TINY), tmp_path / "t", progress=False)
    student = C.build(overrides=TINY + ["augment=none", f"distill.teacher={tmp_path / 't'}", "distill.method=logit_l2",
                                        "distill.logit_l2.weight=0.5"])
    m = engine.train(student, tmp_path / "s", kind="student", progress=False)
    assert m["history"][0]["train_loss"] > 0
    recorded = C.read_yaml(tmp_path / "s" / "config.yaml")["distill"]
    assert _setting(recorded) == ("logit_l2", "T = 20, gamma = 0.5, weight = 0.5")
    assert _setting({"temperature": 4.0, "gamma": 0.9, "reduction": "mean"}) == \
        ("kd", "T = 4, gamma = 0.9, KL reduction mean")
