"""List files, depth PNGs, scene text, the labeled .mat reader, SUN RGB-D decoding,
augmentations and the synthetic dataset generator."""
import cv2
import numpy as np
import pytest

from textdepth_ros.data.augment import AugmentConfig, Draws, augment, apply, cut_depth_paper, mask_border
from textdepth_ros.data.dataset import MatDataset
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.nyu import NYU_INTRINSICS, load_depth, load_rgb, read_list
from textdepth_ros.data.nyu_mat import N_LABELED, TEST_INDICES, NyuMat, official_test_indices
from textdepth_ros.data.scene_text import SceneText, scene_name
from textdepth_ros.data.sunrgbd import decode_sunrgbd_depth, encode_sunrgbd_depth
from textdepth_ros.errors import UserError


def test_both_list_styles(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(
        "bathroom/rgb_00045.jpg bathroom/sync_depth_00045.png 518.8579\n"
        "/kitchen_0028b/rgb_00045.jpg /kitchen_0028b/sync_depth_00045.png 518.8579\n"
        "\n# a comment\n"
        "/living_room_0012/rgb_00001.jpg None 0.0\n"
    )
    a, b, c = read_list(lst)
    assert (a.rgb, a.depth, a.focal, a.scene) == ("bathroom/rgb_00045.jpg", "bathroom/sync_depth_00045.png", 518.8579, "bathroom")
    assert (b.rgb, b.depth, b.scene) == ("kitchen_0028b/rgb_00045.jpg", "kitchen_0028b/sync_depth_00045.png", "kitchen_0028b")
    assert c.depth is None and c.focal == NYU_INTRINSICS["fx"]  # 0.0 in some list copies
    # PixelFormer's dense list: three paths, no focal; the third is never read
    lst.write_text("bedroom_0130/rgb_00000.jpg bedroom_0130/sync_depth_00000.png "
                   "bedroom_0130/dense/sync_depth_dense_00000.png\n")
    (d,) = read_list(lst)
    assert (d.rgb, d.depth, d.focal, d.scene) == ("bedroom_0130/rgb_00000.jpg", "bedroom_0130/sync_depth_00000.png",
                                                  NYU_INTRINSICS["fx"], "bedroom_0130")
    lst.write_text("a.jpg b.png banana\n")
    with pytest.raises(UserError, match="neither a focal length nor a path"):
        read_list(lst)
    lst.write_text("only_one_field.jpg\n")
    with pytest.raises(UserError, match="list.txt:1"):
        read_list(lst)


def test_depth_png_is_millimetres_and_rgb_is_rgb(tmp_path):
    (tmp_path / "s").mkdir()
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "s/d.png"), mm)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255  # red
    cv2.imwrite(str(tmp_path / "s/r.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (tmp_path / "l.txt").write_text("s/r.png s/d.png 518.8579\n")
    sample = read_list(tmp_path / "l.txt")[0]
    np.testing.assert_allclose(load_depth(tmp_path, sample), [[0.0, 1.0], [2.5, 65.535]])
    assert load_rgb(tmp_path, sample)[0, 0].tolist() == [255, 0, 0]


def test_scene_text(tmp_path):
    assert scene_name("living_room_0012") == "living room"
    assert scene_name("kitchen_0028b") == "kitchen"
    assert scene_name("bathroom") == "bathroom"
    sample = read_list_from(tmp_path, "/living_room_0012/rgb_00001.jpg /living_room_0012/sync_depth_00001.png 518.8579")
    assert SceneText().text_for(sample) == "a photo of a living room"
    assert SceneText("{scene} indoors").text_for(sample) == "living room indoors"
    caps = tmp_path / "caps/living_room_0012"
    caps.mkdir(parents=True)
    (caps / "rgb_00001.txt").write_text("a sofa in front of a window\n")
    assert SceneText(captions_dir=tmp_path / "caps").text_for(sample) == "a sofa in front of a window"
    with pytest.raises(UserError):
        SceneText("no placeholder")


def read_list_from(tmp_path, line):
    path = tmp_path / "one.txt"
    path.write_text(line + "\n")
    return read_list(path)[0]


def write_labeled_mat(path, n, scenes):
    """A file in the layout MATLAB v7.3 gives nyu_depth_v2_labeled.mat (as h5py sees it)."""
    import h5py

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 480, 640, 3), dtype=np.uint8)
    depths = rng.uniform(0.5, 9.5, (n, 480, 640)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # MATLAB HxWx3xN seen transposed: N,3,W,H
        f["rawDepths"] = depths.transpose(0, 2, 1)  # N,W,H
        f["depths"] = depths.transpose(0, 2, 1) + 1.0
        refs = f.create_group("#refs#")
        ref_ds = f.create_dataset("sceneTypes", (1, n), dtype=h5py.ref_dtype)
        for i, name in enumerate(scenes):
            chars = refs.create_dataset(f"s{i}", data=np.array([[ord(c)] for c in name], np.uint16))
            ref_ds[0, i] = chars.ref
    return images, depths


def test_official_test_indices():
    assert len(TEST_INDICES) == 654 and len(set(TEST_INDICES)) == 654
    assert list(TEST_INDICES) == sorted(TEST_INDICES) and TEST_INDICES[-1] < N_LABELED
    # 0-based = testNdxs - 1: the Eigen list's bathroom/rgb_00045 is image 45
    assert TEST_INDICES[:6] == (0, 1, 8, 13, 14, 15) and 45 in TEST_INDICES and 44 not in TEST_INDICES


def test_mat_reader(tmp_path):
    n = 20
    scenes = [("kitchen" if i % 2 else "bathroom") for i in range(n)]
    images, depths = write_labeled_mat(tmp_path / "nyu.mat", n, scenes)
    with NyuMat(tmp_path / "nyu.mat") as mat:
        assert len(mat) == n
        np.testing.assert_array_equal(mat.rgb(8), images[8])
        np.testing.assert_array_equal(mat.depth(8), depths[8])
        assert mat.rgb(8).shape == (480, 640, 3) and mat.scene(13) == "kitchen"
    assert official_test_indices(n) == [0, 1, 8, 13, 14, 15, 16, 17]
    ds = MatDataset(tmp_path / "nyu.mat", SceneText())
    item = ds[2]  # third official test image = index 8
    assert item["name"] == "bathroom/rgb_00008.jpg" and item["text"] == "a photo of a bathroom"
    np.testing.assert_allclose(item["depth"][0].numpy(), depths[8])
    inpainted = MatDataset(tmp_path / "nyu.mat", SceneText(), depth_key="depths")[2]
    np.testing.assert_allclose(inpainted["depth"][0].numpy(), depths[8] + 1.0)


def test_sunrgbd_depth_bit_rotation():
    # 2500 mm is stored as (2500 << 3 | 2500 >> 13) & 0xFFFF = 20000
    assert encode_sunrgbd_depth(np.array([2.5]))[0] == 20000
    assert decode_sunrgbd_depth(np.array([[20000]], np.uint16))[0, 0] == pytest.approx(2.5)
    # 9000 mm has a bit above 13 bits: it wraps to the low bits (6465) and decodes back,
    # then the toolbox's 8 m clip applies
    assert encode_sunrgbd_depth(np.array([9.0]))[0] == 6465
    assert decode_sunrgbd_depth(np.array([[6465]], np.uint16))[0, 0] == pytest.approx(8.0)
    assert decode_sunrgbd_depth(np.zeros((1, 1), np.uint16))[0, 0] == 0.0


def _image_from_depth(depth):
    return np.repeat((depth / 10.0 * 255).round()[..., None], 3, axis=2).astype(np.uint8)


def test_geometric_augmentations_move_image_and_depth_together():
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 9, (60, 80)).astype(np.float32)
    depth = cv2.GaussianBlur(depth, (0, 0), 6)  # smooth, so bilinear ~ nearest
    cfg = AugmentConfig(color=False, cutdepth="none", border_mask=False, rotate_degrees=2.5)
    for seed in range(6):  # covers flipped and unflipped draws
        image, out_depth = augment(_image_from_depth(depth), depth, np.random.default_rng(seed), cfg)
        inner = (slice(5, -5), slice(5, -5))
        np.testing.assert_allclose(image[..., 0][inner], out_depth[inner] / 10.0, atol=0.01)


