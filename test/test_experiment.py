"""`textdepth experiment text-prior` as a user runs it (tiny sizes: the numbers are not the
point here, test_learning.py checks that training learns): what it writes, and that bad
options cost one line and leave nothing behind."""
import json

from textdepth_ros.cli import main
from textdepth_ros.experiments.text_controls import derangement


def test_writes_tables_json_pictures_and_logs(tmp_path):
    out = tmp_path / "exp"
    code = main(["experiment", "text-prior", "--out", str(out), "--worlds", "scale", "--variants", "baseline,tbcp",
                 "--seeds", "1", "--steps", "2", "--n-train", "4", "--n-test", "3", "--height", "32", "--width", "48",
                 "--pictures", "2", "--threads", "1"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["logs", "results.json", "results.md", "scale_all.png",
                                                     "scale_baseline.png", "scale_tbcp.png"]
    assert not list(tmp_path.glob(".exp.partial-*"))  # the staging folder (rooms, checkpoints) is gone
    results = json.loads((out / "results.json").read_text())
    assert [(r["variant"], r["steps"]) for r in results["runs"]] == [("baseline", 2), ("tbcp", 2)]
    assert set(results["summary"]["scale"]) == {"baseline/right", "baseline/median-scaled", "baseline/flat",
                                                "tbcp/right", "tbcp/shuffled", "tbcp/constant", "tbcp/median-scaled"}
    table = (out / "results.md").read_text()
    assert "| tbcp, texts shuffled |" in table and "| tbcp, one constant text |" in table
    assert "textdepth experiment text-prior --out" in table  # how to re-run it


def test_bad_options_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "exp"
    for bad in (["--worlds", "moon"], ["--variants", "full,trca2"], ["--n-test", "1"], ["--steps", "0"]):
        assert main(["experiment", "text-prior", "--out", str(out), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("textdepth experiment: error: ") and err.count("\n") == 1, err
    assert not tmp_path.joinpath("exp").exists() and not list(tmp_path.iterdir())


def test_shuffled_texts_move_every_image():
    for n in range(2, 30):
        for seed in range(3):
            order = derangement(n, seed)
            assert sorted(order) == list(range(n)) and all(order[i] != i for i in range(n))
