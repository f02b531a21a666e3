"""The `fastkd` command: train, distill, eval, study, report, metric, data, bench, info."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__, models
from .bench.pipelines import main as bench_main
from .config import ConfigError, DataConfig, build, config_reference, load_yaml, preset_names
from .data import load_splits
from .data.beton import convert, ffcv_module
from .data.loading import DATASETS
from .distill import available as kd_methods
from .errors import RunDirError, exit_status_reporting_errors
from .fields import DEVICES
from .metrics.analysis import analyze_run
from .metrics.discrimination import VARIANTS
from .pipelines import BACKENDS
from .pipelines.transforms import names as transform_names
from .report import write_report
from .run.child_processes import stop_on_signals
from .run.rundir import RunDir
from .run.runinfo import environment
from .run.runrecord import RunMetrics
from .study import load_study, run_study
from .study.ledger import Ledger
from .study.spec import study_preset_names
from .train.engine import train
from .train.evaluate_run import evaluate_run
from .train.teacher import student_config

# exit statuses (documented in docs/run-directory.md): 0 done, 2 an error the message explains
# (errors.EXIT_ERROR), 3 a study finished with runs that failed or were skipped, 130 interrupted
EXIT_RUNS_FAILED, EXIT_INTERRUPTED = 3, 130


def _config_args(p: argparse.ArgumentParser, presets: str) -> None:
    p.add_argument("--preset", help=f"named config: {presets}")
    p.add_argument("--config", action="append", default=[], metavar="FILE.yaml", help="YAML config (repeatable)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key, e.g. --set train.lr=0.05 (repeatable)")
    p.add_argument("--data", help="shorthand for --set data.path=PATH (with data.name cifar10, cifar100 or imagefolder)")


def _resolve(args, extra: dict | None = None, *, student: bool = False):
    extra = dict(extra or {})
    if args.data:
        extra.setdefault("data", {})["path"] = args.data
    make = student_config if student else build  # a student reads its teacher's data; the user's settings win
    return make(preset=args.preset, files=args.config, overrides=args.overrides, extra=extra)


def _print_metrics(metrics: dict, out: Path) -> None:
    m = RunMetrics.from_dict(metrics)
    print(f"\n{m.kind} {m.model} (augment={m.augment}, seed={m.seed}): "
          f"test accuracy {100 * m.test_accuracy:.2f}% on {m.test_examples} images, "
          f"{m.epochs} epoch{'s' if m.epochs != 1 else ''}, {m.images_per_second:.0f} img/s")
    if m.agreement is not None:
        print(f"teacher test accuracy {100 * m.teacher_test_accuracy:.2f}%, top-1 agreement {100 * m.agreement:.2f}%")
    print(f"run directory: {out}  (metrics.json, model.safetensors, test_outputs.npz, train.log)")


def cmd_train(args, kind="teacher") -> int:
    extra = {"distill": {"teacher": args.teacher}} if kind == "student" and args.teacher else None
    cfg = _resolve(args, extra, student=kind == "student")
    metrics = train(cfg, args.out, kind=kind, overwrite=args.overwrite, progress=not args.quiet)
    from accelerate import PartialState
    if PartialState().is_main_process:
        _print_metrics(metrics, Path(args.out))
    return 0


def cmd_eval(args) -> int:
    result = evaluate_run(args.run, split=args.split, overrides=args.overrides)
    print(json.dumps(result, indent=2))
    return 0


def cmd_study(args) -> int:
    extra = {"common": {"data": {"path": args.data}}} if args.data else None
    if args.seeds is not None:
        extra = (extra or {}) | {"seeds": args.seeds}
    sc = load_study(args.preset, args.config, args.overrides, extra)
    ray_options = {"address": args.address, "gpus_per_run": args.gpus_per_run, "cpus_per_run": args.cpus_per_run}
    records = run_study(sc, args.out, retry_failed=args.retry_failed, progress=not args.quiet,
                        executor=args.executor, ray_options=ray_options if args.executor == "ray" else None,
                        threads_per_run=args.threads_per_run)
    bad = [r for r in records if r["status"] != "done"]
    if bad:
        print(f"fastkd: {len(bad)} run(s) did not finish (exit status {EXIT_RUNS_FAILED}):", file=sys.stderr)
        for r in bad:
            print(f"  {r['id']}: {r['status']}: {r.get('error', '')[:200]}", file=sys.stderr)
        print("fix their settings (a failed run's own settings may change) and rerun the same command, or add "
              "--retry-failed to try them again as they are; finished runs are kept", file=sys.stderr)
        return EXIT_RUNS_FAILED
    return 0


def cmd_report(args) -> int:
    out = Path(args.study)
    records, corrupt = Ledger(out).scan()
    for p, why in corrupt:
        print(f"warning: ledger record {p} cannot be read ({why}); it is left out of the report "
              "(rerun the study command to redo its run)", file=sys.stderr)
    if not records:
        raise RunDirError(f"no readable ledger records under {out}/ledger; is {out} a study folder?")
    ref = "none"
    if (out / "study.yaml").is_file():
        ref = (load_yaml((out / "study.yaml").read_text(), str(out / "study.yaml")) or {}).get("reference_augment", "none")
    paths = write_report(records, out / "report", reference_augment=ref, unreadable=[(str(p), why) for p, why in corrupt])
    print(paths["summary_text"])
    print("\nwritten:", *[str(p) for k, p in paths.items() if k != "summary_text"], sep="\n  ")
    return 0


def cmd_metric(args) -> int:
    bad = [v for v in args.variants or () if v not in VARIANTS]
    if bad:
        raise ConfigError(f"--variants: unknown {', '.join(bad)}; allowed: {', '.join(VARIANTS)}")
    rd = RunDir(args.run)
    if not rd.path.is_dir():
        raise RunDirError(f"{rd.path}: no such run folder")
    if not rd.is_finished() or not rd.outputs.is_file():
        raise RunDirError(f"{rd.path}: not a finished fastkd run (no metrics.json / test_outputs.npz); finish it first "
                          "by rerunning its train or distill command")
    import torch
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    result = analyze_run(args.run, device=device, knn_k=args.k, cd_variants=tuple(args.variants or VARIANTS))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def cmd_data_convert(args) -> int:
    ffcv_module()  # the install hint before any decoding
    if args.to != "beton":
        print(f"fastkd: error: --to {args.to}: only 'beton' is supported", file=sys.stderr)
        return 2
    cfg = DataConfig(name=args.data, path=args.path, image_size=args.image_size, on_corrupt=args.on_corrupt)
    # an ImageFolder tree is listed, not decoded: FFCV's writer workers decode one image at a time
    splits = load_splits(cfg, progress=True, reads="files")
    out = Path(args.out)
    name = args.name or args.data
    if out.suffix == ".beton":  # --out data/cifar10-train.beton: its folder, named after it
        name = args.name or out.stem.removesuffix("-train").removesuffix("-test")
        out = out.parent
    paths = convert(splits, out, name=name, storage=args.storage, max_resolution=args.max_resolution,
                    jpeg_quality=args.jpeg_quality, overwrite=args.overwrite, num_workers=args.workers,
                    source=f"{args.data}:{args.path or ''}", dataset=args.data, image_size=args.image_size)
    print("wrote", *[str(p) for p in paths.values()],
          f"(use --set data.backend=ffcv --set data.name={args.data} --set data.path={out})")
    return 0


def cmd_info(args) -> int:
    if args.config_keys:
        print(config_reference(), end="")
        return 0
    print(f"fastkd {__version__}")
    print("run presets (train, distill):", ", ".join(preset_names()))
    print("study presets (study):", ", ".join(study_preset_names()))
    print("models:", ", ".join(models.available()))
    print("distillation methods (distill.method):", ", ".join(kd_methods()))
    print("augmentations (augment, joined with +):", ", ".join(("none",) + transform_names()))
    print("data backends (data.backend):", ", ".join(BACKENDS))
    print(json.dumps(environment(), indent=2))
    return 0


DESCRIPTION = """fastkd: knowledge distillation x data augmentation studies (Das et al. 2020).

