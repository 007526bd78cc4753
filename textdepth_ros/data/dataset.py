"""torch Datasets over NYU-layout lists (and SUN RGB-D lists) and the labeled .mat.

An item is dict(image [3,H,W] float32 RGB in [0,1], depth [1,H,W] float32 metres
(0 = invalid), text str, name str (the list's rgb path), index int).
"""
import numpy as np
import torch
from torch.utils.data import Dataset

from textdepth_ros.data.augment import AugmentConfig, augment
from textdepth_ros.data.nyu import Sample, load_depth, load_rgb
from textdepth_ros.data.scene_text import SceneText


def _to_item(rgb_float: np.ndarray, depth: np.ndarray, text: str, name: str, index: int) -> dict:
    return {
        "image": torch.from_numpy(np.ascontiguousarray(rgb_float.transpose(2, 0, 1))),
        "depth": torch.from_numpy(np.ascontiguousarray(depth))[None],
        "text": text,
        "name": name,
        "index": index,
    }


class ListDataset(Dataset):
    """Samples of a list file. `augment_cfg` None = evaluation (no augmentation)."""

    def __init__(self, root, samples, scene_text: SceneText, augment_cfg: AugmentConfig = None,
                 seed: int = 0, depth_loader=load_depth):
        self.root = root
        self.samples = [s for s in samples if s.depth is not None] if augment_cfg else list(samples)
        self.scene_text = scene_text
        self.augment_cfg = augment_cfg
        self.seed = seed
        self.epoch = 0
        self.depth_loader = depth_loader

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def text(self, index: int) -> str:
        return self.scene_text.text_for(self.samples[index])

    def __getitem__(self, index: int) -> dict:
        sample: Sample = self.samples[index]
        image = load_rgb(self.root, sample).astype(np.float32) / 255.0
        if sample.depth is not None:
            depth = self.depth_loader(self.root, sample)
        else:
            depth = np.zeros(image.shape[:2], np.float32)
        if self.augment_cfg is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, depth = augment(image, depth, rng, self.augment_cfg)
        return _to_item(image, depth, self.text(index), sample.rgb, index)


class MatDataset(Dataset):
    """The official test split of the labeled .mat (evaluation only). The file is opened
    lazily per process, since an h5py handle cannot cross a worker fork safely."""

    def __init__(self, path, scene_text: SceneText, depth_key: str = "rawDepths"):
        from textdepth_ros.data.nyu_mat import NyuMat, official_test_indices

        self.path, self.depth_key, self.scene_text = path, depth_key, scene_text
        with NyuMat(path, depth_key) as mat:
            self.indices = official_test_indices(len(mat))
            self.scenes = [mat.scene(i) for i in self.indices]
        self._mat = None

    def __len__(self) -> int:
        return len(self.indices)

    def text(self, index: int) -> str:
        from textdepth_ros.data.nyu_mat import item_name

        name = item_name(self.scenes[index], self.indices[index])
        return self.scene_text.text_for(Sample(rgb=name, depth=None, focal=0.0, scene=self.scenes[index]))

    def __getitem__(self, index: int) -> dict:
        from textdepth_ros.data.nyu_mat import NyuMat, item_name

        if self._mat is None:
            self._mat = NyuMat(self.path, self.depth_key)
        i = self.indices[index]
        image = self._mat.rgb(i).astype(np.float32) / 255.0
        return _to_item(image, self._mat.depth(i), self.text(index), item_name(self.scenes[index], i), index)


def collate(items) -> dict:
    """Stack tensors, keep strings and ints as lists (texts go to the text encoder)."""
    return {
        "image": torch.stack([it["image"] for it in items]),
        "depth": torch.stack([it["depth"] for it in items]),
        "text": [it["text"] for it in items],
        "name": [it["name"] for it in items],
        "index": [it["index"] for it in items],
    }
