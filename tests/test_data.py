"""fer_search.data: the three FER2013 forms, cache, splits, synthetic data, audit and bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_search.data import CLASS_NAMES, FERData, audit, format_audit, load_data, make_synthetic
from fer_search.data import cache, csv_forms, folders, loader
from fer_search.data.splits import stratified_indices
from fer_search.errors import UserError

RNG = np.random.default_rng(0)


def face(value: int | None = None, size: int = 48) -> np.ndarray:
    """A random image, or one whose first pixel carries `value` (to trace where an image went)."""
    image = RNG.integers(0, 256, (size, size), dtype=np.uint8)
    if value is not None:
        image[0, 0] = value
    return image


def write_image(path: Path, image: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).convert(mode).save(path)


def make_tree(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    """root/<split>/<class>/<i>.png, each image marked with its FER class id in pixel (0, 0)."""
    for split, classes in layout.items():
        for name, n in classes.items():
            label = folders.CLASS_ALIASES.get(name.lower(), 255)
            for i in range(n):
                write_image(root / split / name / f"{i}.png", face(label))
    return root


def pixels(image: np.ndarray) -> str:
    return " ".join(map(str, image.ravel()))


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def kaggle_rows(usages: dict[str, int]) -> list[list]:
    """emotion, pixels, Usage rows; emotion cycles 0..6, pixel (0, 0) holds the row number."""
    rows = []
    for usage, n in usages.items():
        for _ in range(n):
            rows.append([len(rows) % 7, pixels(face(len(rows) % 256)), usage])
    return rows


@pytest.fixture
def load(tmp_path):
    """load_data with a private cache and no progress bars."""
    def _load(source, **kw):
        return load_data(source, cache_dir=tmp_path / "cache", progress=False, **kw)
    return _load


# ---- the three forms -------------------------------------------------------------------------

def test_image_folders(tmp_path, load):
    root = make_tree(tmp_path / "fer", {"train": {"angry": 10, "Happy": 10, "disgusted": 10},
                                        "test": {"neutral": 2, "surprise": 3}})
    data = load(root, val_fraction=0)
    assert (data.form, data.name) == ("folders", f"folders:{root.resolve()}")
    assert data.val is None and len(data.train) == 30 and len(data.test) == 5
    assert data.train.images.dtype == np.uint8 and data.train.images.shape == (30, 48, 48)
    assert data.train.labels.dtype == np.int64
    assert "train/Happy/0.png" in data.train.ids
    # Carving takes a stratified 10% of train and keeps test whole.
    carved = load(root)
    assert len(carved.train) == 27 and len(carved.val) == 3 and len(carved.test) == 5
    assert sorted(carved.val.labels) == [0, 1, 3]


def test_class_ids_follow_folder_names_not_sort_order(tmp_path, load):
    names = ["Surprised", "neutral", "anger", "FEARFUL", "sadness", "happiness", "disgust"]
    data = load(make_tree(tmp_path / "fer", {"test": {n: 2 for n in names}}))
    # pixel (0, 0) holds the id derived from the name: the labels must agree with it.
    assert np.array_equal(data.test.labels, data.test.images[:, 0, 0])
    label_of = {name: int(lbl) for i, lbl in zip(data.test.ids, data.test.labels) for name in [i.split("/")[1]]}
    assert label_of == {"Surprised": 5, "neutral": 6, "anger": 0, "FEARFUL": 2, "sadness": 4, "happiness": 3, "disgust": 1}


def test_folder_with_only_test_loads_for_evaluation(tmp_path, load):
    data = load(make_tree(tmp_path / "fer", {"test": {"happy": 2, "sad": 1}}))
    assert data.train is None and data.val is None and data.test.labeled and len(data.test) == 3


def test_validation_folder_is_the_val_split(tmp_path, load):
    root = make_tree(tmp_path / "fer", {"train": {"angry": 4}, "validation": {"sad": 2}, "test": {"happy": 1}})
    data = load(root, val_fraction=0.5)
    assert len(data.train) == 4 and list(data.val.labels) == [4, 4]


def test_kaggle_csv_public_private_are_val_and_test(tmp_path, load):
    rows = kaggle_rows({"Training": 14, "PublicTest": 3, "PrivateTest": 4})
    csv = write_csv(tmp_path / "kaggle" / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    for source in (csv, csv.parent):  # the file, or a folder holding it
        data = load(source)
        assert data.form == "kaggle_csv"
        assert (len(data.train), len(data.val), len(data.test)) == (14, 3, 4)
        assert list(data.val.images[:, 0, 0]) == [14, 15, 16]  # PublicTest rows, in file order
        assert list(data.test.images[:, 0, 0]) == [17, 18, 19, 20]
        assert list(data.test.ids) == ["0", "1", "2", "3"]  # Kaggle submission row index
        assert list(data.test.labels) == [3, 4, 5, 6]


def test_kaggle_csv_without_private_test_carves_val(tmp_path, load):
    rows = kaggle_rows({"Training": 14, "PublicTest": 3})
    data = load(write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows), val_fraction=0.5)
    assert (len(data.train), len(data.val), len(data.test)) == (7, 7, 3)
    assert any("test = PublicTest" in n for n in data.report.notes)


def test_torchvision_folder_unlabeled_test(tmp_path, load):
    folder = tmp_path / "root" / "fer2013"
    write_csv(folder / "train.csv", ["emotion", "pixels"], [[i % 7, pixels(face(i))] for i in range(14)])
    write_csv(folder / "test.csv", ["pixels"], [[pixels(face(100 + i))] for i in range(3)])
    for source in (folder, folder.parent, folder / "train.csv"):
        data = load(source, val_fraction=0.5)
        assert data.form == "torchvision" and len(data.train) == 7 and len(data.val) == 7
        assert list(data.test.labels) == [-1, -1, -1] and not data.test.labeled
        assert list(data.test.images[:, 0, 0]) == [100, 101, 102]


def test_torchvision_icml_file_with_leading_space_columns(tmp_path, load):
    rows = [[e, u, p] for e, p, u in kaggle_rows({"Training": 7, "PublicTest": 2, "PrivateTest": 2})]
    write_csv(tmp_path / "fer2013" / "icml_face_data.csv", ["emotion", " Usage", " pixels"], rows)
    data = load(tmp_path / "fer2013")
    assert data.form == "torchvision" and (len(data.train), len(data.val), len(data.test)) == (7, 2, 2)


# ---- cache -----------------------------------------------------------------------------------

def test_cache_is_reused_and_not_beside_the_data(tmp_path, load, monkeypatch):
    root = make_tree(tmp_path / "fer", {"train": {"angry": 3, "sad": 3}})
    before = sorted(p for p in root.rglob("*"))
    first = load(root, val_fraction=0)
    assert len(list((tmp_path / "cache").glob("folders-*.npz"))) == 1
    assert sorted(p for p in root.rglob("*")) == before

    def no_decode(path):
        raise AssertionError("decoded although cached")
    monkeypatch.setattr(folders, "decode_image", no_decode)
    second = load(root, val_fraction=0)
    assert np.array_equal(first.train.images, second.train.images)
    assert list(first.train.ids) == list(second.train.ids)


def test_csv_cache_is_reused(tmp_path, load, monkeypatch):
    csv = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], kaggle_rows({"Training": 7}))
    load(csv)
    monkeypatch.setattr(csv_forms, "_parse_pixels", lambda *a: pytest.fail("parsed although cached"))
    assert len(load(csv, val_fraction=0).train) == 7


def test_cache_invalidated_by_changed_files(tmp_path, load):
    root = make_tree(tmp_path / "fer", {"train": {"angry": 3}})
    assert load(root, val_fraction=0).train.images[0, 0, 0] == 0
    target = root / "train" / "angry" / "0.png"
    write_image(target, face(77))
    os.utime(target, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    assert load(root, val_fraction=0).train.images[0, 0, 0] == 77
    write_image(root / "train" / "angry" / "3.png", face(0))
    assert len(load(root, val_fraction=0).train) == 4
    assert len(list((tmp_path / "cache").glob("folders-*.npz"))) == 1  # stale entries are removed


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_SEARCH_CACHE", str(tmp_path / "env_cache"))
    load_data(make_tree(tmp_path / "fer", {"test": {"sad": 1}}), progress=False)
    assert len(list((tmp_path / "env_cache").glob("*.npz"))) == 1


def test_unwritable_cache_warns_and_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_warned_unwritable", False)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    root = make_tree(tmp_path / "fer", {"test": {"sad": 1}})
    with pytest.warns(UserWarning, match="not writable"):
        assert len(load_data(root, cache_dir=blocker / "cache", progress=False).test) == 1


# ---- splits ----------------------------------------------------------------------------------

def test_split_is_deterministic_and_stratified():
    labels = np.repeat(np.arange(7), [400, 44, 410, 720, 480, 320, 500])
    keep, held = stratified_indices(labels, 0.1, seed=5)
    assert len(held) == round(0.1 * len(labels)) and len(np.intersect1d(keep, held)) == 0
    assert len(keep) + len(held) == len(labels)
    assert np.abs(np.bincount(labels[held]) / len(held) - np.bincount(labels) / len(labels)).max() < 0.005
    assert np.array_equal(held, stratified_indices(labels, 0.1, seed=5)[1])
    assert not np.array_equal(held, stratified_indices(labels, 0.1, seed=6)[1])


def test_load_split_depends_on_seed_only(tmp_path, load):
    root = make_tree(tmp_path / "fer", {"train": {"angry": 10, "happy": 10}})
    a, b, c = load(root, seed=1, val_fraction=0.2), load(root, seed=1, val_fraction=0.2), load(root, seed=2, val_fraction=0.2)
    assert list(a.val.ids) == list(b.val.ids) != list(c.val.ids)
    assert sorted(a.val.labels) == [0, 0, 3, 3]


# ---- synthetic -------------------------------------------------------------------------------

def test_synthetic_is_deterministic_with_fer2013_proportions():
    a, b = make_synthetic(n_train=350, n_test=50, seed=3), make_synthetic(n_train=350, n_test=50, seed=3)
    assert np.array_equal(a.train.images, b.train.images) and np.array_equal(a.val.labels, b.val.labels)
    assert not np.array_equal(a.train.images, make_synthetic(n_train=350, n_test=50, seed=4).train.images)
    assert (len(a.train), len(a.val), len(a.test)) == (315, 35, 50)
    counts = np.bincount(np.concatenate([a.train.labels, a.val.labels]), minlength=7)
    assert list(counts) == [49, 5, 50, 88, 59, 39, 60]  # 350 * FER2013 train proportions
    assert a.form == "synthetic" and a.train.images.dtype == np.uint8
    assert 40 < a.train.images.std() < 90  # varied images, not flat drawings


def test_load_synthetic_carves_with_seed(monkeypatch):
    small = lambda seed, val_fraction: make_synthetic(200, 50, seed=seed, val_fraction=val_fraction)  # noqa: E731
    monkeypatch.setattr(loader, "make_synthetic", small)
    a, b = load_data("synthetic", seed=1), load_data("synthetic", seed=2)
    assert a.form == "synthetic" and len(a.val) == 20 and len(a.test) == 50
    assert np.array_equal(a.test.images, b.test.images) and list(a.val.ids) != list(b.val.ids)


def test_synthetic_never_stands_in_for_a_missing_path(tmp_path):
    for missing in (tmp_path / "synthetic", Path("synthetic"), "./synthetic"):
        with pytest.raises(UserError, match="does not exist"):
            load_data(missing, cache_dir=tmp_path / "cache", progress=False)


# ---- audit -----------------------------------------------------------------------------------

def test_audit_counts_duplicates_blanks_and_balance(tmp_path, load):
    root = make_tree(tmp_path / "fer", {"train": {"angry": 4, "happy": 2}, "test": {"angry": 1, "sad": 1}})
    duplicate = face(0)
    write_image(root / "train" / "angry" / "dup_a.png", duplicate)
    write_image(root / "train" / "happy" / "dup_b.png", duplicate)  # same image, another label
    write_image(root / "test" / "angry" / "dup_c.png", duplicate)  # ... and in test
    write_image(root / "train" / "angry" / "blank.png", np.full((48, 48), 9, np.uint8))
    data = load(root, val_fraction=0, drop_test_copies=False)  # the audit sees the data as it is
    result = audit(data)
    json.dumps(result)  # plain JSON types
    train, test = result["splits"]["train"], result["splits"]["test"]
    assert train["class_counts"]["angry"] == 6 and train["class_counts"]["happy"] == 3
    assert train["imbalance"] is None  # classes without images: the ratio is infinite
    assert train["duplicates"] == 1 and train["duplicate_groups"] == 1
    assert train["duplicate_groups_with_conflicting_labels"] == 1
    assert train["blank"] == 1 and train["blank_examples"] == ["train/angry/blank.png"]
    assert test["duplicates"] == 0 and test["blank"] == 0
    assert train["pixel_mean"] == pytest.approx(data.train.images.mean(), abs=1e-3)
    assert train["pixel_std"] == pytest.approx(data.train.images.std(), abs=1e-3)
    (shared,) = result["across_splits"]
    assert shared["splits"] == ["train", "test"] and shared["distinct_images"] == 1
    assert (shared["train_images"], shared["test_images"]) == (2, 1)
    text = format_audit(result)
    assert "train & test: 1 identical images" in text and "blank.png" in text


def test_audit_imbalance_ratio():
    data = make_synthetic(n_train=300, n_test=50, val_fraction=0)
    counts = data.train.class_counts()
    assert audit(data)["splits"]["train"]["imbalance"] == pytest.approx(counts.max() / counts.min(), abs=1e-4)


# ---- bad input -------------------------------------------------------------------------------

def test_images_are_fixed_or_skipped_and_reported(tmp_path, load):
    root = make_tree(tmp_path / "fer", {"train": {"angry": 2}})
    write_image(root / "train" / "angry" / "big.png", face(size=64))
    write_image(root / "train" / "angry" / "colour.jpg", face(), mode="RGB")
    put(root / "train" / "angry" / "broken.jpg", b"not a jpeg")
    put(root / "train" / "angry" / "truncated.png", (root / "train" / "angry" / "0.png").read_bytes()[:200])
    put(root / "train" / "angry" / "notes.txt", "ignored")
    data = load(root, val_fraction=0)
    assert len(data.train) == 4 and data.report.resized == 1 and data.report.converted_to_gray == 1
    assert sorted(Path(s.split(":")[0]).name for s in data.report.skipped) == ["broken.jpg", "truncated.png"]
    assert any("notes.txt" in n for n in data.report.notes)


def put(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def bad_kaggle(tmp_path, header=("emotion", "pixels", "Usage"), row=None):
    rows = kaggle_rows({"Training": 3})
    if row is not None:
        rows[1] = row
    return write_csv(tmp_path / "fer2013.csv", list(header), rows)


@pytest.mark.parametrize("make, expected", [
    (lambda t: t / "nowhere", r"nowhere does not exist"),
    (lambda t: (t / "empty").mkdir() or t / "empty", r"empty: no FER2013 data found.*nothing"),
    (lambda t: (t / "e" / "train" / "angry").mkdir(parents=True) or t / "e", r"e: no images found"),
    (lambda t: make_tree(t / "u", {"train": {"angry": 1, "joy": 1}}), r"train/joy: unknown class folder 'joy'"),
    (lambda t: put(t / "c" / "test" / "sad" / "x.jpg", b"junk").parents[2], r"test: none of its 1 images could be read"),
    (lambda t: bad_kaggle(t, row=[0, pixels(face())[:-4], "Training"]),
     r"fer2013.csv row 1 \(line 3\): pixels has 2303 values, expected 2304"),
    (lambda t: bad_kaggle(t, row=[0, "1 2 abc 4", "Training"]), r"fer2013.csv row 1 .*non-numeric value 'abc'"),
    (lambda t: bad_kaggle(t, row=[9, pixels(face()), "Training"]), r"fer2013.csv row 1 .*emotion is '9'"),
    (lambda t: bad_kaggle(t, row=[1, pixels(face()), "Valid"]), r"fer2013.csv row 1 .*Usage is 'Valid'"),
    (lambda t: bad_kaggle(t, header=("label", "pixels", "Usage")),
     r"fer2013.csv: wrong columns: expected emotion, pixels, Usage; found 'label', 'pixels', 'Usage'"),
    (lambda t: put(t / "fer2013.csv", ""), r"fer2013.csv: the file is empty"),
    (lambda t: write_csv(t / "fer2013.csv", ["emotion", "pixels", "Usage"], []), r"fer2013.csv: has a header but no rows"),
    (lambda t: put(t / "data.txt", "x"), r"data.txt: not a CSV file"),
    (lambda t: write_csv(t / "fer2013" / "test.csv", ["emotion"], [[1]]), r"test.csv: wrong columns"),
])
def test_bad_input_names_the_culprit(tmp_path, load, make, expected):
    source = make(tmp_path)
    with pytest.raises(UserError, match=expected):
        load(source)


def test_bad_val_fraction(tmp_path, load):
    with pytest.raises(UserError, match="val_fraction must be in"):
        load(make_tree(tmp_path / "fer", {"train": {"sad": 2}}), val_fraction=1.0)


def test_pixel_value_out_of_range(tmp_path, load):
    values = face().ravel().astype(int)
    values[5] = 300
    with pytest.raises(UserError, match=r"row 1 .*outside 0..255 \(300\)"):
        load(bad_kaggle(tmp_path, row=[0, " ".join(map(str, values)), "Training"]))


# ---- real data -------------------------------------------------------------------------------

@pytest.mark.real_data
def test_real_fer2013_folders(tmp_path):
    root = os.environ.get("FER2013_ROOT")
    if not root or not Path(root).is_dir():
        pytest.skip("set FER2013_ROOT to the FER2013 image folders to run this test")
    data = load_data(root, val_fraction=0, cache_dir=tmp_path / "cache", progress=False, drop_test_copies=False)
    result = audit(data)
    train = result["splits"]["train"]
    assert data.form == "folders" and train["images"] == 28709
    assert [train["class_counts"][c] for c in CLASS_NAMES] == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert train["imbalance"] == pytest.approx(16.55, abs=0.005)
    assert train["pixel_mean"] == pytest.approx(131.0, abs=0.1)
    # This copy of FER2013 is contrast-stretched (near-flat histograms): std 78.2, not the CSV's ~65.
    assert train["pixel_std"] == pytest.approx(78.2, abs=0.1)
    assert len(data.test) == 3589 and train["blank"] > 0 and train["duplicates"] > 0
    assert isinstance(data, FERData) and data.report.skipped == []
