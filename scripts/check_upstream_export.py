"""Load an `hsp export upstream` folder with upstream's own `ttv_v1.data_loader.AudioDataset`.

    python scripts/check_upstream_export.py /path/to/HierSpeechpp /path/to/export

Prints the shapes/dtypes of every item as `train_ttv_v1.py` would get them and collates the
training set into one batch. Needs a checkout of upstream HierSpeech++. When torchaudio cannot
be imported (it does not work with every torch), a minimal stand-in loads wav files with
soundfile (int16 / 32768, as torchaudio does). Upstream's released ttv_v1/config.json lacks
`data.train_data_ratio`, which AudioDataset reads; it is set to 1.0 here (the value is unused).
"""

from __future__ import annotations

import sys
import types

import soundfile as sf
import torch


def _torchaudio_stand_in() -> None:
    try:
        import torchaudio  # noqa: F401
        return
    except Exception:
        pass
    module = types.ModuleType("torchaudio")
    transforms = types.ModuleType("torchaudio.transforms")

    def load(path: str) -> tuple[torch.Tensor, int]:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(samples.T.copy()), rate

    module.load = load
    for name in ("MelSpectrogram", "Spectrogram", "MelScale"):
        setattr(transforms, name, type(name, (torch.nn.Module,), {}))
    module.transforms = transforms
    sys.modules["torchaudio"] = module
    sys.modules["torchaudio.transforms"] = transforms


def main(upstream: str, export: str) -> None:
    _torchaudio_stand_in()
    sys.path.insert(0, upstream)
    import utils  # upstream's
    from ttv_v1.data_loader import AudioDataset

    hps = utils.get_hparams_from_file(f"{upstream}/ttv_v1/config.json")
    if not hasattr(hps.data, "train_data_ratio"):
        hps.data.train_data_ratio = 1.0
    hps.data.train_filelist_path = f"{export}/filelists/train_wav.txt"
    hps.data.test_filelist_path = f"{export}/filelists/test_wav.txt"
    for training in (True, False):
        dataset = AudioDataset(hps, training=training)
        print(f"{'train' if training else 'test'}: {len(dataset)} items")
        for i in range(len(dataset)):
            print("  ", [(tuple(t.shape), str(t.dtype).replace("torch.", "")) for t in dataset[i]])
        if training and len(dataset):
            batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
            print("collated:", [tuple(t.shape) for t in batch])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
