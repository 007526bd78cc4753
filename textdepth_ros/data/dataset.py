"""torch Datasets over NYU-layout lists (and SUN RGB-D lists) and the labeled .mat, and
the DataLoader that carries their errors out of worker processes as one line.

An item is dict(image [3,H,W] float32 RGB in [0,1], depth [1,H,W] float32 metres
(0 = invalid), text str, name str (the list's rgb path), index int, focal float (the
list's focal length in pixels; NYU's where it gives none)).
"""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from textdepth_ros.data.augment import AugmentConfig, augment
from textdepth_ros.data import kitti
from textdepth_ros.data.nyu import NYU_FOCAL, Sample, load_depth, load_rgb
from textdepth_ros.data.scene_text import SceneText, scene_name
from textdepth_ros.errors import UserError


def _to_item(rgb_float: np.ndarray, depth: np.ndarray, text: str, name: str, index: int, focal: float) -> dict:
    return {
        "image": torch.from_numpy(np.ascontiguousarray(rgb_float.transpose(2, 0, 1))),
        "depth": torch.from_numpy(np.ascontiguousarray(depth))[None],
        "text": text,
        "name": name,
        "index": index,
        "focal": float(focal),
    }


class ListDataset(Dataset):
    """Samples of a list file. `augment_cfg` None = evaluation (no augmentation).
    `depth_root`: where the depth paths start (KITTI keeps them in another tree; default
    `root`). `kb_crop`: KITTI's KB crop (data/kitti.py) of image and depth, for training
    and evaluation alike (as PixelFormer's loader does)."""

    def __init__(self, root, samples, scene_text: SceneText, augment_cfg: AugmentConfig = None,
                 seed: int = 0, depth_loader=load_depth, list_name: str = "list", depth_root=None,
                 kb_crop: bool = False):
        self.root = root
        self.depth_root = root if depth_root is None else depth_root
        self.kb_crop = kb_crop
        self.samples = [s for s in samples if s.depth is not None] if augment_cfg else list(samples)
        check_files_exist(root, self.samples, list_name, self.depth_root)
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

    def scene_names(self) -> list:
        """The distinct scene types of the samples ("living room"), sorted."""
        return sorted({scene_name(s.scene) for s in self.samples})

    def __getitem__(self, index: int) -> dict:
        sample: Sample = self.samples[index]
        image = load_rgb(self.root, sample)
        if sample.depth is not None:
            depth = self.depth_loader(self.depth_root, sample)
            if depth.shape != image.shape[:2]:
                raise UserError(f"depth {Path(self.depth_root) / sample.depth} is {depth.shape[0]}x{depth.shape[1]} but "
                                f"its image {Path(self.root) / sample.rgb} is {image.shape[0]}x{image.shape[1]}")
        else:
            depth = np.zeros(image.shape[:2], np.float32)
        if self.kb_crop:
            box = kitti.kb_crop_box(*image.shape[:2], name=str(Path(self.root) / sample.rgb))
            image, depth = kitti.kb_crop(image, box), kitti.kb_crop(depth, box)
        if self.augment_cfg is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, depth = augment(np.ascontiguousarray(image), np.ascontiguousarray(depth), rng, self.augment_cfg)
        else:
            image = image.astype(np.float32) / 255.0
        return _to_item(image, depth, self.text(index), sample.rgb, index, sample.focal)


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
        return _to_item(image, self._mat.depth(i), self.text(index), item_name(self.scenes[index], i), index, NYU_FOCAL)


def check_files_exist(root, samples, list_name: str = "list", depth_root=None) -> None:
    """Fail before training or evaluating, not hours in, when list entries are missing."""
    root = Path(root)
    depth_root = root if depth_root is None else Path(depth_root)
    paths = [root / s.rgb for s in samples] + [depth_root / s.depth for s in samples if s.depth is not None]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        where = str(root) if depth_root == root else f"{root} / {depth_root}"
        raise UserError(f"{len(missing)} file(s) of the {list_name} are missing under {where} (first: {missing[0]}); "
                        f"list paths are relative to the data root" +
                        ("" if depth_root == root else " (depth paths: to the ground-truth root)"))


def collate(items) -> dict:
    """Stack tensors, keep strings and ints as lists (texts go to the text encoder).
    An item that failed (see Loader) makes the whole batch that failure."""
    failed = [it for it in items if "error" in it]
    if failed:
        return failed[0]
    return {
        "image": torch.stack([it["image"] for it in items]),
        "depth": torch.stack([it["depth"] for it in items]),
        "text": [it["text"] for it in items],
        "name": [it["name"] for it in items],
        "index": [it["index"] for it in items],
        "focal": [it["focal"] for it in items],
    }


class _ErrorsAsItems(Dataset):
    """Runs in the worker: a UserError becomes an item carrying its message, because
    an exception raised in a DataLoader worker reaches the main process re-raised with
    the worker's whole traceback in its message."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except UserError as exc:
            return {"error": str(exc)}


class Loader(DataLoader):
    """DataLoader with `collate`, whose dataset errors (a missing or unreadable file,
    sizes that disagree) are raised in the main process as one clear UserError, with
    or without worker processes."""

    def __init__(self, dataset, **kwargs):
        super().__init__(_ErrorsAsItems(dataset), collate_fn=collate, **kwargs)

    def __iter__(self):
        for batch in super().__iter__():
            if "error" in batch:
                raise UserError(batch["error"])
            yield batch
