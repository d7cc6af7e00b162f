"""The CI script: the suite once, then the BLAS-sensitive F0 and extract tests again under other kernels."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO_ROOT


def test_ci_reruns_the_f0_tests_with_haswell_kernels() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert subprocess.run(["bash", "-n", str(REPO_ROOT / ".ci" / "run")]).returncode == 0
    rerun = re.search(r"^OPENBLAS_CORETYPE=Haswell \S+ -m pytest (.+?)(?<!\\)$", script.replace("\\\n", " "), re.M)
    assert rerun, "the CI script does not rerun tests with OPENBLAS_CORETYPE=Haswell"
    paths = [word for word in rerun.group(1).split() if word.startswith("tests/")]
    assert {"tests/hierspeech/f0", "tests/hierspeech/test_f0_fast.py", "tests/pipeline/test_extract_job.py"} <= set(paths)
    assert all((REPO_ROOT / p).exists() for p in paths), paths
    assert "haswell_status" in script.split("exit $status")[0]  # its failure fails the run
