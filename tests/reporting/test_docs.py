"""Generated documents are current, and README documents every output column."""

from pathlib import Path

from simulator.reporting.model_doc import model_document

ROOT = Path(__file__).resolve().parents[2]


def test_model_doc_is_current():
    assert (ROOT / "docs" / "model.md").read_text(encoding="utf-8") == model_document(), \
        "docs/model.md is stale: run `make docs`"


def test_every_monthly_column_is_documented_in_readme(tmp_path):
    from simulator.runner import simulate
    from simulator.scenario import resolve

    result = simulate(resolve(ROOT / "markets/france/points_tiers_launch.yaml"), agents=300, seed=1, replications=1)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [c for c in result.monthly().columns if not c.startswith("members_tier_") and f"`{c}`" not in readme]
    assert not missing, f"README does not document these monthly.csv columns: {missing}"
    assert "`members_tier_<tier>`" in readme
