"""Errors as one readable line in the UI and the API: a `gr.Error`, never a traceback or a bare "Error"."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr


def first_line(error: BaseException) -> str:
    """An exception's message on one line, without a traceback.

    Example:
        >>> first_line(ValueError("CUDA out of memory\\n  while sampling"))
        'CUDA out of memory while sampling'
    """
    text = " ".join(str(error).split())
    return text[:500] or type(error).__name__


def readable_errors(handler: Callable) -> Callable:
    """Any exception of a task becomes a gr.Error: a pipeline's input check (ValueError) with its own message, any
    other exception with its type's name in front."""

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as error:  # the pipelines' input checks: their message says it all
            raise gr.Error(first_line(error)) from error
        except Exception as error:
            raise gr.Error(f"{type(error).__name__}: {first_line(error)}") from error

    return wrapped
