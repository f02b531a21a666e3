"""Bad input gets one clear line naming the problem, and loses nothing: data trees, archives,
ledgers, saved outputs, CLI arguments."""
import json
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from fastkd.train import engine
from fastkd.cli import main as cli_main
from fastkd.config import DataConfig
from fastkd.data import DataError, load_splits
from helpers import TINY_STUDY, make_tree


def _cli_error(capsys, argv) -> str:
    """Run the CLI, expect exit 2 with exactly one error line and no traceback; return the line."""
    code = cli_main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("fastkd: error: ")
    return err


@pytest.mark.parametrize("args,message", [
    (["--set", "seed=99999999999999999999999"],
     "seed: 99999999999999999999999 is out of range; allowed: [0, 9223372036854775807]"),
    (["--set", "train.lr=1e308"], "train.lr: 1e+308 is beyond what float32 arithmetic holds"),
    (["--set", "data.limit_train=50", "--set", "train.batch_size=64"], "training set (50 images: not one full batch)"),
])
def test_values_that_tracebacked_are_one_line(tmp_path, capsys, args, message):
    err = _cli_error(capsys, ["train", "--preset", "smoke", *args, "--out", str(tmp_path / "r"), "--quiet"])
    assert message in err


def test_a_path_too_long_is_one_line_and_none_means_null(tmp_path, capsys):
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--out", str(tmp_path / ("a" * 300)), "--quiet"])
    assert "File name too long" in err and "a" * 300 in err
    from fastkd import config as C
    assert C.build(overrides=["data.limit_train=None"]).data.limit_train is None
    assert C.build(overrides=["augment=none"]).augment == "none"  # the augmentation named none stays a name
    from fastkd.study import load_study
    with pytest.raises(C.ConfigError, match="is 300 characters; at most 64"):
        load_study(extra=TINY_STUDY | {"distill": {"k" * 300: {}}})


def test_weights_swapped_into_a_finished_run_are_refused_by_eval_and_distill(tmp_path, capsys):
    # another run's weights of the same architecture copied over model.safetensors went unnoticed
    common = ["--preset", "smoke", "--set", "train.epochs=1", "--set", "data.limit_train=200", "--quiet"]
    for name, seed in (("a", 0), ("b", 1)):
        assert cli_main(["train", *common, "--set", f"seed={seed}", "--out", str(tmp_path / name)]) == 0
    assert cli_main(["eval", str(tmp_path / "a")]) == 0
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    capsys.readouterr()
    for argv in (["eval", str(tmp_path / "a")],
                 ["distill", *common, "--teacher", str(tmp_path / "a"), "--out", str(tmp_path / "s")]):
        err = _cli_error(capsys, argv)
        assert "model.safetensors: these are not the weights this run wrote" in err


# ---- 11. ImageFolder trees with links and 16-bit images ---------------------------------------------
def test_dangling_link_and_link_loop_are_corrupt_files(tmp_path):
    make_tree(tmp_path)
    dangling = tmp_path / "train" / "ant" / "unfetched.png"
    dangling.symlink_to(tmp_path / "annex" / "objects" / "missing.png")
    loop_a, loop_b = tmp_path / "train" / "bee" / "a.png", tmp_path / "train" / "bee" / "b.png"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(name="imagefolder", path=str(tmp_path)))
    assert "unfetched.png" in str(e.value) and "3 unreadable" in str(e.value)
    # a directory loop is refused by name before any decoding (it was cut silently)
    (tmp_path / "train" / "cat" / "sub").symlink_to(tmp_path / "train" / "cat")
    with pytest.raises(DataError, match=r"cat/sub: links to .*cat, a folder it is inside \(a loop\)"):
        load_splits(DataConfig(name="imagefolder", path=str(tmp_path)))
    parts = load_splits(DataConfig(name="imagefolder", path=str(tmp_path), on_corrupt="skip"))
    assert len(parts["train"]) == 18 and sorted(os.path.basename(s) for s in parts["train"].skipped) == \
        ["a.png", "b.png", "sub", "unfetched.png"]


@pytest.fixture
def deadline():
    """Fail a test that would hang (a walk that never ends) instead of waiting forever."""
    import signal

    def hung(*_):
        raise TimeoutError("still walking after 60 s")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("reads", ["arrays", "files"])