def test_color_jitter_leaves_depth_alone_and_border_mask():
    depth = np.full((480, 640), 3.0, np.float32)
    cfg = AugmentConfig(rotate_degrees=0, flip=False, cutdepth="none", color=True)
    image, out = augment(np.full((480, 640, 3), 128, np.uint8), depth, np.random.default_rng(3), cfg)
    assert out[45:472, 43:608].min() == 3.0 and out[44].max() == 0 and out[:, 608].max() == 0
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert mask_border(np.ones((120, 160), np.float32)).sum() == (118 - 11) * (152 - 11)  # scaled border


def _one_rectangle(changed):
    rows, cols = np.nonzero(changed)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def test_cutdepth_paper_variant_pastes_scaled_depth_inside_non_square_images():
    depth = np.add.outer(np.arange(40.0), np.arange(100.0) * 0.01).astype(np.float32) / 5  # rows != cols
    cfg = AugmentConfig(rotate_degrees=0, flip=False, color=False, border_mask=False, cutdepth="paper")
    for seed in range(5):
        cut = tuple(np.random.default_rng(seed).uniform(0, 1, 4))
        image, _ = apply(np.zeros((40, 100, 3), np.uint8), depth, Draws(0.0, cut, False, None), cfg)
        changed = image[..., 0] != 0
        np.testing.assert_allclose(image[..., 0][changed], np.clip(depth[changed] / 10.0, 0, 1))
        top, bottom, left, right = _one_rectangle(changed)
        assert (top, left) == (int(cut[1] * 40), int(cut[0] * 100))  # rows from b, columns from a
        np.testing.assert_array_equal(cut_depth_paper(np.zeros((40, 100, 3), np.float32), depth, cut)[..., 0] != 0,
                                      changed)


