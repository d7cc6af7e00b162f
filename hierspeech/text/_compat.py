"""Make phonemizer 3.2.1 importable when setuptools no longer ships ``pkg_resources``.

phonemizer 3.2.1 (the version the released checkpoints were trained with) imports
``pkg_resources`` at module level; setuptools >= 81 removed it. When the real module is
missing we register a minimal stand-in offering exactly the four names phonemizer uses,
implemented with :mod:`importlib.metadata`. A real ``pkg_resources`` is never replaced.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path


class _DistributionNotFound(Exception):
    """Stand-in for ``pkg_resources.DistributionNotFound``."""


class _Distribution:
    def __init__(self, name: str) -> None:
        try:
            self.version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError as e:
            raise _DistributionNotFound(name) from e
        self.project_name = name


class _Requirement:
    @staticmethod
    def parse(spec: str) -> str:
        return spec


def _resource_filename(requirement: str, resource: str) -> str:
    spec = importlib.util.find_spec(requirement)
    if spec is None or spec.origin is None:
        raise _DistributionNotFound(requirement)
    # `resource` is given relative to the directory that holds the package.
    return str(Path(spec.origin).parent.parent / resource)


def ensure_pkg_resources() -> None:
    """Register the stand-in ``pkg_resources`` if (and only if) the real one cannot be imported."""
    if "pkg_resources" in sys.modules:
        return
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.__doc__ = "hierspeech stand-in for the parts of pkg_resources used by phonemizer 3.2.1"
        shim.DistributionNotFound = _DistributionNotFound
        shim.get_distribution = _Distribution
        shim.Requirement = _Requirement
        shim.resource_filename = _resource_filename
        sys.modules["pkg_resources"] = shim
