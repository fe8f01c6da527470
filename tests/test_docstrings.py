"""Every >>> example in the docstrings of `sinddm_pipeline` runs and prints what it says (Markdown code fences
ignored). Examples load the shipped model (`models/hubble-sinddm`, from the repository root) or build a tiny one;
only lines that need the Hub, a GPU or downloaded weights are marked ``# doctest: +SKIP``, each with its reason."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import sinddm_pipeline

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*```\w*\s*$", re.MULTILINE)
MODULES = ["sinddm_pipeline"] + sorted(
    module.name for module in pkgutil.walk_packages(sinddm_pipeline.__path__, "sinddm_pipeline.")
)


def _examples(module_name: str):
    module = importlib.import_module(module_name)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module):
        if test.examples:
            yield test.name, FENCE.sub("", test.docstring), test.globs


CASES = [case for name in MODULES for case in _examples(name)]


def test_every_module_is_walked():
    assert {"sinddm_pipeline.pipeline_sinddm_base", "sinddm_pipeline.metrics.patches"} <= set(MODULES)
    assert len(CASES) > 60  # the examples of every public module, not a hand-picked list


@pytest.mark.parametrize(("name", "docstring", "globs"), CASES, ids=[case[0] for case in CASES])
def test_docstring_examples_run(name, docstring, globs, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples name the shipped model by its path in the repository
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a Hub call fails at once instead of retrying
    test = doctest.DocTestParser().get_doctest(docstring, dict(globs), name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}"
