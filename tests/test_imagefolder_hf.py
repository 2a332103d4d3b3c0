"""Hugging Face imagefolder layouts, checked against the real `datasets` library: every folder
that `datasets.load_dataset("imagefolder")` loads (for one split), gmi reads identically: the
same images in the same order with the same prompts. The CLI and the HTTP zip upload share the
reader."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_gmi
from gmi.errors import InvalidInputError
from gmi.imagefolder import read_imagefolder

NAMES = ["b.png", "a.png", "c.png", "d.png"]  # not sorted: order must come from the metadata
PROMPTS = ["a cat, red", 'say "hi"', "two lines\nof prompt", "plain ünïcode"]


def images(folder: Path, names=NAMES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (32, 32), (40 * i, 255 - 40 * i, 90)).save(folder / name)


def jsonl(folder: Path, column="text", bom=False, prefix="", names=NAMES) -> None:
    lines = [
        json.dumps({"file_name": prefix + n, column: p})
        for n, p in zip(names, PROMPTS, strict=False)
    ]
    data = ("\n".join(lines) + "\n").encode()
    (folder / "metadata.jsonl").write_bytes(b"\xef\xbb\xbf" + data if bom else data)


def csv_file(folder: Path, column="text", bom=True, crlf=True) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["file_name", "seed", column])
    for i, (n, p) in enumerate(zip(NAMES, PROMPTS, strict=False)):
        writer.writerow([n, i, p])
    data = buffer.getvalue().encode()
    (folder / "metadata.csv").write_bytes(b"\xef\xbb\xbf" + data if bom else data)


def layout(root: Path, kind: str) -> Path:
    folder = root / kind
    if kind == "csv-bom-crlf-quoted":
        images(folder)
        csv_file(folder)
    elif kind == "csv-prompt-column-lf":
        images(folder)
        csv_file(folder, column="prompt", bom=False, crlf=False)
    elif kind == "jsonl-bom":
        images(folder)
        jsonl(folder, bom=True)
    elif kind == "jsonl-caption-column":
        images(folder)
        jsonl(folder, column="caption")
    elif kind == "train-and-test-splits":
        images(folder / "train")
        jsonl(folder / "train")
        images(folder / "test", ["z.png"])
        (folder / "test" / "metadata.jsonl").write_text('{"file_name": "z.png", "text": "zz"}')
    elif kind == "data-train":
        images(folder / "data" / "train")
        jsonl(folder / "data" / "train", column="prompt")
    elif kind == "images-in-subfolder":
        images(folder / "img")
        jsonl(folder, prefix="img/")
    elif kind == "unlisted-extra-image":
        images(folder, [*NAMES, "extra.png"])
        jsonl(folder)
    return folder


LAYOUTS = [
    "csv-bom-crlf-quoted",
    "csv-prompt-column-lf",
    "jsonl-bom",
    "jsonl-caption-column",
    "train-and-test-splits",
    "data-train",
    "images-in-subfolder",
    "unlisted-extra-image",
]


def datasets_view(folder: Path, cache: Path) -> tuple[str, list[tuple[str, str]]]:
    """What the real library loads: (split, [(file name, caption)]) for the split gmi uses."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=str(cache))
    split = "train" if "train" in loaded else next(iter(loaded))
    part = loaded[split].cast_column("image", datasets.Image(decode=False))
    column = next(c for c in ("text", "prompt", "caption") if c in part.column_names)
    rows = [(Path(r["image"]["path"]).name, r[column]) for r in part]
    return split, rows


@pytest.mark.parametrize("kind", LAYOUTS)
def test_gmi_reads_what_datasets_loads(tmp_path, kind):
    folder = layout(tmp_path, kind)
    split, expected = datasets_view(folder, tmp_path / "hf-cache")
    found = read_imagefolder(folder)
    assert [(p.path.name, p.prompt) for p in found.pairs] == expected
    assert found.split == (split if kind in ("train-and-test-splits", "data-train") else None)


def test_cli_submit_reads_a_split_csv_folder(tmp_path):
    folder = tmp_path / "model"
    images(folder / "train")
    csv_file(folder / "train")
    images(folder / "test", ["z.png"])
    (folder / "test" / "metadata.csv").write_text("file_name,text\nz.png,zz\n")
    done = run_gmi("submit", "m", "--images", str(folder), "--quiet", home=tmp_path / "hub")
    assert done.returncode == 0, done.stderr
    assert "4 images (split 'train')" in done.stdout
    info = json.loads(run_gmi("info", "m", "--json", home=tmp_path / "hub").stdout)
    assert info["extra"]["split"] == "train" and info["example_prompts"] == PROMPTS
    assert info["extra"]["inputs"].startswith("sha256:")  # what submit-many skips on


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda f: jsonl(f, column="description"), "name it 'text', 'prompt' or 'caption'"),
        (lambda f: (jsonl(f), csv_file(f)), "keep one kind"),
        (lambda f: None, "no metadata.jsonl or metadata.csv"),
    ],
)
def test_clear_errors(tmp_path, write, message):
    folder = tmp_path / "f"
    images(folder)
    write(folder)
    with pytest.raises(InvalidInputError, match=message):
        read_imagefolder(folder)


def test_several_splits_without_train_are_refused(tmp_path):
    for split in ("test", "validation"):
        images(tmp_path / "f" / split)
        jsonl(tmp_path / "f" / split)
    with pytest.raises(InvalidInputError, match="several splits"):
        read_imagefolder(tmp_path / "f")


def test_zip_upload_uses_the_same_reader(tmp_path):
    """A zip of a train/test layout, with metadata.csv, is read as the CLI reads it."""
    from gmi.server.uploads import safe_extract

    folder = layout(tmp_path, "train-and-test-splits")
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*"):
            zf.write(path, Path("my-model") / path.relative_to(folder))
    unpacked = safe_extract(archive, tmp_path / "unpacked")
    found = read_imagefolder(unpacked)
    assert found.split == "train"
    assert [(p.path.name, p.prompt) for p in found.pairs] == list(zip(NAMES, PROMPTS, strict=False))
