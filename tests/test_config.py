import pytest

from fastkd import config as C


def test_layers_apply_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.3\n  epochs: 5\nmodel: lenet\n")
    cfg = C.build(preset="paper-teacher", files=[f], overrides=["train.lr=0.05", "augment=mixup", "train.milestones=[1,2]"])
    assert cfg.model == "lenet" and cfg.train.epochs == 5 and cfg.train.lr == 0.05
    assert cfg.augment == "mixup" and cfg.train.milestones == [1, 2]
    assert cfg.data.val_split == 5000  # from the preset


def test_unknown_key_names_key_and_known_keys():
    with pytest.raises(C.ConfigError, match=r"unknown config key 'train.lrr'.*lr, momentum"):
        C.build(overrides=["train.lrr=1"])
    with pytest.raises(C.ConfigError, match="unknown config key 'modle'"):
        C.build(overrides=["modle=lenet"])


@pytest.mark.parametrize("override,msg", [
    ("train.precision=fp8", "train.precision: invalid value 'fp8'; allowed: no, bf16, fp16"),
    ("train.epochs=ten", "train.epochs: expected an integer"),
    ("train.epochs=0", "train.epochs: 0 is out of range; allowed: >= 1"),
    ("model=resnet19", "model: invalid value 'resnet19'; allowed: alexnet, lenet"),
    ("distill.method=dkdd", "distill.method: invalid value 'dkdd'; allowed: kd, dkd, lskd"),
    ("augment=mixup+cutmix", "at most one mixing"),
    ("distill.gamma=2", "distill.gamma"),
    ("train.channels_last=maybe", "expected true or false"),
    ("data.backend=nope", "data.backend: invalid value"),
    ("train.lr", "expected KEY=VALUE"),
    # every numeric field is range-checked, nan and inf refused (the run-safety cases)
    ("train.grad_clip=-1", "train.grad_clip: -1.0 is out of range; allowed: > 0"),
    ("train.max_steps_per_epoch=-1", "train.max_steps_per_epoch: -1 is out of range; allowed: >= 1"),
    ("data.limit_train=-1990", "data.limit_train: -1990 is out of range"),
    ("train.lr=.nan", "train.lr: expected a finite number"),
    ("train.lr=.inf", "train.lr: expected a finite number"),
    ("train.momentum=1", "train.momentum: 1.0 is out of range; allowed: [0, 1)"),
    ("data.val_split=12.5", "neither a fraction"),
    ("train.milestones=[80,60]", "strictly increasing"),
    ("data.mean=[0.5,0.5]", "data.mean: expected 3"),
    ("aug.cutmix_prob=1.5", "aug.cutmix_prob: 1.5 is out of range; allowed: [0, 1]"),
])
def test_bad_values_fail_before_work(override, msg):
    with pytest.raises(C.ConfigError) as e:
        C.build(overrides=[override])
    assert msg in str(e.value)


def test_every_preset_resolves_and_unknown_preset_lists_them():
    for name in C.preset_names():
        C.build(preset=name)
    assert {"paper-teacher", "paper-student", "fast", "smoke"} <= set(C.preset_names())
    with pytest.raises(C.ConfigError, match="available: .*smoke"):
        C.build(preset="nope")


def test_paper_presets_carry_the_protocol():
    s = C.build(preset="paper-student")
    assert (s.distill.temperature, s.distill.gamma, s.distill.reduction) == (20.0, 0.5, "mean")
    assert (s.train.lr, s.train.momentum, s.train.weight_decay) == (1e-4, 0.99, 0.0)
    t = C.build(preset="paper-teacher")
    assert (t.train.lr, t.train.momentum, t.train.weight_decay, t.train.lr_decay) == (0.1, 0.9, 1e-4, 0.2)
    assert s.train.lr_decay == 0.1


@pytest.mark.parametrize("preset,lrs", [
    # 1-based epoch -> lr: decayed from epochs 60, 80 and 120 (after 59, 79 and 119 complete epochs)
    ("paper-teacher", {59: 0.1, 60: 0.02, 79: 0.02, 80: 0.004, 119: 0.004, 120: 0.0008, 121: 0.0008}),
    ("paper-student", {59: 1e-4, 60: 1e-5, 79: 1e-5, 80: 1e-6, 119: 1e-6, 120: 1e-7, 121: 1e-7}),
])
def test_paper_presets_decay_the_lr_when_the_authors_did(preset, lrs):
    import torch
    from fastkd.train.optim import build_optimizer, build_scheduler
    cfg = C.build(preset=preset, overrides=["train.epochs=121"])
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg.train)
    sched = build_scheduler(opt, steps_per_epoch=1, tc=cfg.train)
    seen = {}
    for epoch in range(1, 122):  # one step per epoch
        seen[epoch] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    assert {e: seen[e] for e in lrs} == pytest.approx(lrs, rel=1e-9)


def test_diff_names_the_changed_key():
    a, b = C.build(), C.build(overrides=["train.lr=0.2"])
    assert C.diff(a.to_dict(), b.to_dict()) == ["train.lr: 0.1 -> 0.2"]


@pytest.mark.parametrize("word", ["no", "No", "NO", "off", "on", "yes", "y", "n"])
def test_yaml_11_boolean_words_stay_the_string_the_user_typed(tmp_path, word):
    # YAML 1.1 reads these as booleans: `precision: no` arrived as False and was refused
    assert C.load_yaml(f"a: {word}") == {"a": word}
    assert C.parse_override(f"train.precision={word}") == {"train": {"precision": word}}
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  precision: no\ndistill:\n  cache_teacher: off\n")
    cfg = C.build(files=[f], overrides=["train.precision=no"])
    assert cfg.train.precision == "no" and cfg.distill.cache_teacher == "off"
    # a switch still takes the 1.1 words, and YAML 1.2's true/false stay booleans
    expected = word.lower() in ("on", "yes", "y")
    assert C.build(overrides=[f"train.nesterov={word}"]).train.nesterov is expected
    assert C.load_yaml("a: true\nb: False") == {"a": True, "b": False}
