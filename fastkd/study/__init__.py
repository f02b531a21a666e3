"""A grid of trainings (teachers x augmentations x students x distillation settings x seeds),
run resumably with a ledger of one JSON record per run, then analysed and reported."""
from .spec import StudyConfig, load_study, plan
from .runner import run_study

__all__ = ["StudyConfig", "load_study", "plan", "run_study"]
