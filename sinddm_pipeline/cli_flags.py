"""One spelling per command-line flag across the scripts; old spellings stay as deprecated aliases that still work and
warn (FutureWarning) with the new spelling.

- ``--allow_tf32``: TF32 matmuls and convolutions on CUDA (diffusers' training scripts' spelling; old: ``--tf32``).
- ``--dtype bf16``: sampling with the denoiser's weights cast to bfloat16 (generate, evaluate, app.py, the sampling
  benchmark; old: app.py's ``--bf16``). Samples and the scheduler's arithmetic stay fp32.
- ``--mixed_precision bf16``: accelerate's autocast while *training* (train_sinddm.py, the training benchmark; old:
  the training benchmark's ``--bf16``). A different thing: the weights are trained and saved in fp32.

Example:
    >>> import argparse, warnings
    >>> from sinddm_pipeline.cli_flags import add_deprecated_alias
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--allow_tf32", action="store_true")
    >>> add_deprecated_alias(parser, "--tf32", "--allow_tf32", dest="allow_tf32", const=True)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     parser.parse_args(["--tf32"]).allow_tf32
    True
    >>> str(caught[0].message)
    '--tf32 is deprecated and will be removed: use --allow_tf32.'
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any


class DeprecatedAlias(argparse.Action):
    """A flag without a value kept for an old spelling: it sets ``dest`` to ``const``, as the new spelling would,
    and warns with the new spelling."""

    def __init__(self, option_strings: list[str], dest: str, const: Any, replacement: str, **kwargs: Any):
        kwargs.setdefault("help", f"deprecated: use {replacement}")
        super().__init__(option_strings, dest, nargs=0, const=const, default=argparse.SUPPRESS, **kwargs)
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        message = f"{option_string} is deprecated and will be removed: use {self.replacement}."
        warnings.warn(message, FutureWarning, stacklevel=_caller_stacklevel())
        setattr(namespace, self.dest, self.const)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this module and argparse: the warning names the script's
    ``parse_args`` line, not argparse's internals."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "argparse"):
        frame, level = frame.f_back, level + 1
    return level


def add_deprecated_alias(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, *, dest: str, const: Any
) -> None:
    """Let ``old`` (e.g. ``"--tf32"``) still set ``dest`` to ``const``, warning that ``new`` (e.g.
    ``"--allow_tf32"``, or ``"--dtype bf16"``) is the spelling to use."""
    parser.add_argument(old, action=DeprecatedAlias, dest=dest, const=const, replacement=new)
