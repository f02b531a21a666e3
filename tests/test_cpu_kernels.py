"""The numba kernels of the FFCV operations, tested without FFCV: the per-sample kernels against
numpy, and the operations' own per-batch loops (compiled as FFCV compiles them)."""
import numpy as np
import pytest

from fastkd.kernels import cpu


# ---- numba kernels against numpy references (need numba only) ------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_pad_crop_flip_kernel_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    h, w, pad = rng.integers(3, 12), rng.integers(3, 12), int(rng.integers(0, 5))
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    oy, ox, flip = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1)), bool(rng.integers(2))
    dst = np.empty_like(src)
    cpu.pad_crop_flip_one(src, dst, pad, oy, ox, flip)
    ref = np.pad(src, ((pad, pad), (pad, pad), (0, 0)))[oy:oy + h, ox:ox + w]
    np.testing.assert_array_equal(dst, ref[:, ::-1] if flip else ref)


@pytest.mark.parametrize("seed", range(4))
def test_cutout_kernel_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    h, w, size = rng.integers(4, 20), rng.integers(4, 20), int(rng.integers(1, 10))
    img = rng.integers(1, 256, (h, w, 3), dtype=np.uint8)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    ref = img.copy()
    ref[max(cy - size // 2, 0):max(cy - size // 2 + size, 0), max(cx - size // 2, 0):max(cx - size // 2 + size, 0)] = 7
    cpu.cutout_one(img, cy, cx, size, 7)
    np.testing.assert_array_equal(img, ref)


def _compiled(op, *params):
    """The FFCV operation's own loop, compiled the way FFCV does it but with a plain range."""
    import numba
    return numba.njit(op(range, *params))


def test_the_ffcv_operations_loops_are_seeded_per_sample_and_cover_offsets():
    x = np.random.default_rng(0).integers(1, 256, (600, 6, 6, 3), dtype=np.uint8)
    idx = np.arange(600)
    seed = cpu.RuntimeSeed(11)
    crop = _compiled(cpu.pad_crop_flip_op, 2, True, seed.address)
    a = crop(x, np.empty_like(x), idx)
    b = crop(x[::-1].copy(), np.empty_like(x), idx[::-1].copy())
    np.testing.assert_array_equal(a, b[::-1])  # depends on (seed, index), not on batch position
    for i in (0, 17, 599):  # each sample is the numpy reference of its own draws
        oy, ox, f = cpu.crop_flip_draws(11, np.int64(i), 2, True)
        ref = np.pad(x[i], ((2, 2), (2, 2), (0, 0)))[oy:oy + 6, ox:ox + 6]
        np.testing.assert_array_equal(a[i], ref[:, ::-1] if f else ref)
    seed.set(12)  # the next epoch's seed: read at run time, other draws
    assert not np.array_equal(crop(x, np.empty_like(x), idx), a)
    draws = np.array([[cpu.draw_int(11, i, k, 5) for k in range(2)] for i in range(600)])
    assert set(map(tuple, draws)) == {(p, q) for p in range(5) for q in range(5)}
    assert abs(np.bincount(draws[:, 0]).std() / 120) < 0.2
    seed.set(3)
    c = _compiled(cpu.cutout_op, 4, 1, seed.address)(x.copy(), None, idx)
    assert ((c == 0).all(-1).sum((1, 2)) > 0).all()
    cy, cx = cpu.cutout_centre(3, np.int64(5), 0, 6, 6)
    ref = x[5].copy()
    ref[max(cy - 2, 0):cy + 2, max(cx - 2, 0):cx + 2] = 0
    np.testing.assert_array_equal(c[5], ref)


def test_runtime_seed_is_read_when_the_kernel_runs_not_when_it_compiles():
    import numba
    seed = cpu.RuntimeSeed(5)
    address = seed.address

    @numba.njit
    def current():
        return cpu.read_int64(address)

    assert current() == 5
    seed.set(-(2 ** 62))
    assert current() == seed.value == -(2 ** 62)
    assert len(current.signatures) == 1  # one compilation served both values
