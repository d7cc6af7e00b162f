"""Exports: a job output (WebDataset shards + index) in the formats trainers stream.

One module per format, each with one library function a thin CLI command calls:

- `shar.export_shar`: Lhotse Shar (``cuts.NNNNNN.jsonl.gz`` + ``recording.NNNNNN.tar``), by lhotse's SharWriter.
- `lhotse_manifest.export_lhotse_manifest`: Lhotse recordings/supervisions/cuts manifests + audio files.
- `nemo.export_nemo`: NeMo JSONL manifest + audio files, or NeMo's tarred audio layout.
- `huggingface.export_huggingface`: Parquet with the `datasets` Audio feature, written by `datasets`.

Shared rooms: `samples` reads an output's committed samples as one stream (memory bounded by one
index part and one sample), `commit` writes a destination folder only by rename, `options`
holds every export's defaults, `run` frames one export (progress, checks, result), `errors` has
the one error class, `lhotse_cuts` builds the lhotse objects both lhotse exports write, and
`testing` writes job outputs through the real sink (no Ray) for tests and benchmarks.
"""
