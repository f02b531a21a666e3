"""fastkd: knowledge distillation x data augmentation studies on GPU-resident data pipelines."""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

# pipelines/ and kernels/ sit beside fastkd/ in a checkout and are installed as fastkd.pipelines
# and fastkd.kernels. When this fastkd is a checkout's (its parent holds pyproject.toml and
# those folders), they are always loaded from that same checkout: importing from a checkout
# works without installing it, and two checkouts sharing one environment cannot mix.
_ROOT = Path(__file__).resolve().parent.parent
_MAPPED = ("pipelines", "kernels")


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if len(parts) != 2 or parts[0] != __name__ or parts[1] not in _MAPPED:
            return None  # submodules are found through the package's __path__
        folder = _ROOT / parts[1]
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def _is_checkout() -> bool:
    return (_ROOT / "pyproject.toml").is_file() and all((_ROOT / n / "__init__.py").is_file() for n in _MAPPED) \
        and not (Path(__file__).resolve().parent / _MAPPED[0]).is_dir()


if _is_checkout() and not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _CheckoutFinder())


def check_same_tree(module_file: str) -> None:
    """Called by fastkd.pipelines and fastkd.kernels at import: they must come from this fastkd's
    tree (its checkout, or the same installed package)."""
    here = Path(module_file).resolve().parent
    if here.parent not in (_ROOT, Path(__file__).resolve().parent):
        raise ImportError(f"fastkd is loaded from {Path(__file__).resolve().parent} but {here.name} from {here}: two "
                          "fastkd trees are mixed in this environment. Reinstall the one you mean "
                          "(pip install -e <checkout>) or run from inside a single checkout")