def test_cutdepth_pixelformer_variant_geometry_and_metres():
    # PixelFormer indexes rows with the horizontal start: on 480x640 a patch exists only
    # while int(a * 640) < 480, and it holds metres (not scaled), in all three channels.
    depth = np.full((480, 640), 7.5, np.float32)
    cfg = AugmentConfig(rotate_degrees=0, flip=False, color=False, border_mask=False)
    image, _ = apply(np.zeros((480, 640, 3), np.uint8), depth, Draws(0.0, (0.5, 0.25, 1.0, 1.0), False, None), cfg)
    top, bottom, left, right = _one_rectangle(image[..., 0] != 0)
    # l = int(0.5 * 640) = 320 rows down, u = int(0.25 * 480) = 120 columns in;
    # w = int(320 * 0.75) = 240 columns, h = int(360 * 0.75) = 270 rows, cut at row 480
    assert (top, bottom, left, right) == (320, 480, 120, 360)
    assert set(np.unique(image)) == {0.0, 7.5}
    empty, _ = apply(np.zeros((480, 640, 3), np.uint8), depth, Draws(0.0, (0.8, 0.25, 1.0, 1.0), False, None), cfg)
    assert not empty.any()  # a >= 0.75: rows from 512 on, below the image


def test_generator_writes_nyu_layout(tmp_path):
    paths = generate_dataset(tmp_path, n_train=5, n_test=2, height=60, width=80, seed=3)
    train, test = read_list(paths["train_list"]), read_list(paths["test_list"])
    assert len(train) == 5 and len(test) == 2
    assert open(paths["train_list"]).read().startswith("/")  # BTS train style
    assert not open(paths["test_list"]).read().startswith("/")  # Eigen test style
    assert all(s.scene.rsplit("_", 1)[1].isdigit() for s in train + test)
    depth = load_depth(paths["root"], train[0])
    valid = depth[depth > 0]
    assert depth.shape == (60, 80) and valid.min() >= 0.5 and valid.max() <= 10.0
    assert load_rgb(paths["root"], test[0]).shape == (60, 80, 3)
    again = generate_dataset(tmp_path / "again", n_train=5, n_test=2, height=60, width=80, seed=3)
    np.testing.assert_array_equal(load_depth(again["root"], train[0]), depth)  # seeded
