"""The verdict: one line per market and baseline, rankings only within a (market, baseline)
group, the group plan keeping what runs today where no design pays, short money.

The study is the one test_report.py builds (fr_points_tiers against the running cagnotte,
fr_premium_club and us_points_tiers against no program, 3 replications), copied with chosen
per-replication NPVs so that the wording can be checked to the character."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from simulator.reporting import study as S
from simulator.reporting.html import render
from tests.reporting.test_report import _rows, _section, shared_study

#: per-replication NPV in the run's currency (us_points_tiers in USD, 0.92 EUR per USD)
WIN = {
    "fr_points_tiers": [1.0e6, 1.7e6, 2.3e6],      # pays against the running cagnotte
    "fr_premium_club": [-1.2e6, -0.95e6, -0.4e6],  # loses against no program
    "us_points_tiers": [-1.5e6, -1.0e6, 0.2e6],    # loses against no program: P50 -920k EUR
}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return shared_study(tmp_path_factory)


def with_npvs(study_dir: Path, dest: Path, npvs: dict[str, list[float]]) -> S.Study:
    """A copy of the study whose runs have these per-replication NPVs (and the matching P(NPV<0))."""
    shutil.copytree(study_dir, dest)
    for sid, values in npvs.items():
        path = dest / "scenarios" / sid / "summary.json"
        summary = json.loads(path.read_text(encoding="utf-8"))
        for rep, v in zip(summary["per_replication"], values, strict=True):
            rep["npv"] = v
        summary["probability_npv_negative"] = float(np.mean(np.array(values) < 0))
        path.write_text(json.dumps(summary), encoding="utf-8")
    return S.load_study(dest)


@pytest.fixture(scope="module")
def won(study_dir, tmp_path_factory):
    return with_npvs(study_dir, tmp_path_factory.mktemp("verdict") / "won", WIN)


def test_verdict_for_a_winning_and_a_losing_market(won):
    lines = S.verdict_lines(won)
    assert lines[:3] == [
        "France: points tiers beats the running cagnotte by EUR 1.7M NPV (P10 1.0M, P90 2.3M), probability of a loss 0%",
        "France: no design pays: keep no program (best: premium club, NPV P50 -EUR 950k, probability of a loss 100%)",
        "USA: no design pays: keep no program (best: points tiers, NPV P50 -EUR 920k, probability of a loss 67%)",
    ]
    assert lines[3] == ("Group plan (France: points tiers; USA: no program): EUR 1.7M NPV (P10 1.0M, P90 2.3M), "
                        "probability of a loss 0%")
    assert lines[4:] == ["France against no program is not in the group plan, which takes its verdict against the "
                         "running cagnotte."]
    for line in lines:  # money in k/M, never a long run of digits
        assert not re.search(r"\d{4}|\d,\d", line), line


def test_report_opens_with_the_verdict(won):
    text = render(won)
    assert text.index("</header>") < text.index('<section id="verdict">') < text.index("<nav>") < text.index('<section id="ranking">')
    items = [html.unescape(re.sub(r"<[^>]+>", "", li)) for li in re.findall(r"<li>(.*?)</li>", _section(text, "verdict"))]
    assert items == S.verdict_lines(won)


def test_terminal_prints_the_verdict_then_one_table_per_group(won, monkeypatch, capsys):
    import contextlib
    from types import SimpleNamespace

    import simulator.study
    from simulator import cli

    monkeypatch.setattr(simulator.study, "run_study", lambda *a, **k: {"scenarios": []})
    monkeypatch.setattr(cli, "_executor", lambda *a: contextlib.nullcontext())
    cli._run_and_print(SimpleNamespace(name="s", replications=3), [], won.path, force=False, workers=None,
                       scheduler=None, source=None)
    out = capsys.readouterr().out
    verdict = S.verdict_lines(won)
    assert all(line in out for line in verdict)
    heads = ["France, against the running cagnotte (EUR)", "France, against no program (EUR)", "USA, against no program (EUR)"]
    positions = [out.index(h) for h in heads]
    assert positions == sorted(positions) and out.index(verdict[-1]) < positions[0]
    blocks = out.split("\n\n")
    for head in heads:
        block = next(b for b in blocks if b.startswith(head)).splitlines()
        assert len(block) == 3 and block[2].split()[0] == "1"  # one scenario, ranked 1 in its own group
    assert "1    fr_points_tiers" in out and "1.7M" in out and not re.search(r"\d{4}", out.split(heads[0])[1])


def test_no_ranking_mixes_baselines(won):
    groups = S.baseline_groups(won)
    assert [(g.market, g.baseline) for g in groups] == [("france", "cagnotte"), ("france", "none"), ("usa", "none")]
    for g in groups:
        assert {(s.market, s.baseline) for s in g.runs} == {(g.market, g.baseline)}
        assert [r.rank for r in g.ranking] == list(range(1, len(g.ranking) + 1))
    ranking = _section(render(won), "ranking")
    tables = [t for t in re.findall(r"<table>.*?</table>", ranking, flags=re.S) if "Rank" in _rows(t)[0]]
    assert len(tables) == len(groups)
    for t, g in zip(tables, groups):
        rows = _rows(t)[1:]
        assert [r[1].split()[0] for r in rows] == [s.id for s in g.runs]
        assert [r[0] for r in rows] == ["1"] * len(rows)
        assert all(f"vs {g.baseline} (" in r[1] for r in rows)
    # every listing of the report follows the groups, not one mixed ranking
    assert [s.id for s in won.ranked_scenarios] == ["fr_points_tiers", "fr_premium_club", "us_points_tiers"]


def test_group_plan_keeps_what_runs_today_and_its_loss_probability_follows(study_dir, tmp_path):
    # France: points + tiers pays against the cagnotte though one replication loses; the premium
    # club pays more, but against no program while the cagnotte runs: not in the plan. USA loses:
    # no program, 0 in every replication (summing it would make 2 of 3 totals negative).
    study = with_npvs(study_dir, tmp_path / "plan", {
        "fr_points_tiers": [-0.2e6, 1.7e6, 2.3e6],
        "fr_premium_club": [5e6, 6e6, 7e6],
        "us_points_tiers": [-3e6, -2.5e6, -2e6],
    })
    plan = S.rollup(study)
    assert [(line.label, line.scenarios, line.keep) for line in plan.markets] == [
        ("france", ("fr_points_tiers",), ""), ("usa", (), "no program")]
    assert np.allclose(plan.markets[1].values["npv"], 0.0)
    assert np.allclose(plan.total.values["npv"], [-0.2e6, 1.7e6, 2.3e6])
    assert plan.total.probability_npv_negative == pytest.approx(1 / 3)
    with_usa = S.rollup(study, ["fr_points_tiers", "us_points_tiers"])
    assert with_usa.total.probability_npv_negative == pytest.approx(2 / 3)
    lines = S.verdict_lines(study)
    assert "France: premium club beats no program by EUR 6.0M NPV (P10 5.0M, P90 7.0M), probability of a loss 0%" in lines
    assert ("Group plan (France: points tiers; USA: no program): EUR 1.7M NPV (P10 -200k, P90 2.3M), "
            "probability of a loss 33%") in lines
    rollup = [r for r in _rows(_section(render(study), "rollup")) if r and r[0] in ("france", "usa", "Total")][:3]
    assert [(r[0], r[1], r[7]) for r in rollup] == [("france", "fr_points_tiers", "33%"), ("usa", "no program", "0%"),
                                                    ("Total", "", "33%")]


def test_when_nothing_pays_the_plan_keeps_everything(study_dir, tmp_path):
    study = with_npvs(study_dir, tmp_path / "none", {"fr_points_tiers": [-2e6, -1e6, 0.5e6],
                                                     "us_points_tiers": [-3e6, -2.5e6, 1e6]})
    plan = S.rollup(study)
    assert [line.keep for line in plan.markets] == ["keep the running cagnotte", "no program"]
    assert plan.total.scenarios == () and plan.total.probability_npv_negative == 0.0
    assert np.allclose(plan.total.values["npv"], np.zeros(3))
    assert S.verdict_lines(study)[0] == ("France: no design pays: keep the running cagnotte (best: points tiers, "
                                         "NPV P50 -EUR 1.0M, probability of a loss 67%)")
    assert ("Group plan (France: keep the running cagnotte; USA: no program): nothing to launch, no change to NPV"
            in S.verdict_lines(study))


@pytest.mark.parametrize("value, text", [
    (None, "n/a"), (0.0, "0"), (-0.3, "0"), (640, "640"), (999.6, "1.0k"), (9_499, "9.5k"), (95_440, "95.4k"),
    (99_960, "100k"), (954_321, "954k"), (999_960, "1.0M"), (1_730_000, "1.7M"), (12_340_000, "12.3M"),
    (123_400_000, "123M"), (1_200_000_000, "1.2B"), (-954_321, "-954k"),
])
def test_short_money(value, text):
    assert S.short_money(value) == text
    if value is not None and text != "0":
        assert S.short_money(value, "INR") == (f"-INR {text[1:]}" if text.startswith("-") else f"INR {text}")


@pytest.mark.parametrize("p, text", [(0.0, "0%"), (0.001, "<1%"), (1 / 3, "33%"), (0.996, ">99%"), (1.0, "100%"),
                                     (None, "n/a")])
def test_probability_in_whole_percent(p, text):
    assert S.chance(p) == text


def test_names_in_words():
    assert S.market_words("usa") == "USA" and S.market_words("france") == "France"
    assert S.market_words("south_africa") == "South Africa"
    assert S.baseline_words("none") == "no program" and S.baseline_words("cagnotte") == "the running cagnotte"
    assert S.in_words("premium_club") == "premium club"
