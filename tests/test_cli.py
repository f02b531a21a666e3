"""The command line a new user meets: help that is complete and plain, info that lists everything."""
import argparse

from fastkd.cli import _print_metrics, build_parser
from fastkd.cli import main as cli_main


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, p in action.choices.items():
                yield name, p
                yield from ((f"{name} {n}", q) for n, q in _subparsers(p))


def test_every_option_of_every_command_has_help_and_the_help_is_plain_text():
    parser = build_parser()
    assert "``" not in parser.format_help()
    missing = []
    for name, p in _subparsers(parser):
        assert "``" not in p.format_help(), name
        for a in p._actions:
            if a.option_strings and a.help in (None, "") and a.dest != "help":
                missing.append(f"{name} {a.option_strings[0]}")
    assert not missing
    convert = dict(_subparsers(parser))["data convert"].format_help()
    assert "{raw,jpeg}" in convert and "(default: raw)" in convert and "(default: None)" not in convert


def test_info_lists_run_and_study_presets(capsys):
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    from fastkd.config import preset_names
    from fastkd.study.spec import study_preset_names
    assert f"run presets (train, distill): {', '.join(preset_names())}" in out and "paper-teacher" in out
    assert f"study presets (study): {', '.join(study_preset_names())}" in out and "paper-original" in out
    assert "distillation methods (distill.method): kd" in out and "data backends (data.backend): tensor" in out
    assert "augmentations (augment, joined with +): none, crop_flip, autoaugment" in out


def test_summary_line_says_one_epoch(capsys, tmp_path):
    _print_metrics({"kind": "teacher", "model": "resnet8", "augment": "none", "seed": 0, "test_accuracy": 0.5,
                    "test_loss": 1.0, "test_examples": 10, "epochs": 1, "selected_epoch": 1, "select": "last",
                    "images_per_second": 100.0, "train_seconds": 1.0, "num_processes": 1, "data_sizes": {},
                    "identity": "x"}, tmp_path)
    assert "1 epoch," in capsys.readouterr().out
