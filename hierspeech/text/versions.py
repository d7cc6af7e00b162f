"""Versions of the text front-end's dependencies, for provenance records."""

from __future__ import annotations

import importlib.metadata

from hierspeech.text.cleaners import _import_espeak_backend


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def frontend_versions() -> dict[str, str | None]:
    """{"phonemizer", "espeak-ng", "espeak_library", "unidecode"}: versions, None where unavailable.

    Token ids depend on them: phonemizer 3.2.1 with espeak-ng 1.51 is what the checkpoints saw.
    """
    versions: dict[str, str | None] = {
        "phonemizer": _distribution_version("phonemizer"),
        "unidecode": _distribution_version("Unidecode"),
        "espeak-ng": None,
        "espeak_library": None,
    }
    try:
        backend = _import_espeak_backend()
        versions["espeak-ng"] = ".".join(str(v) for v in backend.version())
        versions["espeak_library"] = str(backend.library())
    except Exception:  # reported as None: provenance must not fail a job
        pass
    return versions
