"""Reading a whole job output back in tests: every sample of every shard, by manifest id."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.io.shards import iter_samples


def samples_by_id(out_root: str | Path) -> dict[str, dict[str, bytes]]:
    """{id: {ext: bytes}} of every sample in OUT/shards/*.tar, the id taken from its json member.

    For small test outputs: everything is read into memory. Exports and the report read outputs
    with bounded memory instead (`pipeline.export.samples`, `pipeline.report.samples`).
    """
    found: dict[str, dict[str, bytes]] = {}
    for shard in sorted((Path(out_root) / "shards").glob("*.tar")):
        for _key, members in iter_samples(str(shard)):
            found[json.loads(members["json"])["id"]] = members
    return found
