"""The README stays short and every command it shows is one the CLI accepts, with presets and
config keys that exist (parsed and resolved, not run: they name data on the user's machine)."""
import shlex
from pathlib import Path

import pytest

from fastkd import config as C
from fastkd.bench.pipelines import parser as bench_parser
from fastkd.cli import build_parser
from fastkd.study.spec import load_study

README = Path(__file__).resolve().parent.parent / "README.md"


def _commands():
    lines = README.read_text().splitlines()
    out = []
    for line in lines:
        text = line.strip().split("  #")[0].strip()
        if text.startswith("fastkd "):
            out.append(shlex.split(text)[1:])
        elif text.startswith("accelerate launch") and " -m fastkd " in text:
            out.append(shlex.split(text.split(" -m fastkd ", 1)[1]))
    return out


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= 120


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a[:2]))
def test_every_readme_command_parses_and_its_config_resolves(argv):
    if argv[0] == "bench":  # the benchmark parses its own options (fastkd.cli.main)
        bench_parser().parse_args(argv[1:])
        return
    args = build_parser().parse_args(argv)
    if args.command in ("train", "distill"):
        C.build(preset=args.preset, overrides=args.overrides)
    elif args.command == "study":
        load_study(args.preset)


def test_the_readme_shows_the_commands_a_user_starts_with():
    shown = {a[0] for a in _commands()}
    assert {"train", "distill", "eval", "metric", "study", "report", "bench", "info", "data"} <= shown
