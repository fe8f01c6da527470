"""Dtypes of the denoiser: which count as half precision, and casting them without diffusers' empty warning.

Example:
    >>> import torch
    >>> from sinddm_pipeline import SinDDMModel
    >>> from sinddm_pipeline.dtypes import quiet_dtype_cast
    >>> with quiet_dtype_cast():
    ...     model = SinDDMModel(dim=8).to(torch.bfloat16)
    >>> model.dtype
    torch.bfloat16
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


class _EmptyFp32ListFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


@contextlib.contextmanager
def quiet_dtype_cast() -> Iterator[None]:
    """Within this block, diffusers' ``ModelMixin.to(dtype)`` does not warn "modules ... should be kept in float32:
    []" (diffusers 0.42 warns on every cast, even with no such module). This package's own deliberate casts
    (`enable_fast_sampling`, loading with ``dtype``) use it; a user's own ``.to(dtype)`` keeps diffusers' behaviour."""
    logger = logging.getLogger("diffusers.models.modeling_utils")
    quiet = _EmptyFp32ListFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
