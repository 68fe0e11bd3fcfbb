# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Write predictions (reconstructions and latents) in the patch dataset format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override

from autoenc.data.dataset_format import write_manifest, write_npy, write_shard
from autoenc.sar.normalisation import codes_from_unit


class PatchPredictionWriter(BasePredictionWriter):
    """Store each predicted batch as per-scene uint16 shards plus float32 latents.

    The output directory is itself a patch dataset (``manifest.json`` written last), so
    reconstructions can be loaded by :class:`~autoenc.data.PatchDataModule` and scored against
    the source. Latents (B, C, H/16, W/16) go to ``latents/`` with the same shard names.
    """

    def __init__(self, output_dir: str = "predictions", write_latents: bool = True) -> None:
        """Configure the writer.

        Args:
            output_dir: directory to create (must not already hold a manifest).
            write_latents: also store the latents.
        """
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.write_latents = write_latents
        self._shards: list[dict[str, Any]] = []

    @override
    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (self.output_dir / "manifest.json").exists():
            raise FileExistsError(
                f"prediction output {str(self.output_dir)!r} already holds a manifest.json; "
                "choose another --trainer.callbacks...output_dir or remove it"
            )
        self._shards = []

    @override
    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        # (B, 1, H, W) in [0, 1] -> the same uint16 codes as the source dataset
        quantised = codes_from_unit(prediction["x_hat"].float().cpu().numpy())
        latents = prediction["y"].float().cpu().numpy()  # (B, C, H/16, W/16)
        scenes = list(batch["scene_id"])
        start = 0
        rank = trainer.global_rank
        while start < len(scenes):  # one shard per run of equal scene ids
            stop = start
            while stop < len(scenes) and scenes[stop] == scenes[start]:
                stop += 1
            name = f"{scenes[start]}_r{rank}_b{batch_idx:06d}.npy"
            entry = write_shard(self.output_dir, f"shards/{name}", quantised[start:stop])
            entry["scene_id"] = scenes[start]
            entry["source_index"] = [int(i) for i in prediction["index"][start:stop]]
            if self.write_latents:
                write_npy(self.output_dir / "latents" / name, latents[start:stop])
            self._shards.append(entry)
            start = stop

    @override
    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        shards = self._shards
        if trainer.world_size > 1:  # every rank wrote its own shards; rank 0 lists them all
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, shards)
            shards = [s for rank_shards in gathered for s in rank_shards]
        if not trainer.is_global_zero:
            return
        shards.sort(key=lambda s: min(s["source_index"]))
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        source = datamodule.manifest
        split = datamodule.predict_split
        scenes: dict[str, Any] = {}
        for shard in shards:
            scene = scenes.setdefault(shard["scene_id"], {"split": split, "num_patches": 0})
            scene["num_patches"] += shard["num_patches"]
        manifest = {
            **{k: v for k, v in source.items() if k not in ("shards", "scenes", "source")},
            "source": {
                "kind": "predictions",
                "dataset": str(datamodule.root),
                "split": split,
                "model": pl_module.hparams.get("model"),
            },
            "scenes": scenes,
            "shards": shards,
        }
        write_manifest(self.output_dir, manifest)
