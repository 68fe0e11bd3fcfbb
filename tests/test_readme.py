# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The README quotes code output; keep it in step with the code."""

from __future__ import annotations

from pathlib import Path

from autoenc.models.table import variants_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_variants_table_is_the_code_output() -> None:
    assert variants_table() in README.read_text(encoding="utf-8")


def test_readme_shows_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


def test_readme_comparison_block_is_the_committed_report() -> None:
    """The README's comparison block is exactly what `make compare` renders from its report."""
    from autoenc.evaluation.compare import readme_block

    report = README.parent / "reports" / "compare"
    text = README.read_text(encoding="utf-8")
    assert (report / "bd.json").is_file(), "run `make compare` and commit reports/compare"
    block = readme_block(report, README, "autoenc compare configs/compare/cpu.yaml")
    assert block in text
    assert (report / "rd.png").is_file() and (report / "report.md").is_file()


def test_readme_synthetic_statistics_are_the_committed_measurement() -> None:
    """The README's speckle table is what benchmarks/synth_stats.py measured and committed."""
    import json

    from autoenc.data.speckle_stats import markdown_table

    record = json.loads(
        (README.parent / "benchmarks" / "results" / "synth-stats.json").read_text("utf-8")
    )
    assert markdown_table(record) in README.read_text(encoding="utf-8")
    assert all(p["ok"] for p in record["products"].values())


def test_readme_codec_block_is_the_shipped_card() -> None:
    """The README's default-codec table is what `autoenc export` rendered into the card."""
    import json

    from autoenc.pretrained import default_path
    from autoenc.pretrained.card import readme_block

    card = json.loads(default_path().with_suffix(".json").read_text("utf-8"))
    assert readme_block(card) in README.read_text(encoding="utf-8")
