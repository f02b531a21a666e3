"""DKD and logit-standardised KD against float64 transcriptions of their papers' formulas, the
reference code's own route (re-derived from reading it), and known values."""
import numpy as np
import pytest
import torch

from fastkd import config as C
from fastkd.distill import method_for
from fastkd.train import engine
from fastkd.losses import dkd_loss, kd_kl, lskd_loss  # the public path the docs name


def _inputs(seed=0, n=6, k=10, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * scale, torch.randn(n, k, generator=g) * scale, torch.arange(n) % k


def _softmax64(z, temperature):
    z = np.asarray(z, np.float64) / temperature
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _dkd_terms64(s, t, labels, temperature):
    """Zhao et al. 2022, Eq. 1-5, per sample: TCKD over (p_target, 1 - p_target), NCKD over the
    non-target probabilities renormalised, and the teacher's p_target."""
    ps, pt = _softmax64(s, temperature), _softmax64(t, temperature)
    tckd, nckd, pt_target = [], [], []
    for i, y in enumerate(labels.tolist()):
        bs, bt = np.array([ps[i, y], 1 - ps[i, y]]), np.array([pt[i, y], 1 - pt[i, y]])
        tckd.append(float(np.sum(bt * np.log(bt / bs))))
        qs, qt = np.delete(ps[i], y) / (1 - ps[i, y]), np.delete(pt[i], y) / (1 - pt[i, y])
        nckd.append(float(np.sum(qt * np.log(qt / qs))))
        pt_target.append(pt[i, y])
    return np.array(tckd), np.array(nckd), np.array(pt_target)


@pytest.mark.parametrize("alpha,beta,temperature", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (2.0, 0.0, 20.0)])
def test_dkd_matches_the_papers_formula_in_float64(alpha, beta, temperature):
    s, t, y = _inputs()
    tckd, nckd, _ = _dkd_terms64(s, t, y, temperature)
    want = temperature ** 2 * np.mean(alpha * tckd + beta * nckd)
    assert dkd_loss(s, t, y, alpha=alpha, beta=beta, temperature=temperature).item() == pytest.approx(want, rel=1e-4)


def test_dkd_decomposes_classical_kd():
    # the paper's Eq. 5: KD = TCKD + (1 - p_target of the teacher) NCKD, sample by sample
    s, t, y = _inputs(seed=1)
    tckd, nckd, pt_target = _dkd_terms64(s, t, y, 4.0)
    assert kd_kl(s, t, 4.0).item() == pytest.approx(np.mean(tckd + (1 - pt_target) * nckd), rel=2e-5)


def _dkd_reference_route(s, t, y, alpha, beta, temperature):
    """The authors' code path (mdistiller's dkd_loss), re-derived: probabilities summed under a
    target mask and its complement, KL with a summed reduction over the batch divided by its size,
    and the non-target softmax taken with 1000 subtracted from the target logit (after / T)."""
    gt = torch.nn.functional.one_hot(y, s.shape[1]).float()
    ps, pt = torch.softmax(s / temperature, 1), torch.softmax(t / temperature, 1)
    bs = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], 1)
    bt = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], 1)
    tckd = (bt * (bt.log() - bs.log())).sum() * temperature ** 2 / len(y)
    qt = torch.softmax(t / temperature - 1000.0 * gt, 1)
    log_qs = torch.log_softmax(s / temperature - 1000.0 * gt, 1)
    nckd = torch.nn.functional.kl_div(log_qs, qt, reduction="sum") * temperature ** 2 / len(y)
    return alpha * tckd + beta * nckd


@pytest.mark.parametrize("seed", [0, 3])
def test_dkd_gives_the_reference_codes_numbers(seed):
    s, t, y = _inputs(seed=seed, k=100)  # CIFAR-100 sized rows, the paper's defaults
    want = _dkd_reference_route(s, t, y, 1.0, 8.0, 4.0).item()
    assert dkd_loss(s, t, y, alpha=1.0, beta=8.0, temperature=4.0).item() == pytest.approx(want, rel=1e-5)


def _lskd64(s, t, temperature):
    """Sun et al. 2024: each row z-scored with its sample (n - 1) standard deviation (+ 1e-7),
    then T^2 KL(softmax(Z(t) / T) || softmax(Z(s) / T)), summed over classes, batch mean."""
    def z(v):
        v = np.asarray(v, np.float64)
        return (v - v.mean(1, keepdims=True)) / (1e-7 + v.std(1, ddof=1, keepdims=True))
    ps, pt = _softmax64(z(s), temperature), _softmax64(z(t), temperature)
    return temperature ** 2 * float(np.mean(np.sum(pt * np.log(pt / ps), 1)))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_lskd_matches_the_papers_formula_in_float64(temperature):
    s, t, _ = _inputs(seed=2)
    assert lskd_loss(s, t, temperature=temperature).item() == pytest.approx(_lskd64(s, t, temperature), rel=2e-5)


def test_lskd_ignores_the_logits_scale_and_shift_kd_does_not():
    # a student whose logits are an affine image of the teacher's has nothing left to learn under
    # standardisation (a known value: 0), while plain KD still sees the scale difference
    s, _, _ = _inputs(seed=4)
    t = 3.0 * s + 5.0
    assert lskd_loss(s, t, temperature=2.0).item() == pytest.approx(0.0, abs=1e-5)
    assert kd_kl(s, t, 2.0).item() > 0.1


def test_dkd_warm_up_and_config():
    cfg = C.build(overrides=["distill.method=dkd", "distill.temperature=4", "distill.dkd.warmup=5"])
    method = method_for(cfg.distill)
    s, t, y = _inputs(seed=5)
    kd = dkd_loss(s, t, y, alpha=1.0, beta=8.0, temperature=4.0).item()
    ce = torch.nn.functional.cross_entropy(s, y).item()
    for epoch, weight in [(0, 0.2), (2, 0.6), (4, 1.0), (30, 1.0)]:
        method.set_epoch(epoch)
        assert method.loss(s, t, y).item() == pytest.approx(ce + weight * kd, rel=1e-5)
    assert C.build(overrides=["distill.method=lskd"]).identity_fields()["distill"]["method"] == "lskd"


@pytest.mark.parametrize("method", ["dkd", "lskd"])
def test_a_student_distils_with_each_method_from_the_cached_teacher(tmp_path, method):
    tiny = ["data.name=sample", "data.limit_train=64", "data.limit_test=32", "train.epochs=2", "train.batch_size=16",
            "data.eval_batch_size=32", "device=cpu", "model=lenet"]
    engine.train(C.build(overrides=tiny), tmp_path / "t", progress=False)
    student = C.build(overrides=tiny + ["augment=none", f"distill.teacher={tmp_path / 't'}", f"distill.method={method}",
                                        "distill.temperature=4"])
    m = engine.train(student, tmp_path / "s", kind="student", progress=False)
    assert m["teacher_cache"] == "used" and all(np.isfinite(h["train_loss"]) for h in m["history"])
