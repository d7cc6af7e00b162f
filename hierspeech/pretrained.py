"""The two doors of every HierSpeech++ model: build from a config, load an official checkpoint.

`PretrainedModel` gives `Synthesizer`, `TTV`, `SpeechSR` and `Denoiser` one behaviour:

* ``from_config(config)`` builds with random weights, on the CPU, in eval mode;
* ``from_pretrained(path, config=None)`` builds the same way and copies the checkpoint in strictly
  (``weights_only=True``; every missing, unexpected or misshaped key is named and stops loading);
* ``check_pretrained(path, config=None)`` raises what `from_pretrained` would raise, from the keys and
  shapes alone (a driver's check before work);
* `config` is a config object, a path to the official config.json, or None for the config.json
  beside the checkpoint;
* ``fuse_weight_norm()`` caches every weight-normed convolution's weight for inference.

The device is the caller's choice (``model.to(device)``); nothing here downloads or calls ``.cuda()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from hierspeech.checkpoint import build_and_load, check_checkpoint
from hierspeech.config import ModelConfig

ModelT = TypeVar("ModelT", bound="PretrainedModel")


class PretrainedModel(nn.Module):
    """Base of the models loaded from official checkpoints (holds no parameters itself)."""

    config_class: ClassVar[type[ModelConfig]]
    checkpoint_key: ClassVar[str | None] = None
    """The entry of the checkpoint file that holds the state dict (None: the file is a state dict)."""
    config_optional: ClassVar[bool] = False
    """True: without a config.json beside the checkpoint the released defaults are used."""

    config: Any

    @classmethod
    def from_config(cls: type[ModelT], config: Any) -> ModelT:
        """Build with random weights, on the CPU, in eval mode.

        Built outside inference mode even when called inside it, so that the parameters are ordinary
        tensors (see `hierspeech.checkpoint.build_and_load`).
        """
        with torch.inference_mode(False):
            return cls(config).eval()

    @classmethod
    def from_pretrained(cls: type[ModelT], path: str | Path, config: Any = None, **config_options: Any) -> ModelT:
        """Load an official checkpoint strictly, on the CPU, in eval mode; see the module docstring.

        `config_options` go to the config's ``from_json`` (the TTV's `synthesizer_config`).
        Safe to call inside ``torch.inference_mode()``.
        """
        resolved = cls.resolve_config(path, config, **config_options)
        return build_and_load(lambda: cls.from_config(resolved), path, container_key=cls.checkpoint_key)

    @classmethod
    def check_pretrained(cls, path: str | Path, config: Any = None, **config_options: Any) -> None:
        """Raise what `from_pretrained` would raise, at a fraction of its cost (keys and shapes only)."""
        resolved = cls.resolve_config(path, config, **config_options)
        check_checkpoint(lambda: cls(resolved), path, container_key=cls.checkpoint_key)

    @classmethod
    def resolve_config(cls, path: str | Path, config: Any = None, **config_options: Any) -> Any:
        """The config object for a checkpoint at `path`: `config` itself, the file it names, or the
        config.json beside `path`."""
        if isinstance(config, cls.config_class):
            return config
        kind = cls.config_class.KIND
        if config is None:
            beside = Path(path).with_name("config.json")
            if not beside.is_file():
                if cls.config_optional:
                    return cls.config_class()
                raise FileNotFoundError(
                    f"no config.json beside {path}; put the official {kind} config.json beside the "
                    "checkpoint or pass config="
                )
            config = beside
        elif not Path(config).is_file():
            raise FileNotFoundError(f"{kind} config not found: {config}; pass the official {kind} config.json")
        return cls.config_class.from_json(config, **config_options)

    def fuse_weight_norm(self: ModelT) -> ModelT:
        """Inference only: compute every weight-normed convolution's weight once instead of at each call.

        The state dict is unchanged; the cached weights follow ``.to(device)``, and loading a state dict
        drops them. Returns self.
        """
        for module in self.modules():
            if module is not self and hasattr(module, "fuse_weight_norm"):
                module.fuse_weight_norm()
        return self
