import json

import pytest
from PIL import Image

from gmi.errors import InvalidInputError
from gmi.imagefolder import load_imagefolder, read_metadata


def _folder(tmp_path, lines, files=("a.png", "b.png")):
    for name in files:
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / name)
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_valid_folder(tmp_path):
    folder = _folder(
        tmp_path,
        [
            json.dumps({"file_name": "a.png", "text": "a cat"}),
            "",
            json.dumps({"file_name": "b.png", "text": ""}),
        ],
    )
    images, prompts = load_imagefolder(folder)
    assert prompts == ["a cat", ""] and len(images) == 2


@pytest.mark.parametrize(
    "lines, message",
    [
        (["{not json"], "not valid JSON"),
        (["[1, 2]"], "JSON object"),
        ([json.dumps({"text": "x"})], "file_name"),
        ([json.dumps({"file_name": "a.png"})], "'text'"),
        ([json.dumps({"file_name": "a.png", "text": 3})], "'text'"),
        ([json.dumps({"file_name": "zzz.png", "text": "x"})], "does not exist"),
        ([json.dumps({"file_name": "../a.png", "text": "x"})], "outside"),
        ([json.dumps({"file_name": "/etc/passwd", "text": "x"})], "outside"),
        ([json.dumps({"file_name": "a.png", "text": "x"})] * 2, "twice"),
        ([""], "lists no images"),
        ([json.dumps({"file_name": "a.png", "text": "x" * 30_000})], "longer"),
    ],
)
def test_malformed_metadata(tmp_path, lines, message):
    folder = _folder(tmp_path / "sub", lines) if False else _folder(tmp_path, lines)
    with pytest.raises(InvalidInputError, match=message):
        read_metadata(folder)


def test_missing_folder_or_metadata(tmp_path):
    with pytest.raises(InvalidInputError, match="not a directory"):
        read_metadata(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match=r"metadata.jsonl"):
        read_metadata(tmp_path)


def test_corrupt_image_names_the_file(tmp_path):
    folder = _folder(
        tmp_path,
        [
            json.dumps({"file_name": "a.png", "text": "x"}),
            json.dumps({"file_name": "bad.png", "text": "y"}),
        ],
        files=("a.png",),
    )
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    with pytest.raises(InvalidInputError, match=r"bad.png"):
        load_imagefolder(folder)
