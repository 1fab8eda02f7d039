"""Data audit: class balance, pixel statistics, exact duplicates (within and across splits), blanks.

Run it on the splits as loaded (`load_data(source, val_fraction=0)`), so train is the whole
train set. The result is plain JSON types, for writing next to experiment results.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from fer_search.data.splits import image_digests
from fer_search.data.types import CLASS_NAMES, UNLABELED, FERData, Split

_EXAMPLES = 5  # ids listed per finding: enough to look at, short enough to print


def audit(data: FERData) -> dict:
    splits = data.splits()
    # Exact duplicates: a 128-bit digest of each image's bytes, grouped across all splits at once.
    names = list(splits)
    digests = np.concatenate([image_digests(s.images) for s in splits.values()])
    _, group = np.unique(digests, return_inverse=True)
    bounds = np.cumsum([0] + [len(s) for s in splits.values()])
    groups = {name: group[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}
    result = {
        "name": data.name,
        "form": data.form,
        "class_names": list(CLASS_NAMES),
        "splits": {name: _split_stats(split, groups[name]) for name, split in splits.items()},
        "across_splits": [_shared(a, splits[a], groups[a], b, splits[b], groups[b]) for a, b in combinations(names, 2)],
        "load_report": {
            "skipped": len(data.report.skipped),
            "skipped_examples": data.report.skipped[:_EXAMPLES],
            "resized": data.report.resized,
            "converted_to_gray": data.report.converted_to_gray,
            "notes": list(data.report.notes),
        },
    }
    return result


def _split_stats(split: Split, group: np.ndarray) -> dict:
    counts = split.class_counts()
    labeled = counts.sum() > 0
    flat = split.images.reshape(len(split), -1)
    blank = np.flatnonzero(flat.min(axis=1) == flat.max(axis=1)) if len(split) else np.empty(0, int)
    _, inverse, sizes = np.unique(group, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(sizes > 1)
    lowest, highest = np.full(len(sizes), np.iinfo(np.int64).max), np.full(len(sizes), np.iinfo(np.int64).min)
    np.minimum.at(lowest, inverse, split.labels)
    np.maximum.at(highest, inverse, split.labels)
    # Pixel statistics from the 256-bin histogram: exact, and no float copy of the images.
    histogram = np.bincount(split.images.ravel(), minlength=256)
    values = np.arange(256)
    mean = float(histogram @ values / max(histogram.sum(), 1))
    std = float(np.sqrt(histogram @ (values - mean) ** 2 / max(histogram.sum(), 1)))
    return {
        "images": len(split),
        "unlabeled": int((split.labels == UNLABELED).sum()),
        "class_counts": {name: int(c) for name, c in zip(CLASS_NAMES, counts)} if labeled else None,
        # max:min over the classes; None when a class is absent (the ratio would be infinite).
        "imbalance": round(float(counts.max() / counts.min()), 4) if labeled and counts.min() > 0 else None,
        "pixel_mean": round(mean, 4) if len(split) else None,
        "pixel_std": round(std, 4) if len(split) else None,
        "blank": len(blank),
        "blank_examples": [str(split.ids[i]) for i in blank[:_EXAMPLES]],
        # Extra copies (a group of 3 identical images counts 2), and how many groups that makes.
        "duplicates": int(len(split) - len(sizes)),
        "duplicate_groups": len(repeated),
        "duplicate_groups_with_conflicting_labels": int((lowest != highest).sum()),
        "duplicate_examples": [[str(i) for i in split.ids[inverse == g]] for g in repeated[:_EXAMPLES]],
    }


def _shared(a: str, split_a: Split, group_a: np.ndarray, b: str, split_b: Split, group_b: np.ndarray) -> dict:
    common = np.intersect1d(group_a, group_b)
    in_a, in_b = np.isin(group_a, common), np.isin(group_b, common)
    examples = [[str(split_a.ids[np.argmax(group_a == g)]), str(split_b.ids[np.argmax(group_b == g)])]
                for g in common[:_EXAMPLES]]
    return {"splits": [a, b], "distinct_images": len(common), f"{a}_images": int(in_a.sum()),
            f"{b}_images": int(in_b.sum()), "examples": examples}


def format_audit(result: dict) -> str:
    """A readable report of `audit(...)`: one table row per split, then duplicates and load fixes."""
    classes = result["class_names"]
    head = ["split", "images", *classes, "unlab.", "max:min", "mean", "std", "blank", "dups", "dup groups"]
    rows = []
    for name, s in result["splits"].items():
        counts = s["class_counts"] or {}
        rows.append([name, s["images"], *(counts.get(c, "-") for c in classes), s["unlabeled"],
                     "-" if s["imbalance"] is None else f"{s['imbalance']:.2f}:1",
                     _num(s["pixel_mean"]), _num(s["pixel_std"]), s["blank"], s["duplicates"], s["duplicate_groups"]])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list) -> str:
        return "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))

    out = [f"{result['name']} ({result['form']})", line(head), line(["-" * w for w in widths]), *map(line, rows)]
    for name, s in result["splits"].items():
        if s["duplicate_groups_with_conflicting_labels"]:
            out.append(f"{name}: {s['duplicate_groups_with_conflicting_labels']} duplicate groups carry different labels")
        if s["blank_examples"]:
            out.append(f"{name}: blank images, e.g. {', '.join(s['blank_examples'])}")
    for shared in result["across_splits"]:
        a, b = shared["splits"]
        out.append(f"{a} & {b}: {shared['distinct_images']} identical images "
                   f"({shared[f'{a}_images']} in {a}, {shared[f'{b}_images']} in {b})"
                   + (f", e.g. {' = '.join(shared['examples'][0])}" if shared["examples"] else ""))
        if a == "train" and b in ("val", "test") and shared["train_images"]:
            out.append(f"  train, search and refit leave out these {shared['train_images']} train images "
                       "(--keep-test-copies keeps them)")
    report = result["load_report"]
    out.append(f"load: {report['skipped']} skipped, {report['resized']} resized, "
               f"{report['converted_to_gray']} converted to gray")
    out += [f"  skipped {s}" for s in report["skipped_examples"]]
    out += [f"  note: {n}" for n in report["notes"]]
    return "\n".join(out)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