def test_a_link_out_of_its_class_folder_is_refused_not_relabelled(tmp_path, reads, deadline):
    # train/ant/up -> .. pulled every other class's images in as 'ant' (18 training images became 30)
    make_tree(tmp_path)
    (tmp_path / "train" / "ant" / "up").symlink_to("..")
    cfg = dict(name="imagefolder", path=str(tmp_path))
    with pytest.raises(DataError, match=r"train/ant/up: leads to .*train, outside .*train/ant; remove or fix"):
        load_splits(DataConfig(**cfg), reads=reads)
    parts = load_splits(DataConfig(**cfg, on_corrupt="skip"), reads=reads)
    assert len(parts["train"]) == 18 and [os.path.basename(p) for p in parts["train"].skipped] == ["up"]
    assert np.bincount(parts["train"].labels).tolist() == [6, 6, 6]
    # a link to a sibling class folder, and a file link to another class's image
    (tmp_path / "train" / "ant" / "up").unlink()
    (tmp_path / "train" / "ant" / "bees").symlink_to(tmp_path / "train" / "bee")
    with pytest.raises(DataError, match=r"train/ant/bees: leads to .*train/bee, outside .*train/ant"):
        load_splits(DataConfig(**cfg), reads=reads)
    (tmp_path / "train" / "ant" / "bees").unlink()
    (tmp_path / "train" / "ant" / "x.png").symlink_to(tmp_path / "train" / "bee" / "000.png")
    with pytest.raises(DataError, match=r"ant/x.png: links to .*bee/000.png, an image of another class folder"):
        load_splits(DataConfig(**cfg), reads=reads)


def test_link_loops_and_non_data_folders_end_in_one_line_not_a_walk(tmp_path, deadline):
    from fastkd.data.fingerprint import data_fingerprint
    make_tree(tmp_path / "d")
    (tmp_path / "d" / "train" / "ant" / "up").symlink_to("..")
    (tmp_path / "d" / "train" / "bee" / "up").symlink_to("../..")  # two loops: the walk never ended
    with pytest.raises(DataError, match=r"up: links to .*, a folder it is inside \(a loop\)"):
        data_fingerprint(DataConfig(name="imagefolder", path=str(tmp_path / "d")))
    skip = DataConfig(name="imagefolder", path=str(tmp_path / "d"), on_corrupt="skip")
    assert data_fingerprint(skip) == data_fingerprint(skip)
    # a folder that is no data set (here holding that looping tree) is named by its layout at once
    for path in (tmp_path, "/proc/self"):
        with pytest.raises(DataError, match="needs train/ and test/"):
            data_fingerprint(DataConfig(name="imagefolder", path=str(path)))


def test_a_walk_is_bounded(tmp_path, monkeypatch):
    from fastkd.data import walk
    make_tree(tmp_path)
    monkeypatch.setattr(walk, "MAX_ENTRIES", 5)
    with pytest.raises(DataError, match="more than 5 files and folders below it"):
        list(walk.walk_files(tmp_path, limit=walk.MAX_ENTRIES))


@pytest.mark.parametrize("tamper", ["another tree's cache copied over", "pixels changed"])
def test_a_decoded_image_cache_changed_on_disk_is_decoded_again(tmp_path, tamper, caplog):
    a = make_tree(tmp_path / "a")
    make_tree(tmp_path / "b", classes=("dog", "eel", "fox"))
    cache = tmp_path / "cache"
    cfg_a = DataConfig(name="imagefolder", path=str(tmp_path / "a"), cache_dir=str(cache))
    first = load_splits(cfg_a)
    [file_a] = list(cache.glob("imagefolder-*.npz"))
    if tamper == "another tree's cache copied over":
        load_splits(DataConfig(name="imagefolder", path=str(tmp_path / "b"), cache_dir=str(cache)))
        [file_b] = [f for f in cache.glob("imagefolder-*.npz") if f != file_a]
        file_a.write_bytes(file_b.read_bytes())
    else:  # a cache entry rewritten with the same layout and other pixels
        with np.load(file_a) as z:
            parts = {k: z[k] for k in z.files}
        parts["train_images"] = 255 - parts["train_images"]
        np.savez(file_a, **parts)
    again = load_splits(cfg_a)
    assert again["train"].classes == ["ant", "bee", "cat"]
    assert np.array_equal(again["train"].images, first["train"].images)
    assert np.array_equal(again["train"].images[0], a[again["train"].files[0]])
    assert "not used" in caplog.text and "decoding again" in caplog.text


