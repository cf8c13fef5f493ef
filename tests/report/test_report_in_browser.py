"""The report as a person sees it: rendered by headless Chromium (Debian's `chromium`, installed by .ci/run),
every section laid out, every plot decoded, nothing in the browser console."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from qwen_hpc.report.html import render, section_id
from qwen_hpc.report.plots import loss_curve_png, training_curves_png
from tests.browser import chromium_binary, open_page


@pytest.fixture(scope="module")
def require_chromium() -> None:
    if chromium_binary() is None:
        if os.environ.get("QWEN_HPC_REQUIRE_CHROMIUM"):
            pytest.fail("QWEN_HPC_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")


def assert_page_shows_everything(report, expected_sections: list[str]) -> None:  # noqa: ANN001
    """Each expected caption is a visible section; every image decoded to a non-empty bitmap and is drawn;
    the contents links every section; the console is clean."""
    assert report.console == [], report.console
    headings = {s["heading"]: s for s in report.sections}
    for caption in expected_sections:
        assert caption in headings, (caption, sorted(headings))
        assert headings[caption]["visible"] and headings[caption]["height"] > 20, headings[caption]
    assert report.images, "no image on the page"
    for image in report.images:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
        assert image["shown"] > 100, image
    assert report.links == [f"#{s['id']}" for s in report.sections]


def test_a_rendered_report_shows_every_section(require_chromium, tmp_path: Path) -> None:
    records = [{"step": s, "loss": 5.0 - s / 50, "lr": 1e-3, "tokens_per_s": 1000.0 + s} for s in range(1, 101)]
    plots = {
        "pretraining loss": loss_curve_png([(r["step"], r["loss"]) for r in records], [(50, 4.0), (100, 3.1)],
                                           smoothing=10, title="loss"),
        "pretrain: training curves": training_curves_png(records, smoothing=10,
                                                                                title="pretrain"),
    }
    tables = {"benchmarks: ours next to the paper's Table 2": (["benchmark", "ours (%)", "paper (%)"],
                                                               [["MMLU", 25.0, 56.7], ["GSM8K", None, 51.7]])}
    stages = [{"stage": "pretrain", "status": "completed", "wall_s": 12.5, "metrics": {"loss": 3.1}}]
    page = tmp_path / "index.html"
    page.write_text(render("tiny <report>", stages, plots, tables))
    report = open_page(page)
    assert report.title == "tiny <report>"
    assert_page_shows_everything(report, [*plots, *tables, "Stages"])
    assert [s["id"] for s in report.sections] == [section_id(c) for c in [*plots, *tables, "Stages"]]


def test_the_check_sees_a_broken_plot(require_chromium, tmp_path: Path) -> None:
    """The browser check is not vacuous: a plot whose bytes are not a PNG decodes to nothing."""
    good = loss_curve_png([(1, 2.0), (2, 1.5)], [], smoothing=1, title="ok")
    broken = base64.b64decode(base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64))
    page = tmp_path / "index.html"
    page.write_text(render("broken", [], {"good": good, "broken": broken}))
    report = open_page(page)
    widths = {image["alt"]: image["width"] for image in report.images}
    assert widths["good"] > 100 and widths["broken"] == 0, widths
    # and a page that throws is heard in the console
    noisy = tmp_path / "noisy.html"
    noisy.write_text("<!doctype html><html><body><script>console.error('lost'); undefined_name();</script></body></html>")
    console = open_page(noisy).console
    assert any("lost" in line for line in console) and any("undefined_name" in line for line in console), console
