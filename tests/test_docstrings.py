"""The >>> examples in the public docstrings run and print what they say (Markdown code fences ignored)."""

import doctest
import importlib
import re

import pytest

MODULES = [
    "sinddm_pipeline.pyramid",
    "sinddm_pipeline.retargeting",
    "sinddm_pipeline.modeling_sinddm",
    "sinddm_pipeline.modeling_pyramid",
    "sinddm_pipeline.scheduling_sinddm",
    "sinddm_pipeline.training",
    "sinddm_pipeline.training_config",
    "sinddm_pipeline.trainer",
    "sinddm_pipeline.cli_flags",
    "sinddm_pipeline.metrics.common",
    "sinddm_pipeline.metrics.diversity",
    "sinddm_pipeline.metrics.features",
    "sinddm_pipeline.metrics.patches",
    "sinddm_pipeline.evaluate",
    "sinddm_pipeline.augmentations",
    "sinddm_pipeline.clip_guidance",
    "sinddm_pipeline.hub",
    "sinddm_pipeline.remote_code",
]
FENCE = re.compile(r"^\s*```\w*\s*$", re.MULTILINE)


def _examples(module_name: str):
    module = importlib.import_module(module_name)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module):
        if test.examples and "+SKIP" not in test.docstring and "from_pretrained(" not in test.docstring:
            yield test.name, FENCE.sub("", test.docstring), test.globs


CASES = [case for name in MODULES for case in _examples(name)]


@pytest.mark.parametrize(("name", "docstring", "globs"), CASES, ids=[case[0] for case in CASES])
def test_docstring_examples_run(name, docstring, globs):
    test = doctest.DocTestParser().get_doctest(docstring, dict(globs), name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}"