def test_a_students_data_is_its_teachers_from_any_folder_and_other_content_is_named(tmp_path, monkeypatch, capsys):
    # the teacher's relative data.path was read against the folder the student ran in: there a
    # folder of the same name (other images, same classes) was trained on silently
    import yaml
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    make_tree(tmp_path / "here" / "tree")
    make_tree(tmp_path / "elsewhere" / "tree", n=(5, 2))
    monkeypatch.chdir(tmp_path / "here")
    common = ["--set", "train.epochs=1", "--set", "train.batch_size=6", "--quiet"]
    assert cli_main(["train", "--preset", "smoke", "--set", "data.name=imagefolder", "--set", "data.path=tree",
                     "--set", "data.val_split=0", *common, "--out", "t"]) == 0
    recorded = yaml.safe_load((tmp_path / "here" / "t" / "config.yaml").read_text())["data"]["path"]
    assert recorded == str(tmp_path / "here" / "tree")  # absolute, as given
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert cli_main(["distill", "--preset", "smoke", "--teacher", str(tmp_path / "here" / "t"), *common,
                     "--out", "s"]) == 0
    assert "differs" not in capsys.readouterr().err
    m = json.loads((tmp_path / "elsewhere" / "s" / "metrics.json").read_text())
    assert m["data_sizes"]["train"] == 18  # the teacher's tree, not this folder's (15 images)
    # data of other content, asked for: trained, with a warning naming it
    assert cli_main(["distill", "--preset", "smoke", "--teacher", str(tmp_path / "here" / "t"), *common,
                     "--set", "data.path=tree", "--out", "s2"]) == 0
    assert "not the data its teacher was trained on" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["tensor", "dataloader"])
def test_an_image_above_the_pixel_limit_is_refused_naming_it_and_the_limit(tmp_path, backend, recwarn, monkeypatch):
    # a 10000x10000 PNG cost 5 GB in a loader worker; PIL's bomb warning was printed raw
    from PIL import Image as PILImage
    make_tree(tmp_path, sizes={("train", "bee", 2): (60, 50)})
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 2000)  # PIL's own limit: it would warn, then refuse
    cfg = dict(name="imagefolder", path=str(tmp_path), image_size=8, max_pixels=1000, backend=backend)
    data = {k: v for k, v in cfg.items() if k != "backend"}
    reads = "files" if backend == "dataloader" else "arrays"
    with pytest.raises(DataError, match=r"bee/002.png: cannot decode image .*50x60 is 3,000 pixels, more than "
                                        r"data.max_pixels=1,000"):
        parts = load_splits(DataConfig(**data), reads=reads)
        from fastkd.pipelines import build_pipeline
        from fastkd.pipelines.spec import make_spec
        list(build_pipeline(backend, parts["train"], make_spec("none"), train=False, batch_size=4, device="cpu",
                            seed=0, num_workers=0, image_size=8, max_pixels=1000))
    skipped = load_splits(DataConfig(**data, on_corrupt="skip"))
    assert len(skipped["train"]) == 17 and [os.path.basename(p) for p in skipped["train"].skipped] == ["002.png"]
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_the_streaming_dataloader_backend_skips_unreadable_files_when_asked(tmp_path):
    # data.on_corrupt=skip was ignored by the dataloader backend: an HTML file named .jpg stopped the epoch
    from fastkd.pipelines import build_pipeline
    from fastkd.pipelines.spec import make_spec
    from fastkd.pipelines.dataloader import SkippedImage
    make_tree(tmp_path)
    (tmp_path / "train" / "cat" / "page.jpg").write_text("<html>not an image</html>")

    def batches(on_corrupt):
        train = load_splits(DataConfig(name="imagefolder", path=str(tmp_path)), reads="files")["train"]
        return list(build_pipeline("dataloader", train, make_spec("none"), train=False, batch_size=4, device="cpu",
                                   seed=0, num_workers=0, on_corrupt=on_corrupt))
    with pytest.raises(DataError, match=r"cat/page.jpg: cannot decode image .*data.on_corrupt=skip"):
        batches("error")
    with pytest.warns(SkippedImage, match="page.jpg"):
        kept = batches("skip")
    index = torch.cat([b.index for b in kept]).tolist()
    assert len(index) == 18 and 18 not in index  # every readable image once; the page (listed last in cat) left out


