"""One export run: source samples in, a committed destination folder and a result out.

Every format uses the same frame: open the output's sample stream, refuse what cannot work (no
sample left, a destination inside the source), write through an `ExportDir`, show progress, and
end with ``export.json`` plus an `ExportResult` the CLI prints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.engine.summary import versions
from pipeline.export.commit import ExportDir
from pipeline.export.errors import ExportError
from pipeline.export.options import ExportOptions
from pipeline.export.samples import ExportSample, SampleSource


@dataclass
class ExportResult:
    """What an export wrote: counts, audio seconds, files (relative to `to`), the export.json path, format details."""

    format: str
    source: str
    to: str
    samples: int
    skipped_failed_gates: int
    audio_seconds: float
    files: list[str]
    report: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def hours(self) -> float:
        return self.audio_seconds / 3600

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hours": self.hours}


class ExportRun:
    """Context manager around one export; iterate `samples()`, then call `finish`."""

    def __init__(
        self, kind: str, output: str | Path, to: str | Path, options: ExportOptions, *, progress: bool = True, sidecar: bool = False
    ):
        self.kind = kind
        self.options = options
        self.source = SampleSource(output, include_failed=options.include_failed, audio_member=options.audio_member)
        self.to = Path(to).resolve()
        self._check_paths()
        self.total, self.skipped = self.source.count()
        if self.total == 0:
            hint = f" ({self.skipped} failed a quality gate: pass include_failed / --include-failed to export them)" if self.skipped else ""
            raise ExportError(f"{self.source.root} has no sample to export{hint}")
        self.target = ExportDir(self.to, kind, sidecar=sidecar)
        self.exported = 0
        self.audio_seconds = 0.0
        self._progress = progress
        self._bar: tqdm | None = None
        self._started = time.perf_counter()

    def _check_paths(self) -> None:
        if not self.source.out.is_local:
            return
        root = Path(self.source.out.base)
        if self.to == root or root in self.to.parents or self.to in root.parents:
            raise ExportError(f"--to {self.to} overlaps the job output {root}; export to a folder outside it")

    def __enter__(self) -> ExportRun:
        self.target.__enter__()
        self._bar = tqdm(total=self.total, desc=f"export {self.kind}", unit="sample", disable=not self._progress)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        self.target.__exit__(*exc)

    def samples(self) -> Iterator[ExportSample]:
        """The source's samples, counted and shown on the progress bar."""
        for sample in self.source:
            yield sample
            self.exported += 1
            self.audio_seconds += sample.duration
            if self._bar is not None:
                self._bar.update(1)

    def finish(self, details: dict[str, Any], patterns: tuple[str, ...], bulk_dirs: tuple[str, ...] = ()) -> ExportResult:
        """Commit ``export.json`` (removing stale files, see `ExportDir.finish`) and return the result."""
        if self.exported != self.total:
            raise ExportError(f"{self.source.root} changed during the export ({self.exported} samples read, {self.total} expected); export again")
        record = {
            "source": self.source.root,
            "source_job": self.source.job_name,
            "options": self.options.to_dict(),
            "samples": self.exported,
            "skipped_failed_gates": self.skipped,
            "audio_seconds": round(self.audio_seconds, 6),
            "details": details,
            "versions": versions(),
        }
        self.target.finish(record, patterns, bulk_dirs)
        return ExportResult(
            format=self.kind,
            source=self.source.root,
            to=str(self.to),
            samples=self.exported,
            skipped_failed_gates=self.skipped,
            audio_seconds=self.audio_seconds,
            files=sorted(self.target.committed) + [f"{folder}/" for folder in bulk_dirs],
            report=str(self.target.report_path),
            details=details,
            seconds=time.perf_counter() - self._started,
        )
