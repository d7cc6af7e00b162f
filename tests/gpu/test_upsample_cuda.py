"""`hsp upsample --device cuda` end to end (a real local Ray) against the same command on CPU.

Needs Ray on the GPU machine: bench/device_check.sh reports this test as skipped where `import ray`
fails there (Ray's wheel does not fit in what can be carried to a bare device machine).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.testing.tolerances import CUDA_VS_CPU, max_abs_diff

pytestmark = pytest.mark.gpu


def _outputs(out: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    from pipeline.testing.outputs import samples_by_id

    return {sample_id: sf.read(io.BytesIO(m["flac"]), dtype="float32")[0] for sample_id, m in samples_by_id(out).items()}


def test_hsp_upsample_on_device_end_to_end(tmp_path: Path, reference_dir: Path, device, record, monkeypatch) -> None:
    pytest.importorskip("ray", reason="`hsp upsample` needs Ray, which is not installed on this machine")
    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile as sf
    from click.testing import CliRunner

    from pipeline.cli import main

    for name, value in {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}.items():
        monkeypatch.setenv(name, value)
    clips = [reference_dir / "audio" / f"reference_{i}.wav" for i in (1, 2)]
    sf.write(tmp_path / "quiet.wav", 0.5 * sf.read(clips[0], dtype="float32")[0][:20000], 16000)
    manifest = tmp_path / "m.parquet"
    paths = [str(p) for p in clips] + [str(tmp_path / "quiet.wav")]
    pq.write_table(pa.table({"id": ["ref1", "ref2", "quiet"], "audio": paths}), manifest)
    checkpoint = str(reference_dir / "weights/speechsr48k/G_100000.pth")
    runs = []
    for target in ("cpu", device):  # the rehearsal on CPU compares two CPU runs
        out = tmp_path / f"out-{len(runs)}-{target}"
        args = ["upsample", str(manifest), "-o", str(out), "--checkpoint", checkpoint, "--device", target,
                "--num-cpus", "4", "--no-progress"]
        done = CliRunner().invoke(main, args, catch_exceptions=False)
        assert done.exit_code == 0, done.output[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["complete"] and summary["samples_out"] == 3 and summary["errors"] == 0, summary
        runs.append(_outputs(out))
    cpu, on_device = runs
    tolerance = CUDA_VS_CPU["speechsr"]
    worst = max(max_abs_diff(on_device[i], cpu[i], "abs") for i in cpu)
    record(f"hsp upsample --device {device} vs cpu", 0, worst, tolerance)
    # 16-bit FLAC on both sides: the model tolerance plus one quantisation step
    assert worst <= tolerance.max_abs + 1 / 32768, worst