def test_a_very_large_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    from PIL import Image as PILImage
    from fastkd.data import decode
    import io
    buf = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(buf, "JPEG")
    monkeypatch.setattr(decode, "DRAFT_FROM_PIXELS", 100_000)  # this 307k-pixel JPEG counts as very large
    from PIL import JpegImagePlugin
    drafted = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda im, mode, size: drafted.append(size) or real(im, mode, size))
    out = decode.decode_bytes(buf.getvalue(), 16)
    assert out.shape == (16, 16, 3) and drafted == [(64, 64)]
    drafted.clear()
    decode.decode_bytes(buf.getvalue(), None)  # not resized: decoded whole
    assert drafted == []


def test_a_class_folder_linking_into_its_own_split_is_refused(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "train" / "zzz").symlink_to(tmp_path / "train" / "ant")
    with pytest.raises(DataError, match=r"zzz: this class folder is a link .* inside the same split"):
        load_splits(DataConfig(name="imagefolder", path=str(tmp_path)))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    make_tree(tmp_path)
    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    p = tmp_path / "train" / "ant" / "deep.png"
    Image.fromarray(grey16).save(p)
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # PIL reads it as a wide greyscale image
    parts = load_splits(DataConfig(name="imagefolder", path=str(tmp_path)))
    img = parts["train"].images[parts["train"].files.index(str(p))]
    expected = np.round(grey16 / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(img[..., 0], expected)
    assert (img[..., 0] == img[..., 2]).all() and img.max() < 255  # not clipped to white


# ---- 12. one line instead of a traceback ------------------------------------------------------------
def test_archives_that_are_not_tar_or_are_truncated(tmp_path, capsys):
    zipish = tmp_path / "data.zip"
    zipish.write_bytes(b"PK\x03\x04 not a tar")
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--set", "data.name=imagefolder", "--data", str(zipish),
                              "--out", str(tmp_path / "r1")])
    assert "not a tar archive" in err
    tree = tmp_path / "tree"
    make_tree(tree)
    good = tmp_path / "tree.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(tree / "train", "train")
        tar.add(tree / "test", "test")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--set", "data.name=imagefolder", "--data", str(cut),
                              "--out", str(tmp_path / "r2")])
    assert "cut.tar.gz" in err and ("truncated" in err or "not a readable tar" in err)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_one_class_tree_and_fixed_size_network_on_other_sizes(tmp_path, capsys):
    one = tmp_path / "one"
    make_tree(one, classes=("only",))
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--set", "data.name=imagefolder", "--data", str(one),
                              "--out", str(tmp_path / "r1"), "--quiet"])
    assert "1 class (only)" in err and "at least two" in err
    tree = tmp_path / "t"
    make_tree(tree)  # 8x8 images
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--set", "data.name=imagefolder", "--data", str(tree),
                              "--set", "model=lenet", "--out", str(tmp_path / "r2"), "--quiet"])
    assert "lenet takes 32x32 images" in err and "8x8" in err and "data.image_size=32" in err


def test_out_is_a_file_metric_on_missing_or_unfinished_run_and_eval_overrides(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert "is a file" in _cli_error(capsys, ["train", "--preset", "smoke", "--out", str(f)])
    assert "no such run folder" in _cli_error(capsys, ["metric", str(tmp_path / "nope")])
    (tmp_path / "half").mkdir()
    assert "not a finished fastkd run" in _cli_error(capsys, ["metric", str(tmp_path / "half")])
    run = tmp_path / "r"
    assert cli_main(["train", "--preset", "smoke", "--set", "train.epochs=1", "--set", "data.limit_train=200",
                     "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert "data.backend: invalid value 'bogus'" in _cli_error(capsys, ["eval", str(run), "--set", "data.backend=bogus"])
    assert "unknown config key 'data.nme'" in _cli_error(capsys, ["eval", str(run), "--set", "data.nme=x"])
    assert "--variants: unknown foo; allowed: clean, paper, gdv" in _cli_error(capsys, ["metric", str(run), "--variants",
                                                                                       "foo"])


def test_binary_config_and_missing_optional_backend_are_one_line(tmp_path, capsys, monkeypatch):
    b = tmp_path / "weights.bin"
    b.write_bytes(bytes(range(256)))
    assert "not a text" in _cli_error(capsys, ["train", "--config", str(b), "--out", str(tmp_path / "r")])
    import builtins
    real_import = builtins.__import__

    def no_dali(name, *a, **k):
        if name.startswith("nvidia.dali") or name == "nvidia":
            raise ImportError("No module named 'nvidia.dali'")
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_dali)
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--set", "data.backend=dali", "--out", str(tmp_path / "d")])
    assert "[dali]'" in err and "pip install" in err
    assert not (tmp_path / "d").exists()  # checked before any data was read or folder made


# ---- 10. ledger records and saved outputs ------------------------------------------------------------
STUDY = TINY_STUDY


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    from fastkd.study import load_study, run_study
    out = tmp_path_factory.mktemp("study")
    run_study(load_study(extra=STUDY), out, progress=False, report=False)
    return out


def _copy(src, tmp_path):
    import shutil
    dst = tmp_path / "s"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "not-utf8", "list", "empty-object"])