Commands: train a teacher, distill a student, eval or metric a finished run, study a whole
grid and report it, convert data for FFCV, bench the data pipelines, info on presets and the
machine. `fastkd COMMAND --help` describes each. Exit status: 0 done, 2 an error (one line
naming the problem), 3 a study finished with failed runs, 130 interrupted (rerun to resume)."""


class _Help(argparse.HelpFormatter):
    """Shows an option's default when it has a meaningful one (not None, False or empty)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text \
                and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _parser(sub, name: str, help: str):
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", formatter_class=_Help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastkd", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastkd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_presets = ", ".join(preset_names())

    p = _parser(sub, "train", "train a teacher (cross-entropy on soft targets)")
    _config_args(p, run_presets)
    p.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    p.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = _parser(sub, "distill", "distill a student from a finished teacher run (it reads the teacher's data "
                                "unless told otherwise)")
    _config_args(p, run_presets)
    p.add_argument("--teacher", help="teacher run directory (sets distill.teacher)")
    p.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    p.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=lambda a: cmd_train(a, kind="student"))

    p = _parser(sub, "eval", "evaluate a run's final model on its test (or val, train) split")
    p.add_argument("run", help="run directory")
    p.add_argument("--split", default="test", choices=("test", "val", "train"), help="which split")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key (validated like train's), e.g. --set data.path=/other/copy")
    p.set_defaults(func=cmd_eval)

    p = _parser(sub, "study", "run a grid of teachers x augmentations x students and report it")
    p.add_argument("--preset", help=f"study preset: {', '.join(study_preset_names())}")
    p.add_argument("--config", action="append", default=[], metavar="FILE.yaml", help="study YAML (repeatable)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study key, e.g. --set seeds=3 or --set common.train.epochs=2")
    p.add_argument("--data", help="shorthand for --set common.data.path=PATH")
    p.add_argument("--seeds", type=int, help="repeat every cell with this many seeds (>= 1)")
    p.add_argument("--out", required=True, help="study folder (rerun the same command to resume)")
    p.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--executor", default="sequential", choices=("sequential", "ray"),
                   help="sequential: one run after another here; ray: every run a Ray task (pip install 'fastkd[ray]')")
    p.add_argument("--address", help="with --executor ray: join this Ray cluster (default: start one on this machine)")
    p.add_argument("--gpus-per-run", type=float, default=None,
                   help="with --executor ray: GPUs per run (0.25 packs four; 0: runs train on the CPU). Default: 1 when "
                   "the Ray cluster has GPUs, else 0")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="with --executor ray: CPUs (and torch threads) per run")
    p.add_argument("--threads-per-run", type=int, help="torch CPU threads per run (default: sequential, this machine's "
                   "cores; ray, --cpus-per-run). On the CPU the same count gives the same results under either executor")
    p.set_defaults(func=cmd_study)

    p = _parser(sub, "report", "regenerate a study's tables and plots from its ledger")
    p.add_argument("study", help="study folder")
    p.set_defaults(func=cmd_report)

    p = _parser(sub, "metric", "class discrimination, k-NN, calibration and fidelity of a finished run")
    p.add_argument("run", help="run directory (reads test_outputs.npz, train_outputs.npz)")
    p.add_argument("--k", type=int, default=10, help="neighbours for k-NN purity and accuracy")
    p.add_argument("--variants", nargs="+", help="class-discrimination variants (default: every one; "
                   "fastkd.metrics.discrimination.VARIANTS)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where the metrics are computed (auto: the GPU when there is one)")
    p.set_defaults(func=cmd_metric)

    p = _parser(sub, "data", "data set tools: convert to FFCV .beton files")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="TOOL")
    c = _parser(dsub, "convert", "write a data set as FFCV .beton files (train and test)")
    c.add_argument("--to", default="beton", choices=("beton",), help="target format")
    c.add_argument("--data", default="cifar10", choices=DATASETS,
                   help="the data set to convert")
    c.add_argument("--path", help="archive, extracted folder or ImageFolder root")
    c.add_argument("--out", required=True, help="output folder (or NAME-train.beton inside it)")
    c.add_argument("--name", help="file name prefix (default: the data set name)")
    c.add_argument("--storage", default="raw", choices=("raw", "jpeg"), help="pixels stored raw or as JPEG")
    c.add_argument("--max-resolution", type=int, help="longest side stored (larger images are shrunk)")
    c.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality with --storage jpeg")
    c.add_argument("--image-size", type=int, help="resize + centre-crop images of mixed sizes to N x N first")
    c.add_argument("--on-corrupt", default="error", choices=("error", "skip"), help="unreadable images")
    c.add_argument("--workers", type=int, default=-1, help="FFCV writer processes (-1: all cores)")
    c.add_argument("--overwrite", action="store_true", help="replace existing .beton files")
    c.set_defaults(func=cmd_data_convert)

    # listed for --help only: main() hands `fastkd bench ...` to the benchmark's own parser
    sub.add_parser("bench", help="throughput benchmark of the data pipelines (see `fastkd bench --help`)")

    p = _parser(sub, "info", "run and study presets, models, distillation methods, backends, versions and hardware")
    p.add_argument("--config-keys", action="store_true", help="print the table of every config key (docs/config.md)")
    p.set_defaults(func=cmd_info)
    return parser


def _show_library_messages() -> None:
    """Library modules log (logger "fastkd"); the command shows their messages as plain lines:
    information on stdout, warnings on stderr (the streams current when each line is written)."""
    import logging

    class Console(logging.Handler):
        def emit(self, record):
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()

    logger = logging.getLogger("fastkd")
    if not any(type(h).__name__ == "Console" for h in logger.handlers):
        handler = Console()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _close_process_group() -> None:
    """Under `accelerate launch`, leave together and close the process group: a gloo group left to
    the interpreter's exit can abort a rank still tearing down ("terminate called without an
    active exception") after the work succeeded."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options: `fastkd bench --data X` works as is
        return exit_status_reporting_errors(lambda: bench_main(argv[1:]))
    args = build_parser().parse_args(argv)
    _show_library_messages()

    def run_command() -> int:
        with stop_on_signals():
            status = args.func(args)
        _close_process_group()
        return status

    try:
        return exit_status_reporting_errors(run_command)
    except KeyboardInterrupt:
        print("fastkd: interrupted; run the same command again to resume from the last finished epoch", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
