"""The scale-in-words world: a room scaled by s renders to the same picture with s times
the depth, so the picture carries no scale and only the description does."""
import numpy as np
import pytest

from textdepth_ros.data import scale_world
from textdepth_ros.data.generate import SCENES, generate_dataset, render_room
from textdepth_ros.data.nyu import load_depth, read_list

PALETTE = SCENES["office"][2]


def view(room_seed: int, s: float, height=60, width=80):
    """One view of the same unscaled room (same draws) scaled by s."""
    room = scale_world.unscaled_room(np.random.default_rng(room_seed), PALETTE)
    return render_room(np.random.default_rng(100 + room_seed), scale_world.scaled(room, s), height, width, s)


@pytest.mark.parametrize("room_seed", [0, 1, 2])
def test_a_room_twice_the_size_looks_the_same_and_is_twice_as_deep(room_seed):
    rgb1, depth1 = view(room_seed, 1.0)
    rgb2, depth2 = view(room_seed, 2.0)
    # Doubling is exact in floating point, so every ray hits the same surface at the same
    # texture phase and light: the pictures are identical, not just close.
    np.testing.assert_array_equal(rgb1, rgb2)
    hit = depth1 > 0  # the dropouts are drawn in pixels: the same holes in both
    np.testing.assert_array_equal(depth2 == 0, ~hit)
    np.testing.assert_array_equal(depth2[hit], 2 * depth1[hit])
    assert 0.5 < depth1[hit].min() and depth2[hit].max() < 9.99  # no clipping: the scale is the only difference


def test_other_factors_look_almost_the_same():
    """0.7 vs 1.4 (not powers of two): rounding moves a few texture edges by a pixel."""
    rgb1, depth1 = view(5, 0.7)
    rgb2, depth2 = view(5, 1.4)
    differ = np.abs(rgb1.astype(int) - rgb2.astype(int)).max(-1) > 2
    assert differ.mean() < 0.01
    hit = depth1 > 0
    np.testing.assert_allclose(depth2[hit], 2 * depth1[hit], rtol=1e-6)


def test_make_dataset_scale_world_writes_a_description_per_image(tmp_path):
    paths = generate_dataset(tmp_path, n_train=20, n_test=10, height=48, width=64, seed=4, world="scale")
    texts = set(scale_world.all_texts())
    assert len(texts) == len(scale_world.SIZES) * len(scale_world.TEMPLATES)
    medians = {}  # size word -> median depth of its images
    for split in ("train_list", "test_list"):
        for sample in read_list(paths[split]):
            assert sample.scene.startswith("room_")  # the folder name says nothing about the size
            caption = (tmp_path / "captions" / sample.rgb).with_suffix(".txt").read_text().strip()
            assert caption in texts
            word = next(w for _, w, m in scale_world.SIZES if w in caption or f"about {m} metres" in caption)
            depth = load_depth(tmp_path, sample)
            medians.setdefault(word, []).append(np.median(depth[depth > 0]))
    assert set(medians) == {w for _, w, _ in scale_world.SIZES}  # 30 images, 8 rooms: every size
    typical = {w: np.median(v) for w, v in medians.items()}
    for s, word, _ in scale_world.SIZES:  # the unscaled rooms' median depth is ~3.3 m
        assert 2.2 * s < typical[word] < 4.4 * s, (word, typical)
