"""`lrreid sr-benchmark`: tables and JSON on an SR test set and on person crops; one-line errors."""
import json

import pytest
import torch
from PIL import Image

from lrreid.cli import run
from lrreid.evaluation.sr_metrics import mod_crop


def cli(*argv: str) -> int:
    return run(argv)


def make_test_set(root, scales=(2, 3)):
    torch.manual_seed(0)
    (root / "HR").mkdir(parents=True)
    for name in ("a", "b"):
        small = torch.rand(3, 6, 5)
        hr = torch.nn.functional.interpolate(small[None], size=(37, 30), mode="bilinear")[0]
        img = Image.fromarray((hr.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
        img.save(root / "HR" / f"{name}.bmp")
        for s in scales:
            (root / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            c = mod_crop(img, s)
            c.resize((c.width // s, c.height // s), Image.BICUBIC).save(root / "LR_bicubic" / f"X{s}" / f"{name}x{s}.bmp")
    return root


def test_json_report_per_scale(tmp_path, capsys):
    root = make_test_set(tmp_path / "Tiny")
    assert cli("sr-benchmark", "--model", "bicubic", "--data", str(root), "--scales", "2,3", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "bicubic" and [r["scale"] for r in report["results"]] == [2.0, 3.0]
    assert all(r["images"] == 2 and 15 < r["psnr_y"] < 60 and 0 < r["ssim_y"] <= 1 for r in report["results"])
    x2, x3 = report["results"]
    assert x2["psnr_y"] > x3["psnr_y"]  # a larger factor is harder


def test_table_output(tmp_path, capsys):
    root = make_test_set(tmp_path / "Tiny", scales=(2,))
    assert cli("sr-benchmark", "--model", "bicubic", "--data", str(root), "--scales", "2") == 0
    out = capsys.readouterr().out
    assert "PSNR-Y (dB)" in out and "x2" in out


def test_user_errors_are_one_line_with_status_2(tmp_path, capsys):
    root = make_test_set(tmp_path / "Tiny", scales=(2,))
    cases = [
        (("--model", "bicubic"), "exactly one of --data"),
        (("--model", "swinir_s", "--data", str(root), "--scales", "3"), "swinir_s does x2 only; asked for x3"),
        (("--model", "bicubic", "--data", str(root), "--scales", "3"), "X3: folder not found"),
        (("--model", "bicubic", "--data", str(root), "--scales", "two"), "--scales 'two'"),
        (("--model", "carn_m", "--weights", str(tmp_path / "none.pth"), "--data", str(root)), "none.pth: no such weight file"),
        (("--model", "carn", "--data", str(root)), "unknown SR model 'carn'"),
    ]
    for args, message in cases:
        assert cli("sr-benchmark", *args) == 2, args
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (args, err)


@pytest.mark.shared
def test_person_crop_mode_on_viper(shared, capsys):
    root = shared("data", "VIPeR")
    assert cli("sr-benchmark", "--person-crops", "viper", str(root), "--limit", "3", "--scales", "2", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["results"][0]["images"] == 3 and report["results"][0]["psnr_y"] > 20
    assert "viper person crops (3 HR images" in report["source"]


def test_device_this_machine_lacks_is_one_line_naming_it_and_what_is_available(tmp_path, capsys):
    import torch

    root = make_test_set(tmp_path / "Tiny", scales=(2,))
    devices = ["banana", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in devices:
        assert cli("sr-benchmark", "--model", "bicubic", "--data", str(root), "--scales", "2", "--device", device) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and f"--device {device!r}" in lines[0] and "available: cpu" in lines[0], err
