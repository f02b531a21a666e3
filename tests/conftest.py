import os
from pathlib import Path

import pytest

# The full CIFAR-10 as a JPEG ImageFolder tarball (train/<class>/*.jpg, test/<class>/*.jpg): from
# FASTKD_CIFAR_JPEG, else where the project's CI keeps it beside the checkout
SHARED_CIFAR = Path(os.environ.get("FASTKD_CIFAR_JPEG") or
                    Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    # decoded-image cache and downloads go to a throwaway folder, never the user's ~/.cache
    os.environ["FASTKD_CACHE"] = str(tmp_path_factory.mktemp("fastkd-cache"))
    yield


@pytest.fixture(scope="session")
def cifar_jpeg_tree(tmp_path_factory):
    """The shared full CIFAR-10 JPEG tree, unpacked once; tests using it skip when it is absent."""
    if not SHARED_CIFAR.is_file():
        pytest.skip(f"{SHARED_CIFAR} not present")
    import tarfile
    root = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(SHARED_CIFAR) as tar:
        tar.extractall(root, filter="data")
    return root


from helpers import needs_cuda  # noqa: E402


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=needs_cuda)])
def device(request):
    return request.param
