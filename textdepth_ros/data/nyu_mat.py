"""The official labeled NYU Depth v2 file (`nyu_depth_v2_labeled.mat`, MATLAB v7.3 =
HDF5) and its official 654-image test split.

h5py sees MATLAB's column-major arrays transposed: `images` is (N, 3, W, H) uint8,
`depths`/`rawDepths` are (N, W, H) float32 metres, `sceneTypes`/`scenes` are (1, N)
references to uint16 character arrays. We transpose back to HxWx3 / HxW.

The Eigen test set is `testNdxs` of the official `splits.mat` (1-based). BTS's
`extract_official_train_test_set_from_mat.py` writes image i (0-based) as
`<sceneType>/rgb_%05d.jpg` with its `rawDepths` as `sync_depth_%05d.png`, so the
numbers in the 654-line Eigen list are these 0-based indices; TEST_INDICES below are
those numbers (= testNdxs - 1). Default depth key is therefore 'rawDepths' (what the
Eigen list's PNGs hold); 'depths' (the colourization-inpainted maps) is selectable.
"""
from pathlib import Path

import numpy as np

from textdepth_ros.errors import UserError

# 0-based, inclusive ranges; 654 images in total (checked by the tests).
_TEST_RANGES = (
    (0, 1), (8, 8), (13, 17), (20, 20), (27, 42), (45, 46), (55, 56), (58, 62), (75, 78), (83, 90),
    (116, 118), (124, 128), (130, 133), (136, 136), (152, 154), (166, 168), (170, 175), (179, 201),
    (206, 211), (219, 221), (249, 249), (263, 263), (270, 272), (278, 284), (295, 301), (309, 311),
    (314, 316), (324, 334), (350, 351), (354, 363), (383, 389), (394, 396), (410, 413), (429, 434),
    (440, 447), (461, 465), (468, 476), (507, 512), (514, 525), (530, 532), (536, 538), (548, 550),
    (554, 570), (578, 582), (590, 593), (602, 606), (611, 612), (616, 620), (632, 637), (643, 644),
    (649, 650), (655, 657), (662, 663), (667, 672), (675, 680), (685, 689), (692, 693), (696, 698),
    (705, 712), (716, 717), (723, 727), (730, 733), (742, 743), (758, 786), (799, 803), (809, 813),
    (820, 822), (832, 845), (849, 851), (856, 861), (868, 870), (905, 907), (916, 918), (925, 927),
    (931, 934), (944, 946), (958, 961), (964, 966), (969, 976), (990, 994), (1000, 1003), (1009, 1011),
    (1020, 1022), (1031, 1033), (1037, 1038), (1047, 1048), (1051, 1052), (1056, 1057), (1074, 1083),
    (1087, 1095), (1097, 1103), (1105, 1108), (1116, 1118), (1122, 1130), (1134, 1135), (1143, 1157),
    (1161, 1166), (1169, 1170), (1173, 1175), (1178, 1183), (1191, 1195), (1200, 1211), (1215, 1219),
    (1225, 1229), (1232, 1234), (1246, 1249), (1253, 1264), (1274, 1279), (1284, 1294), (1296, 1298),
    (1301, 1307), (1313, 1314), (1328, 1331), (1334, 1339), (1346, 1348), (1352, 1355), (1363, 1364),
    (1367, 1368), (1383, 1390), (1393, 1400), (1406, 1413), (1420, 1423), (1429, 1432), (1440, 1448),
)
TEST_INDICES = tuple(i for lo, hi in _TEST_RANGES for i in range(lo, hi + 1))
N_LABELED = 1449


class NyuMat:
    """Random access to the labeled .mat. Use as a context manager or call close()."""

    def __init__(self, path, depth_key: str = "rawDepths"):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"NYU .mat file not found: {self.path}")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise UserError(f"{self.path} is not a MATLAB v7.3 (HDF5) file: {exc}") from None
        for key in ("images", depth_key):
            if key not in self.file:
                raise UserError(f"{self.path} has no '{key}' dataset (keys: {', '.join(self.file.keys())})")
        self.depth_key = depth_key
        self.scene_key = next((k for k in ("sceneTypes", "scenes") if k in self.file), None)

    def __len__(self) -> int:
        return self.file["images"].shape[0]

    def rgb(self, index: int) -> np.ndarray:
        return np.ascontiguousarray(self.file["images"][index].transpose(2, 1, 0))  # (3,W,H) -> (H,W,3)

    def depth(self, index: int) -> np.ndarray:
        return np.ascontiguousarray(self.file[self.depth_key][index].T).astype(np.float32)

    def scene(self, index: int) -> str:
        if self.scene_key is None:
            return "room"
        refs = self.file[self.scene_key]
        ref = refs[0, index] if refs.shape[0] == 1 else refs[index, 0]
        chars = np.asarray(self.file[ref]).ravel()
        return "".join(chr(c) for c in chars)

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def official_test_indices(n_images: int) -> "list[int]":
    """The official test indices; a smaller file (a test fixture) gets those that exist."""
    if n_images >= N_LABELED:
        return list(TEST_INDICES)
    return [i for i in TEST_INDICES if i < n_images]


def item_name(scene: str, index: int) -> str:
    """The BTS file name of image `index`, so --pred-dir layouts match the Eigen list."""
    return f"{scene}/rgb_{index:05d}.jpg"
