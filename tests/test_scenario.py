"""Resolving a playbook: FX conversion of the design, local overrides, baseline, input hashes,
and every error of every file reported together."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from simulator.errors import InputErrors
from simulator.scenario import fx_rate, resolve, validate_paths
from simulator.specs import load_program

ROOT = Path(__file__).resolve().parents[1]
US_PLAYBOOK = ROOT / "markets/usa/points_tiers_launch.yaml"
FR_PLAYBOOK = ROOT / "markets/france/points_tiers_launch.yaml"
DESIGN = ROOT / "programs/points_tiers.yaml"
CAGNOTTE = ROOT / "programs/cagnotte.yaml"
US_MARKET = ROOT / "markets/usa/market.yaml"

RATE = 1 / 0.92  # USD per EUR: the USA market reports in EUR at 0.92 EUR per USD


def _playbook(tmp_path: Path, extra: str = "", name: str = "pb.yaml", design: Path = DESIGN,
              market: Path = US_MARKET, baseline: str = "none") -> Path:
    path = tmp_path / name
    path.write_text(f"name: tmp_pb\ndesign: {design}\nmarket: {market}\nbaseline: {baseline}\n"
                    f"launch: 2027-05-01\nhorizon_months: 12\n{extra}", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def us():
    return resolve(US_PLAYBOOK)


# ------------------------------------------------------------------ FX conversion
def test_fx_rate_of_a_eur_design_on_the_usd_market(us):
    assert us.market.currency == "USD" and us.market.reporting_currency == "EUR"
    assert fx_rate(load_program(DESIGN), us.market) == pytest.approx(RATE)
    assert us.fx_design_to_local == pytest.approx(RATE)
    assert us.program.currency == "USD"


def test_money_is_converted_points_stay_points(tmp_path):
    """Without overrides: every money field x 1/0.92, points per unit / (1/0.92), points unchanged."""
    design = load_program(DESIGN)
    local = resolve(_playbook(tmp_path)).program
    assert local.currency == "USD"
    # money
    assert local.costs.running_per_year == pytest.approx(design.costs.running_per_year * RATE)
    assert local.costs.setup.amount == pytest.approx(design.costs.setup.amount * RATE)
    assert local.costs.per_member_per_year == pytest.approx(design.costs.per_member_per_year * RATE)
    assert local.earn.minimum_order == pytest.approx(design.earn.minimum_order * RATE)
    for lr, dr in zip(local.rewards.catalogue, design.rewards.catalogue):
        assert lr.face_value == pytest.approx(dr.face_value * RATE)
        assert lr.cost == pytest.approx(dr.cost * RATE)
        assert lr.points_price == dr.points_price  # points
    gold_local, gold = local.tiers.levels[2].benefits[0], design.tiers.levels[2].benefits[0]
    assert gold_local.cost_per_use == pytest.approx(gold.cost_per_use * RATE)
    assert gold_local.uses_per_purchase == gold.uses_per_purchase  # not money
    # rates per currency unit
    assert local.earn.points_per_unit == pytest.approx(design.earn.points_per_unit / RATE)
    assert local.earn.qualifying.points_per_unit == pytest.approx(design.earn.qualifying.points_per_unit / RATE)
    # points and qualifying-points thresholds
    assert local.earn.bonuses == design.earn.bonuses
    assert local.earn.caps == design.earn.caps
    assert [t.threshold for t in local.tiers.levels] == [t.threshold for t in design.tiers.levels]
    assert local.earn.pending_days == design.earn.pending_days


def test_spend_thresholds_are_money(tmp_path):
    text = DESIGN.read_text(encoding="utf-8").replace("metric: qualifying_points", "metric: spend")
    (tmp_path / "spend.yaml").write_text(text, encoding="utf-8")
    local = resolve(_playbook(tmp_path, design=tmp_path / "spend.yaml")).program
    design = load_program(tmp_path / "spend.yaml")
    assert [t.threshold for t in local.tiers.levels] == pytest.approx([t.threshold * RATE for t in design.tiers.levels])


def test_overrides_apply_after_conversion(us):
    """The shipped US playbook sets local values in dollars; they are taken as given."""
    design = load_program(DESIGN)
    p = us.program
    assert p.earn.points_per_unit == 1  # not 1 x 0.92
    assert p.earn.minimum_order == 5  # not 5 / 0.92
    assert {t.name: t.threshold for t in p.tiers.levels} == {"member": 0, "silver": 750, "gold": 2250}
    by_name = {r.name: r for r in p.rewards.catalogue}
    assert (by_name["voucher_5"].face_value, by_name["voucher_5"].cost) == (5, 5)
    assert (by_name["voucher_15"].face_value, by_name["voucher_15"].points_price) == (15, 1300)
    # what the playbook does not override is converted
    dinner = next(r for r in design.rewards.catalogue if r.name == "chef_dinner")
    assert by_name["chef_dinner"].face_value == pytest.approx(dinner.face_value * RATE)
    assert by_name["chef_dinner"].points_price == dinner.points_price
    assert p.costs.running_per_year == pytest.approx(design.costs.running_per_year * RATE)
    assert p.earn.qualifying.points_per_unit == pytest.approx(design.earn.qualifying.points_per_unit / RATE)


def test_local_rewards_and_override_validation(tmp_path):
    extra = ("overrides:\n  local_rewards:\n    - {name: bbq, points_price: 900, face_value: 12, cost: 7}\n"
             "  tier_thresholds: {silver: 3000}\n")
    with pytest.raises(InputErrors) as info:
        resolve(_playbook(tmp_path, extra))
    (e,) = info.value.errors
    assert e.field == "overrides" and e.line == 7
    assert "thresholds must ascend: 1800 is not above silver's 3000" in e.message and "expected" in e.message
    ok = resolve(_playbook(tmp_path, extra.replace("3000", "900")))
    assert ok.program.rewards.catalogue[-1].name == "bbq"
    assert ok.program.rewards.catalogue[-1].face_value == 12  # local money, not converted


def test_same_currency_is_not_converted():
    fr = resolve(FR_PLAYBOOK)
    assert fr.fx_design_to_local == 1.0
    design = load_program(DESIGN)
    assert fr.program.costs == design.costs
    assert fr.program.rewards == design.rewards


# ------------------------------------------------------------------ baseline
def test_baseline_none(us):
    assert us.baseline is None
    assert "baseline" not in us.paths


def test_baseline_design_path_is_converted_too():
    fr = resolve(FR_PLAYBOOK)
    assert fr.baseline is not None and fr.baseline.name == "cagnotte"
    assert fr.baseline == load_program(CAGNOTTE)  # same currency: unchanged
    assert fr.paths["baseline"] == str(CAGNOTTE)  # named relative to how the playbook was named, normalised


def test_baseline_override_like_the_cli(monkeypatch):
    """--baseline on the command line: 'none', or a design path relative to the current directory."""
    monkeypatch.chdir(ROOT)
    fr = resolve("markets/france/points_tiers_launch.yaml", baseline="none")
    assert fr.baseline is None
    us = resolve("markets/usa/points_tiers_launch.yaml", baseline="programs/cagnotte.yaml")
    assert us.baseline is not None and us.baseline.currency == "USD"
    cag = load_program(CAGNOTTE)
    assert us.baseline.rewards.cashback.voucher_value == pytest.approx(cag.rewards.cashback.voucher_value * RATE)
    assert us.paths["baseline"] == "programs/cagnotte.yaml"
    assert "programs/cagnotte.yaml" in us.inputs
    # the override is not subject to the playbook's own overrides
    assert us.baseline.earn.points_per_unit == pytest.approx(cag.earn.points_per_unit / RATE)


def test_baseline_override_missing_file(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(InputErrors) as info:
        resolve("markets/usa/points_tiers_launch.yaml", baseline="programs/nope.yaml")
    (e,) = info.value.errors
    assert e.path == "programs/nope.yaml" and "baseline design file not found" in e.message


# ------------------------------------------------------------------ inputs
def test_inputs_are_sha256_of_the_files(monkeypatch):
    monkeypatch.chdir(ROOT)
    sc = resolve("markets/france/points_tiers_launch.yaml")
    assert set(sc.inputs) == {"markets/france/points_tiers_launch.yaml", "programs/points_tiers.yaml",
                              "markets/france/market.yaml", "programs/cagnotte.yaml"}
    assert sc.paths == {"playbook": "markets/france/points_tiers_launch.yaml", "design": "programs/points_tiers.yaml",
                        "market": "markets/france/market.yaml", "baseline": "programs/cagnotte.yaml"}
    for path, digest in sc.inputs.items():
        assert digest == hashlib.sha256((ROOT / path).read_bytes()).hexdigest()
        assert len(digest) == 64


def test_inputs_change_with_one_byte(tmp_path):
    a = resolve(_playbook(tmp_path, name="a.yaml"))
    b = resolve(_playbook(tmp_path, extra="# one more comment\n", name="b.yaml"))
    assert a.inputs[str(tmp_path / "a.yaml")] != b.inputs[str(tmp_path / "b.yaml")]
    assert a.inputs[str(DESIGN)] == b.inputs[str(DESIGN)]


# ------------------------------------------------------------------ errors together
def _broken_files(tmp_path: Path) -> tuple[Path, Path]:
    design = tmp_path / "design.yaml"
    design.write_text(DESIGN.read_text(encoding="utf-8").replace("  points_per_unit: 1\n", "  points_per_unt: 1\n", 1),
                      encoding="utf-8")
    market = tmp_path / "market.yaml"
    market.write_text(US_MARKET.read_text(encoding="utf-8").replace("share: 0.05", "share: 0.5", 1), encoding="utf-8")
    return design, market


def test_errors_in_several_files_are_reported_together(tmp_path):
    design, market = _broken_files(tmp_path)
    baseline = tmp_path / "base.yaml"
    baseline.write_text(CAGNOTTE.read_text(encoding="utf-8").replace("voucher_value: 10", "voucher_value: -10"),
                        encoding="utf-8")
    pb = _playbook(tmp_path, design=design, market=market, baseline=str(baseline))
    with pytest.raises(InputErrors) as info:
        resolve(pb)
    errs = info.value.errors
    by_file = {e.path: e for e in errs}
    assert set(by_file) == {str(design), str(market), str(baseline)}
    assert "did you mean 'points_per_unit'" in by_file[str(design)].message
    assert "segment shares sum to 1.45" in by_file[str(market)].message
    assert by_file[str(baseline)].field == "rewards.cashback.voucher_value"
    assert validate_paths([pb]) == errs


def test_playbook_errors_and_named_files_errors_together(tmp_path):
    design, market = _broken_files(tmp_path)
    pb = _playbook(tmp_path, extra="campaigns:\n  - {name: c, kind: bonus_points, start: 2027-06-01, bonus_points: 0}\n",
                   design=design, market=market)
    errs = validate_paths([pb])
    assert {e.path for e in errs} == {str(pb), str(design), str(market)}
    assert any(e.field == "campaigns.0.bonus_points" and e.line == 8 for e in errs)


def test_cross_file_errors_are_all_listed(tmp_path):
    extra = ("enrolment_drives:\n  - {name: d, start: 2027-05-01, uplift: 1, channel: fax}\n"
             "campaigns:\n  - {name: c, kind: bonus_points, start: 2027-06-01, bonus_points: 5,\n"
             "     target: {segments: [loyl], tiers: [platinum]}}\n"
             "overrides:\n  tier_thresholds: {silvr: 1}\n  rewards: {voucher_50: {cost: 1}}\n  fee: 5\n")
    with pytest.raises(InputErrors) as info:
        resolve(_playbook(tmp_path, extra))
    got = {(e.line, e.field) for e in info.value.errors}
    assert got == {(8, "enrolment_drives.0.channel"), (11, "campaigns.0.target.segments.0"),
                   (11, "campaigns.0.target.tiers.0"), (13, "overrides.tier_thresholds.silvr"),
                   (14, "overrides.rewards.voucher_50"), (15, "overrides.fee")}
    assert all("expected" in e.message for e in info.value.errors)


def test_design_checked_against_market(tmp_path):
    text = DESIGN.read_text(encoding="utf-8").replace("enrolment:\n  mode: opt_in\n",
                                                      "enrolment:\n  mode: opt_in\n  eligibility: {segments: [champs]}\n")
    (tmp_path / "d.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InputErrors) as info:
        resolve(_playbook(tmp_path, design=tmp_path / "d.yaml"))
    (e,) = info.value.errors
    assert e.path == str(tmp_path / "d.yaml") and e.field == "enrolment.eligibility.segments.0"
    assert "unknown segment 'champs'" in e.message and "did you mean 'champions'" in e.message


# ------------------------------------------------------------------ portable targets and warnings
FIXTURE_MARKET = ROOT / "tests/specs/fixtures/market.yaml"


def _market(tmp_path: Path, customers: int = 1000, extra: str = "", name: str = "market.yaml") -> Path:
    text = FIXTURE_MARKET.read_text(encoding="utf-8").replace("customers: 1000", f"customers: {customers}")
    path = tmp_path / name
    path.write_text(text + extra, encoding="utf-8")
    return path


def test_groups_take_the_segments_of_their_stage_and_band():
    from simulator.scenario import target_segments
    from simulator.specs import load_market
    from simulator.specs.playbook import Target

    fr = load_market(ROOT / "markets/france/market.yaml")
    assert target_segments(Target(lifecycle=("at_risk",)), fr) == ("at_risk",)
    assert target_segments(Target(lifecycle=("lapsed",)), fr) == ("lapsed",)          # from the lapsed flag
    assert target_segments(Target(value=("high",)), fr) == ("champions", "loyal", "regular")
    assert target_segments(Target(value=("low",), lifecycle=("at_risk", "lapsed")), fr) == ("at_risk", "lapsed")
    assert target_segments(Target(segments=("loyal", "lapsed"), value=("high",)), fr) == ("loyal",)  # AND
    assert target_segments(Target(potential=("high",)), fr) is None                   # no segment condition


def test_validate_warns_about_a_launch_long_after_the_log(tmp_path):
    calibration = "calibration: {source: log.csv, log_start: 2025-01-01, log_end: 2026-04-30, log_customers: 1000}\n"
    market = _market(tmp_path, 10_000_000, extra=calibration)
    # launch 2027-05-01: 13 months after the log's end -> a warning; 2027-04-01 (12 months) -> none
    late = _playbook(tmp_path, market=market, name="late.yaml")
    on_time = _playbook(tmp_path, market=market, name="on_time.yaml")
    on_time.write_text(on_time.read_text().replace("launch: 2027-05-01", "launch: 2027-04-01"))
    warnings: list = []
    assert validate_paths([late, on_time], warnings) == []
    assert [(w.path, w.field) for w in warnings] == [(str(late), "launch")]
    assert warnings[0].line == 5 and "13 months after the end of the log" in warnings[0].message
    assert "2026-04-30" in warnings[0].message and "expected" in warnings[0].message


def test_warns_when_the_base_is_tiny_for_the_fixed_costs(tmp_path):
    from simulator.scenario import FIXED_COST_SHARE, fixed_costs_per_year

    # the fixture market: 1000 customers x (0.4 x 2 x 50 + 0.6 x 0.5 x 30) x 12 x 0.3 margin = 176,400 a year
    small, big = _market(tmp_path, 1000, name="small.yaml"), _market(tmp_path, 10_000_000, name="big.yaml")
    costs = "costs: {running_per_year: 20000}\n"
    sc_small = resolve(_playbook(tmp_path, costs, market=small, name="a.yaml"))
    sc_big = resolve(_playbook(tmp_path, costs, market=big, name="b.yaml"))
    assert sc_small.market.annual_gross_margin() == pytest.approx(176_400)
    fixed = fixed_costs_per_year(sc_small.program, sc_small.playbook)
    assert fixed > FIXED_COST_SHARE * 176_400
    (w,) = [w for w in sc_small.warnings if w.field == "customers"]
    assert w.path == str(small) and w.line == 6 and "tiny for the costs" in w.message and "--customers" in w.message
    assert not sc_big.warnings


def test_warns_when_a_target_takes_no_segment_of_the_market(tmp_path):
    pb = _playbook(tmp_path, "enrolment_drives:\n  - {name: welcome, start: 2027-06-01, uplift: 0.5, "
                             "target: {lifecycle: [new]}}\n", market=_market(tmp_path, 10_000_000))
    warnings: list = []
    assert validate_paths([pb], warnings) == []
    (w,) = warnings
    assert w.field == "enrolment_drives.0.target" and "takes no segment of market mini_market" in w.message
    assert "lifecycle new (the market's: active)" in w.message


def test_validate_prints_warnings_and_exits_0(tmp_path):
    from typer.testing import CliRunner

    from simulator.cli import app

    pb = _playbook(tmp_path, "costs: {running_per_year: 20000}\n", market=_market(tmp_path))
    res = CliRunner().invoke(app, ["validate", str(pb)])
    assert res.exit_code == 0 and res.stdout.startswith("OK")
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {tmp_path / 'market.yaml'}:6: customers: ")


def test_run_prints_the_warnings_and_runs(tmp_path):
    from typer.testing import CliRunner

    from simulator.cli import app

    pb = _playbook(tmp_path, "costs: {running_per_year: 20000}\n", market=_market(tmp_path))
    res = CliRunner().invoke(app, ["run", "--playbook", str(pb), "--agents", "100", "--workers", "1",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.stderr
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")] == [
        ln for ln in res.stderr.splitlines() if "tiny for the costs" in ln]
    assert "tiny for the costs" in res.stderr and (tmp_path / "run" / "summary.json").exists()