def test_corrupt_ledger_record_is_named_set_aside_and_redone(finished_study, tmp_path, capsys, damage):
    from fastkd.study import load_study, run_study
    out = _copy(finished_study, tmp_path)
    rec = out / "ledger" / "teacher-resnet8-mixup-s0.json"
    good = json.loads(rec.read_text())
    rec.write_bytes({"truncated": rec.read_bytes()[:40], "not-utf8": b"\xff\xfe{", "list": b"[]",
                     "empty-object": b"{}"}[damage])
    assert cli_main(["report", str(out)]) == 0
    captured = capsys.readouterr()
    assert "teacher-resnet8-mixup-s0.json cannot be read" in captured.err
    assert "could not be read" in (out / "report" / "summary.md").read_text()
    records = {r["id"]: r for r in run_study(load_study(extra=STUDY), out, progress=False, report=False)}
    assert records["teacher-resnet8-mixup-s0"]["status"] == "done"
    assert records["teacher-resnet8-mixup-s0"]["metrics"]["test_accuracy"] == good["metrics"]["test_accuracy"]
    assert list((out / "ledger").glob("teacher-resnet8-mixup-s0.json.corrupt*"))
    # the run folder was finished: it was recorded again, not retrained
    log = (out / "runs" / "teacher-resnet8-mixup-s0" / "train.log").read_text()
    assert log.count(" start:") == 1


@pytest.mark.slow
def test_corrupt_saved_outputs_of_a_finished_run_are_named_and_the_run_finished_again(finished_study, tmp_path, caplog):
    from fastkd.study import load_study, run_study
    out = _copy(finished_study, tmp_path)
    run = out / "runs" / "student-lenet-kd-from-resnet8-none-s0"
    (out / "ledger" / "student-lenet-kd-from-resnet8-none-s0.json").unlink()
    (run / "test_outputs.npz").write_bytes(b"PK\x03\x04garbage")
    records = {r["id"]: r for r in run_study(load_study(extra=STUDY), out, progress=False, report=False)}
    assert "test_outputs.npz: unreadable saved outputs" in caplog.text
    assert records["student-lenet-kd-from-resnet8-none-s0"]["status"] == "done"
    assert np.load(run / "test_outputs.npz")["logits"].shape == (100, 10)
    assert (run / "test_outputs.npz.corrupt").exists()


# ---- 14. a study with failed runs exits non-zero, and a failed run can be fixed in place -----------------
@pytest.mark.slow
def test_failed_runs_exit_non_zero_and_can_be_fixed_in_place(tmp_path, capsys, monkeypatch):
    real = engine.Trainer._train_epoch

    def nan_when_lr_is_huge(self, epoch, bar):
        if self.kind == "teacher" and self.cfg.augment == "mixup" and self.cfg.train.lr > 1:
            raise engine.TrainingError("loss became nan at epoch 1, step 2; lower train.lr")
        return real(self, epoch, bar)
    monkeypatch.setattr(engine.Trainer, "_train_epoch", nan_when_lr_is_huge)
    spec = tmp_path / "study.yaml"
    import yaml
    spec.write_text(yaml.safe_dump(STUDY))
    base = ["study", "--config", str(spec), "--out", str(tmp_path / "s"), "--quiet"]
    assert cli_main(base + ["--set", "teacher.train.lr=5"]) == 3
    err = capsys.readouterr().err
    assert "teacher-resnet8-mixup-s0: failed" in err and "student-lenet-kd-from-resnet8-mixup-s0: skipped" in err
    # the none teacher also used lr 5 and finished: changing it now would change a finished run
    assert cli_main(base) == 2
    assert "finished runs computed with other settings" in capsys.readouterr().err
    # the failed run's own settings may change (here through the mixup teacher's per-augment override)
    assert cli_main(base + ["--set", "teacher.train.lr=5", "--set", "per_augment.mixup.train.lr=0.05"]) == 0
    led = tmp_path / "s" / "ledger"
    assert json.loads((led / "teacher-resnet8-mixup-s0.json").read_text())["status"] == "done"
    assert json.loads((led / "teacher-resnet8-mixup-s0.json").read_text())["config"]["train"]["lr"] == 0.05


