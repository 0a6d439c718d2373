"""Every docstring example in the package runs as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import urbanpulse


def modules() -> list[str]:
    names = (m.name for m in pkgutil.walk_packages(urbanpulse.__path__, "urbanpulse."))
    return sorted(n for n in names if not n.endswith("__main__"))


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
