"""scripts/bench_post.py at tiny sizes: the plan of configurations per device, each section's record (keys,
units, frames/s = frames / seconds, parameter counts of the real layouts), the ratios against hand-computed
values, and the markdown / JSON output."""

from __future__ import annotations

import json

import pytest
import torch

from scripts import bench_post
from scripts.bench_refiner_attention import FORMULA_CASES, formula_record
from skyreels_core.models.av_mmdit import AVDiTConfig
from skyreels_core.models.rife import RIFE_PRESETS, IFNet

MEMORY_KEYS = {"memory", "base_mb", "peak_mb", "working_mb"}


@pytest.fixture(autouse=True)
def _keep_threads():
    """The bench sets torch's thread count for its process; give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _args(*argv: str):
    return bench_post.resolve(bench_post.build_parser().parse_args(list(argv)))


def test_cpu_default_plan():
    configs = bench_post.plan(_args())
    rife = [(c["model"], c["width"], c["height"]) for c in configs if c["section"] == "rife"]
    assert rife == [("4.26", 960, 544), ("4.26", 1920, 1088), ("4.7", 960, 544), ("4.7", 1920, 1088)]
    sr = [
        (c["model"], c["width"], c["height"], c["tile"], c["frames"], c["repeats"])
        for c in configs
        if c["section"] == "sr"
    ]
    assert sr == [("x2plus", 960, 544, 0, 1, 1), ("x2plus", 960, 544, 512, 1, 1), ("x4v3", 480, 272, 0, 1, 1)]
    assert [c["grid"] for c in configs if c["section"] == "refiner"] == [(9, 18, 32)]
    assert {c["dtype"] for c in configs} == {"fp32"} and {c["threads"] for c in configs} == {1}
    assert all(c["frames"] == 3 for c in configs if c["section"] == "rife")


def test_cuda_plan_and_options():
    configs = bench_post.plan(_args("--device", "cuda"))  # planning needs no GPU
    assert [c["dtype"] for c in configs if c["section"] == "refiner"] == ["bf16"]
    for dtype in ("fp16", "bf16", "fp32"):
        rows = [c for c in configs if c["dtype"] == dtype and c["section"] != "refiner"]
        assert len(rows) == 4 + 5  # 2 layouts x 2 sizes; 5 SR rows (x4v3 also at 540p, whole and tiled)
        assert all(c["frames"] == 17 for c in rows if c["section"] == "rife")
        assert all(c["frames"] == 8 and c["batch"] == 4 and c["repeats"] == 3 for c in rows if c["section"] == "sr")
    assert all(c["threads"] is None for c in configs)

    small = bench_post.plan(_args("--small", "--only", "sr", "--sr-size", "256x128", "--dtypes", "bf16"))
    # at 256x128 no frame is larger than a 512 tile: the tiled row is dropped
    assert [(c["model"], c["width"], c["height"], c["tile"], c["dtype"]) for c in small] == [
        ("tiny-x2", 256, 128, 0, "bf16"),
        ("tiny-x4", 256, 128, 0, "bf16"),
    ]
    assert bench_post.parse_size("1080p") == (1088, 1920) and bench_post.parse_size("64x32") == (32, 64)
    with pytest.raises(SystemExit):
        _args("--only", "rife,upscale")


def test_rife_and_sr_records():
    rife = bench_post.run_config(
        dict(section="rife", model="4.7", height=32, width=64, frames=3, batch=4, device="cpu", dtype="fp32", threads=1)
    )
    assert len(rife) == 1
    r = rife[0]
    assert r["section"] == "rife" and r["threads"] == 1 and r["input"] == "64x32" and r["version"] == "4.7-4.9"
    assert r["in_between"] == 2  # x2 of 3 frames, duration not kept: 2 in-between frames made by the model
    assert r["fps"] == pytest.approx(2 / r["seconds"]) and r["s_per_frame"] == pytest.approx(r["seconds"] / 2)
    params = sum(p.numel() for p in IFNet(RIFE_PRESETS["4.7"]).parameters())
    assert r["params_m"] == pytest.approx(params / 1e6) and 5 < r["params_m"] < 6  # the real width (rife47.pth)
    assert MEMORY_KEYS <= r.keys() and r["memory"] == "process peak RSS"
    assert r["peak_mb"] >= r["working_mb"] >= 0

    common = dict(
        section="sr",
        model="tiny-x2",
        height=48,
        width=64,
        overlap=8,
        frames=2,
        batch=2,
        repeats=1,
        device="cpu",
        dtype="fp32",
    )
    whole = bench_post.run_config({**common, "tile": 0})[0]
    tiled = bench_post.run_config({**common, "tile": 32})[0]
    for s in (whole, tiled):
        assert s["output"] == "128x96" and s["fps"] == pytest.approx(2 / s["seconds"]) and MEMORY_KEYS <= s.keys()
    assert (whole["overlap"], tiled["overlap"]) == (0, 8)
    summary = bench_post.ratios([whole, tiled])
    assert summary == pytest.approx(
        {
            "sr tiny-x2 64x48 tile 32/whole fp32 time": tiled["s_per_frame"] / whole["s_per_frame"],
            **(
                {"sr tiny-x2 64x48 tile 32/whole fp32 working memory": tiled["working_mb"] / whole["working_mb"]}
                if tiled["working_mb"] and whole["working_mb"]
                else {}
            ),
        }
    )


def test_ratios_and_markdown_from_records():
    def rife(model, size, seconds):
        return dict(
            section="rife",
            model=model,
            version="v",
            params_m=5.0,
            input=size,
            dtype="fp16",
            in_between=4,
            fps=4 / seconds,
            s_per_frame=seconds / 4,
            peak_mb=100.0,
            working_mb=50.0,
        )

    def sr(tile, seconds, working):
        return dict(
            section="sr",
            model="x2plus",
            params_m=16.7,
            input="960x544",
            output="1920x1088",
            tile=tile,
            overlap=64 if tile else 0,
            dtype="fp16",
            frames=8,
            repeats=3,
            fps=8 / seconds,
            s_per_frame=seconds / 8,
            peak_mb=working + 60,
            working_mb=working,
        )

    formula = [
        {"section": "refiner", **r}
        for r in bench_post.refiner_records(device="cpu", dtype="fp32", grid=None, repeats=None, measure=False)
    ]
    records = [
        rife("4.26", "960x544", 2.0),
        rife("4.26", "1920x1088", 9.0),
        rife("4.7", "960x544", 1.0),
        rife("4.7", "1920x1088", 4.0),
        sr(0, 4.0, 800.0),
        sr(512, 5.0, 200.0),
        *formula,
        dict(section="sr", model="x4v3", input="960x544", tile=512, dtype="bf16", error="CUDA out of memory"),
    ]
    expected = formula_record(*FORMULA_CASES[0], AVDiTConfig.REFINER_GUESS)
    assert bench_post.ratios(records) == pytest.approx(
        {
            "rife 4.26/4.7 time 960x544 fp16": 2.0,
            "rife 4.26 1080p/540p time fp16": 4.5,
            "rife 4.26/4.7 time 1920x1088 fp16": 2.25,
            "rife 4.7 1080p/540p time fp16": 4.0,
            "sr x2plus 960x544 tile 512/whole fp16 time": 1.25,
            "sr x2plus 960x544 tile 512/whole fp16 working memory": 0.25,
            "refiner 1080p x2 formula attention dense/windowed": expected["attention_ratio"],
            "refiner 1080p x2 formula model FLOPs dense/windowed": expected["model_ratio"],
        }
    )
    assert expected["attention_ratio"] > expected["model_ratio"] > 1  # windows help; projections and FFN stay
    text = bench_post.markdown(records, bench_post.ratios(records))
    assert "| 4.26 (v) | 5 M | 1920x1088 | fp16 | 4 | 0.444 | 2.25 | 100 | 50 |" in text
    assert "| x2plus | 16.7 M | 960x544 -> 1920x1088 | 512 / 64 | fp16 | 8 x 3 | 1.6 | 0.625 | 260 | 200 |" in text
    assert "failed: CUDA out of memory" in text and "| rife 4.26 1080p/540p time fp16 | 4.50 |" in text


def test_main_in_process_writes_json(tmp_path, capsys):
    out = tmp_path / "post.json"
    code = bench_post.main(
        [
            "--only",
            "rife",
            "--rife",
            "4.26",
            "--sizes",
            "64x32",
            "--rife-frames",
            "2",
            "--in-process",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert [(r["model"], r["input"], r["in_between"]) for r in data["records"]] == [("4.26", "64x32", 1)]
    assert data["setup"].startswith("device cpu") and "threads 1" in data["setup"]
    assert "| 4.26 (4.25/4.26) |" in capsys.readouterr().out