# ---- first hour: the data a run reads is the data it says -------------------------------------------
def test_sample_with_a_path_is_an_error(tmp_path, capsys):
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    assert "data.name is 'sample'" in err and "imagefolder" in err


def test_jpeg_tree_given_as_cifar10_suggests_imagefolder(tmp_path, capsys):
    make_tree(tmp_path / "tree")
    err = _cli_error(capsys, ["train", "--preset", "smoke", "--set", "data.name=cifar10", "--data",
                              str(tmp_path / "tree"), "--out", str(tmp_path / "r")])
    assert "data.name=imagefolder" in err


def test_student_reads_its_teachers_data_unless_told_otherwise(tmp_path, capsys):
    tree, other = tmp_path / "tree", tmp_path / "other"
    make_tree(tree)
    make_tree(other, classes=("ant", "bee", "cow"))
    t = tmp_path / "t"
    assert cli_main(["train", "--preset", "smoke", "--set", "data.name=imagefolder", "--data", str(tree),
                     "--set", "train.epochs=1", "--set", "data.limit_train=18", "--set", "data.limit_test=9",
                     "--set", "train.batch_size=6", "--out", str(t), "--quiet"]) == 0
    first = (t / "train.log").read_text().splitlines()[0]
    assert f"data imagefolder at {tree} (train 18, test 9 images, 3 classes); backend tensor; device cpu" in first
    capsys.readouterr()
    # the smoke preset names the bundled sample: the student still reads the teacher's tree
    s = tmp_path / "s"
    assert cli_main(["distill", "--preset", "smoke", "--teacher", str(t), "--set", "train.epochs=1",
                     "--set", "train.batch_size=6", "--set", "data.limit_train=18", "--set", "data.limit_test=9",
                     "--out", str(s), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads((s / "metrics.json").read_text())["data_sizes"] == {"train": 18, "test": 9}
    assert f"data imagefolder at {tree}" in (s / "train.log").read_text()
    # the same rule for Python callers: the library builds a student's config the CLI's way
    from fastkd.train.teacher import student_config
    cfg = student_config(preset="smoke", overrides=[f"distill.teacher={t}"])
    assert (cfg.data.name, cfg.data.path) == ("imagefolder", str(tree))
    assert student_config(preset="smoke", overrides=[f"distill.teacher={t}", "data.limit_test=5"]).data.limit_test == 5
    # another tree is allowed with a warning, and refused when its classes differ
    assert cli_main(["distill", "--preset", "smoke", "--teacher", str(t), "--data", str(other), "--set",
                     "train.epochs=1", "--set", "train.batch_size=6", "--out", str(tmp_path / "s2"), "--quiet"]) == 2
    warning, err = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("warning: the student's data differs from its teacher's (data content: ")
    assert err.startswith("fastkd: error: ") and "trained on the classes ['ant', 'bee', 'cat']" in err


# ---- the benchmark and the scripts end bad input in one line too ---------------------------------
def test_fastkd_bench_on_a_missing_tree_is_one_line(tmp_path, capsys):
    missing = tmp_path / "missing"
    err = _cli_error(capsys, ["bench", "--data", str(missing)])
    assert f"data.path: {missing} does not exist" in err


@pytest.mark.parametrize("script,args", [
    ("probe_teacher_stddev.py", ["--teacher", "TEACHER", "--preset", "smoke", "--set", "data.name=imagefolder",
                                 "--views", "none", "--data"]),
    ("bench_auto_augment.py", ["--data"]),
    ("bench_pipeline.py", ["--data"]),
])
def test_scripts_on_a_missing_tree_exit_2_with_one_line(tmp_path, script, args):
    import subprocess
    import sys
    from pathlib import Path
    root, missing = Path(__file__).resolve().parents[1], tmp_path / "missing"
    argv = [a.replace("TEACHER", str(tmp_path / "teacher")) for a in args] + [str(missing)]
    done = subprocess.run([sys.executable, str(root / "scripts" / script), *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err == f"{script.removesuffix('.py')}: error: data.path: {missing} does not exist"
