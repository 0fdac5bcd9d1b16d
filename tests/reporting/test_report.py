"""The study report: one self-contained, deterministic HTML file with every section and
figure; the study loader's ranking and roll-up.

``build_study`` (also used by test_workbook.py) makes a small study directory: three
playbooks (two markets, two currencies) at 1,000 agents x 3 replications, run with
``simulator.runner.simulate`` + ``write_run``, and a ``study.json`` with a fake tornado."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from simulator.reporting import study as S
from simulator.reporting.html import SECTIONS, render, write_report

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOKS = {
    "fr_points_tiers": "markets/france/points_tiers_launch.yaml",
    "fr_premium_club": "markets/france/premium_club_pilot.yaml",
    "us_points_tiers": "markets/usa/points_tiers_launch.yaml",
}
AGENTS, REPLICATIONS, SEED = 1000, 3, 7
NAME = "Group study <R&D> \"test\""

_CACHE: dict[str, Path] = {}


def write_study_json(study_dir: Path, run_dirs: dict[str, Path], *, ranking: list | None = None,
                     tornado: bool = True) -> Path:
    """study.json for runs already written (scenario id -> run directory)."""
    scenarios, bars, breakeven = [], {}, {}
    for sid, run in run_dirs.items():
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        market = manifest["resolved"]["market"]
        try:
            rel = str(run.relative_to(study_dir))
        except ValueError:
            rel = str(run)
        scenarios.append({"id": sid, "dir": rel, "playbook": manifest["arguments"]["playbook"],
                          "design": summary["design"], "baseline": summary["baseline"], "market": summary["market"],
                          "currency": summary["currency"], "fx_to_reporting": market["fx_to_reporting"]})
        base = summary["metrics"]["npv"]["p50"]
        bars[sid] = [
            {"parameter": f"{summary['market']}.response.goal_gradient", "low": 0.1, "high": 0.35,
             "npv_low": base - 1.5e6, "npv_high": base + 2.0e6, "npv_base": base},
            {"parameter": f"{summary['market']}.economics.gross_margin", "low": 0.22, "high": 0.32,
             "npv_low": base - 4.0e6, "npv_high": base + 3.5e6, "npv_base": base},
        ]
        breakeven[sid] = [{"parameter": f"{summary['market']}.response.goal_gradient", "value": 0.12,
                           "meaning": "lowest goal-gradient strength at which NPV reaches zero"},
                          {"parameter": "reward cost", "value": None,
                           "meaning": "none: NPV is negative even if the design's rewards cost nothing"}]
    data = {"name": NAME, "description": "Points + tiers against the cagnotte & a premium club, France and USA.",
            "reporting_currency": "EUR", "seed": SEED, "replications": REPLICATIONS, "sensitivity_replications": 2,
            "scenarios": scenarios,
            "uncertain_parameters": [{"name": "france.response.goal_gradient", "distribution": "triangular(0.1, 0.25, 0.35)",
                                      "source": "markets/france/market.yaml:47"}],
            "tornado": bars if tornado else {}, "breakeven": breakeven if tornado else {}}
    if ranking is not None:
        data["ranking"] = ranking
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "study.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return study_dir


def build_study(base: Path) -> Path:
    """Run the playbooks into ``base/study/scenarios/<id>`` and write its study.json."""
    from simulator.runner import simulate, write_run
    from simulator.scenario import resolve

    study_dir = base / "study"
    runs = {}
    for sid, pb in PLAYBOOKS.items():
        result = simulate(resolve(ROOT / pb), agents=AGENTS, seed=SEED, replications=REPLICATIONS)
        runs[sid] = study_dir / "scenarios" / sid
        write_run(result, runs[sid], force=True)
    return write_study_json(study_dir, runs)


def shared_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One study per test process (both test modules share it)."""
    if "study" not in _CACHE:
        _CACHE["study"] = build_study(tmp_path_factory.mktemp("reporting"))
    return _CACHE["study"]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return shared_study(tmp_path_factory)


@pytest.fixture(scope="module")
def report(study_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    write_report(study_dir, out)
    return out


def _section(text: str, sid: str) -> str:
    m = re.search(rf'<section id="{re.escape(sid)}">(.*?)</section>', text, flags=re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


def _rows(fragment: str) -> list[list[str]]:
    """Every table row of an HTML fragment as the text of its cells (tags dropped, unescaped)."""
    return [[html.unescape(re.sub(r"<[^>]+>", " ", c)).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, flags=re.S)]
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", fragment, flags=re.S)]


def _records(fragment: str, header: str) -> list[dict[str, str]]:
    """The rows (header -> cell text) of every table of ``fragment`` with a column ``header``."""
    out = []
    for table in re.findall(r"<table>.*?</table>", fragment, flags=re.S):
        head, *rows = _rows(table)
        if header in head:
            out += [dict(zip(head, r)) for r in rows]
    return out


def _column(fragment: str, header: str) -> list[str]:
    return [r[header] for r in _records(fragment, header)]


# ----------------------------------------------------------------------------- report
def test_report_has_every_section_and_figure(report):
    text = report.read_text(encoding="utf-8")
    for sid, _title in SECTIONS:
        assert f'id="{sid}"' in text, sid
    one_figure = ["cash-flow", "npv", "members-by-tier", "points-liability", "cost-breakdown", "margin-sources"]
    for sid in one_figure:
        assert _section(text, sid).count('<img src="data:image/png;base64,') == 1, sid
    # one migration heatmap and one tornado per scenario
    assert _section(text, "migration").count('<img src="data:image/png;base64,') == len(PLAYBOOKS)
    assert _section(text, "sensitivity").count('<img src="data:image/png;base64,') == len(PLAYBOOKS)
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', text):
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # every figure has a caption
    assert text.count("<figcaption>") == text.count("<img ")
    ranking = _section(text, "ranking")
    for sid in PLAYBOOKS:
        assert sid in ranking
    for word in ("true lift", "self-selection", "P(NPV&lt;0)", "ROI", "Payback", "tier benefits", "rewards"):
        assert word in ranking, word
    # the footer names the version from the manifests, not a time
    assert re.search(r"<footer>Made by loyalty-sim \d+\.\d+", text)
    assert not re.search(r"\b20\d\d-\d\d-\d\d[T ]\d\d:\d\d", text)


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "<link" not in text.lower()
    assert "@import" not in text and "url(" not in text
    assert not re.search(r"https?://", text)
    for src in re.findall(r'\bsrc="([^"]*)"', text):
        assert src.startswith("data:image/png;base64,")
    for href in re.findall(r'\bhref="([^"]*)"', text):
        assert href.startswith("#")


def test_report_is_byte_identical(study_dir, report, tmp_path):
    """Writing the same study again, from a copy elsewhere, gives the same bytes."""
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    again = write_report(copy, tmp_path / "again.html")
    assert again.read_bytes() == report.read_bytes()


def test_report_escapes_text(report):
    text = report.read_text(encoding="utf-8")
    assert "Group study &lt;R&amp;D&gt; &quot;test&quot;" in text
    assert "<R&D>" not in text


def test_figures_leave_no_global_state(study_dir):
    import matplotlib
    import matplotlib.pyplot as plt

    from simulator.reporting import figures as F

    study = S.load_study(study_dir)
    before = dict(matplotlib.rcParams)
    with matplotlib.rc_context({"font.size": 17.0}):
        fig = F.npv_distribution(S.npv_samples(study), "EUR")
        png = F.png_bytes(fig)
    # a user's rc settings do not change the figure
    assert png == F.png_bytes(F.npv_distribution(S.npv_samples(study), "EUR"))
    assert dict(matplotlib.rcParams) == before
    assert plt.get_fignums() == []


# ----------------------------------------------------------------------------- study loader
def test_ranking_is_computed_by_npv_p50_in_reporting_currency(study_dir):
    study = S.load_study(study_dir)
    assert study.ranking_source == "computed"
    p50 = {s.id: float(np.percentile([r["npv"] * s.fx_to_reporting for r in s.per_replication], 50, method="nearest"))
           for s in study.scenarios}
    expected = sorted(p50, key=lambda k: -p50[k])
    assert [r.scenario for r in study.ranking] == expected
    assert [r.rank for r in study.ranking] == [1, 2, 3]
    for r in study.ranking:
        assert r.npv_p50 == pytest.approx(p50[r.scenario])


def test_ranking_from_study_json_is_kept(study_dir, tmp_path):
    runs = {sid: (study_dir / "scenarios" / sid).resolve() for sid in PLAYBOOKS}
    order = ["us_points_tiers", "fr_premium_club", "fr_points_tiers"]
    other = write_study_json(tmp_path / "other", runs, ranking=[{"scenario": s} for s in order], tornado=False)
    study = S.load_study(other)
    assert study.ranking_source == "study.json"
    assert [r.scenario for r in study.ranking] == order
    assert study.tornado == {}


def test_rollup_sums_replication_by_replication(study_dir):
    """(The group plan's choice of scenarios is in test_verdict.py.)"""
    study = S.load_study(study_dir)
    r = S.rollup(study, ["fr_points_tiers", "us_points_tiers"])
    assert r.reporting_currency == "EUR"
    assert sorted(line.label for line in r.markets) == ["france", "usa"]
    picked = {line.label: study.scenario(line.scenarios[0]) for line in r.markets}
    expected = np.zeros(REPLICATIONS)
    for s in picked.values():
        expected += np.array([row["npv"] for row in s.per_replication]) * s.fx_to_reporting
    assert np.allclose(r.total.values["npv"], expected)
    assert r.total.stat("npv")["p50"] == pytest.approx(float(np.percentile(expected, 50, method="nearest")))
    assert r.total.probability_npv_negative == pytest.approx(float((expected < 0).mean()))
    usd = next(line for line in r.markets if line.label == "usa")
    assert usd.currency == "USD" and usd.fx_to_reporting == pytest.approx(0.92)


def test_payback_never_counts_as_later_than_any_month():
    # the one rule: the replication nearest the rank (n - 1) q / 100, so months stay whole
    q = S.quantiles([3, 5, None, None, None], none_is_inf=True)
    assert q["p10"] == 3 and q["p50"] is None and q["p90"] is None
    assert S.quantiles([3, 5, 9, 12, None], none_is_inf=True)["p50"] == 9
    assert S.quantiles([3, 5, None], none_is_inf=False)["p50"] in (3, 5)


def test_missing_study_json_is_an_input_error(tmp_path):
    from simulator.errors import InputErrors

    with pytest.raises(InputErrors, match="study.json"):
        S.load_study(tmp_path)


# ----------------------------------------------------------------------------- finance-grade figures
def test_report_states_the_discount_rate_and_npv_at_other_rates(study_dir, report):
    study = S.load_study(study_dir)
    ranking = _section(report.read_text(encoding="utf-8"), "ranking")
    rates = {r["Scenario"]: r["Discount rate"] for r in _records(ranking, "Discount rate")}
    assert sorted(rates) == sorted(PLAYBOOKS)
    for s in study.scenarios:
        rate = s.stat("discount_rate")
        assert rate["p50"] is not None
        assert f"{s.market} {100 * rate['p50']:.1f}%" in html.unescape(ranking), s.market
        assert rates[s.id].startswith(f"{100 * rate['p50']:.1f}%")
        assert ("drawn from a range" in rates[s.id]) == (rate["p10"] != rate["p90"])
    for header, metric in (("NPV P50 at rate -2 pt (EUR)", "npv_rate_minus_2pt"), ("NPV P50 at rate +2 pt (EUR)", "npv_rate_plus_2pt")):
        cells = _column(ranking, header)
        assert cells == [S.short_money(s.stat(metric)["p50"] * s.fx_to_reporting) for s in study.ranked_scenarios], header


def test_report_shows_the_obligation_left_at_the_horizon(study_dir, report):
    from simulator.reporting import figures as F

    study = S.load_study(study_dir)
    text = report.read_text(encoding="utf-8")
    label = "obligation left at the horizon"
    assert "incremental_horizon_obligation" in dict(S.COST_GROUPS)
    assert all(g in F.COST_COLOURS for _, g in S.COST_GROUPS)
    cost = _column(_section(text, "ranking"), f"{label} (EUR)")
    assert cost == [S.short_money(s.mean("incremental_horizon_obligation", reporting=True))
                    for s in study.ranked_scenarios]
    details = [r for r in _rows(_section(text, "scenarios")) if r and r[0] == label]
    assert len(details) == len(study.scenarios)
    assert label in _section(text, "cost-breakdown")


def test_report_breakeven_is_never_a_negative_multiple(study_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    doc = json.loads((copy / "study.json").read_text(encoding="utf-8"))
    doc["breakeven"]["fr_points_tiers"].append({"parameter": "reward cost (older study)", "value": -0.8512,
                                                "meaning": "highest multiple of the design's reward cost at which NPV is still zero"})
    (copy / "study.json").write_text(json.dumps(doc), encoding="utf-8")
    table = re.search(r'Break-even values</h3>\s*<div class="table-wrap">(<table>.*?</table>)', render(S.load_study(copy)), flags=re.S).group(1)
    rows = {(r[0], r[1]): r[2:] for r in _rows(table)[1:]}
    assert rows[("fr_points_tiers", "reward cost (older study)")] == ["none", "NPV is negative even with this parameter at zero"]
    assert rows[("fr_points_tiers", "reward cost")] == ["none", "NPV is negative even if the design's rewards cost nothing"]
    assert rows[("fr_points_tiers", "france.response.goal_gradient")][0] == "0.12"
    for value, _meaning in rows.values():
        assert value == "none" or re.fullmatch(r"\d+\.\d\d", value), value


def test_report_payback_is_in_whole_months(study_dir, report, tmp_path):
    pattern = re.compile(r"month \d+|never")
    text = report.read_text(encoding="utf-8")
    cells = _column(_section(text, "ranking"), "Payback P50")
    cells += [c for r in _rows(_section(text, "scenarios")) if r and r[0] == "Payback month" for c in r[1:4]]
    assert len(cells) == 4 * len(PLAYBOOKS)
    assert all(pattern.fullmatch(c) for c in cells), cells
    # a run whose paybacks are fractions (an older percentile rule) still reads in whole months,
    # and a market that draws its discount rate says so
    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    path = copy / "scenarios" / "fr_points_tiers" / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    for rep, month, rate in zip(summary["per_replication"], (12.5, 30.5, 40.2), (0.07, 0.08, 0.095)):
        rep["payback_month"], rep["discount_rate"] = month, rate
    path.write_text(json.dumps(summary), encoding="utf-8")
    text = render(S.load_study(copy))
    row = next(r for r in _rows(_section(text, "scenarios")) if r and r[0] == "Payback month")
    assert row[1:4] == ["month 13", "month 31", "month 41"]
    assert "payback month 31 (P50)" in text
    assert "8.0% (P50; drawn from a range, P10 7.0% to P90 9.5%)" in html.unescape(_section(text, "ranking"))


def test_report_labels_the_tornado_base(study_dir, report):
    study = S.load_study(study_dir)
    sens = _section(report.read_text(encoding="utf-8"), "sensitivity")
    captions = [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", sens, flags=re.S)]
    assert len(captions) == len(PLAYBOOKS)
    for s, cap in zip(study.ranked_scenarios, captions):
        base = S.short_money(study.tornado_in_reporting(s.id)[0].npv_base, "EUR")
        assert (f"The solid line is the base: NPV with every uncertain parameter at its central value, mean of 2 "
                f"replications with the study's seeds (seed {SEED}), {base}.") in cap
        assert f"headline NPV P50 ({S.short_money(s.stat('npv', reporting=True)['p50'], 'EUR')}, dashed line)" in cap
    assert _column(sens, "Base: all central (EUR)") and "NPV at base" not in sens


# ----------------------------------------------------------------------------- what each user sees first
#: a long figure: 4+ digits in a row, a thousands separator or 3+ decimals
LONG_FIGURE = re.compile(r"\d{4}|\d,\d|\.\d{3}")


def test_every_table_scrolls_inside_its_own_box(report):
    """A table wider than the page scrolls (or wraps) inside its box; the page never scrolls sideways
    (the browser check is in test_browser.py)."""
    text = report.read_text(encoding="utf-8")
    assert re.search(r"\.table-wrap\{[^}]*overflow-x:auto", text)
    assert text.count("<table>") == text.count('<div class="table-wrap"><table>') > 20
    assert text.count("</table></div>") == text.count("<table>")


def test_ranking_reads_as_short_sentences(study_dir, report):
    """Each group's table is followed by one short reason per scenario, two sentences without a
    long figure; the paragraphs of figures are in a closed <details>; the ranking and roll-up
    tables show money in k/M."""
    study = S.load_study(study_dir)
    ranking = _section(report.read_text(encoding="utf-8"), "ranking")
    up_front, details = ranking.split("<details>")
    lists = re.findall(r"</table></div>\s*<ul class=reasons>(.*?)</ul>", up_front, flags=re.S)
    assert len(lists) == len(S.baseline_groups(study))
    for items, g in zip(lists, S.baseline_groups(study)):
        reasons = [html.unescape(re.sub(r"<[^>]+>", "", li)) for li in re.findall(r"<li>(.*?)</li>", items)]
        assert [r.split(":")[0] for r in reasons] == [s.id for s in g.runs]
        for r in reasons:
            assert len(re.findall(r"\.(?:\s|$)", r)) == 2 and len(r) < 320, r
            assert "Extra gross margin of EUR" in r and "true lift" in r, r
            assert not LONG_FIGURE.search(r), r
    long = re.findall(r"<li>(.*?)</li>", details.split("</details>")[0], flags=re.S)
    assert details.startswith("<summary>Reasons in figures") and len(long) == len(study.scenarios)
    assert "<ol class=reasons>" not in up_front
    text = report.read_text(encoding="utf-8")
    for sid in ("ranking", "rollup"):
        cells = [v for r in _records(_section(text, sid).split("<details>")[0], "Scenario") for k, v in r.items()
                 if k != "Scenario" and not k.startswith("FX")]  # an FX rate may be 0.011
        assert len(cells) > 50 and not [c for c in cells if LONG_FIGURE.search(c)], sid


def test_short_reason_when_the_design_saves_cost(study_dir, tmp_path):
    """A design cheaper than its baseline says so instead of "covers the extra cost"."""
    from simulator.reporting.html import reason

    copy = tmp_path / "copy"
    shutil.copytree(study_dir, copy)
    path = copy / "scenarios" / "fr_points_tiers" / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    for rep in summary["per_replication"]:
        rep["incremental_program_cost"], rep["incremental_gross_margin"] = -250_000.0, 1_234_567.0
        rep["member_naive_uplift_revenue"] = 0.0
    path.write_text(json.dumps(summary), encoding="utf-8")
    study = S.load_study(copy)
    assert html.unescape(reason(study, study.scenario("fr_points_tiers"))) == (
        "Extra gross margin of EUR 1.2M, and the design costs EUR 250k less to run than the baseline. "
        "Members spend no more than non-members.")


def _text_boxes(fig) -> list:  # noqa: ANN001
    """(text, window extent) of the tornado's value labels and parameter names, as drawn."""
    from simulator.reporting import figures as F

    F.png_bytes(fig)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = list(ax.texts) + [t for t in ax.get_yticklabels() if t.get_text()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts]


def test_tornado_labels_never_overlap(study_dir):
    """Parameter names and value labels never overlap, also with both NPVs on one side of the base,
    swings too small to see, long names and many bars; names are wrapped; every label is inside the figure."""
    import itertools

    import pandas as pd

    from simulator.reporting import figures as F

    shapes = [(-3e6, 2e6), (1e5, 2e5), (-10.0, 10.0), (-2e5, -1e5)]  # around the base; same side; tiny; same side
    names = ["x", "india.response.an_extremely_long_parameter_name_indeed", "usa.economics.gross_margin",
             "reward cost multiple of the design"]
    bars = pd.DataFrame([{"parameter": f"{names[i % 4]}{i}", "low": 0.0123456 * (i + 1), "high": 123456.7 * (i + 1),
                          "npv_low": -1e6 + shapes[i % 4][0] / (i + 1), "npv_high": -1e6 + shapes[i % 4][1] / (i + 1),
                          "npv_base": -1e6} for i in range(14)])
    study = S.load_study(study_dir)
    cases = [(bars, 5e5), (bars.head(1), None)] + [(S.tornado_frame(study, s.id), s.stat("npv", reporting=True)["p50"])
                                                   for s in study.ranked_scenarios]
    for frame, headline in cases:
        fig = F.tornado(frame, "EUR", "t", headline)
        boxes = _text_boxes(fig)
        assert len(boxes) == 3 * len(frame)
        clashes = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]
        assert not clashes
        width = fig.get_figwidth() * fig.dpi
        assert all(0 <= box.x0 and box.x1 <= width for _, box in boxes)
        assert all(len(line) <= 22 for text, _ in boxes for line in text.splitlines())
        assert not [text for text, _ in boxes if "e+" in text or "e-" in text]


@pytest.mark.parametrize("name, wrapped", [
    ("x", "x"), ("france.response.rewarded_behaviour", "france.response.\nrewarded_behaviour"),
    ("usa.economics.gross_margin", "usa.economics.\ngross_margin"),
    ("a_very_long_parameter_name_without_dots", "a_very_long_parameter_\nname_without_dots"),
    ("abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuv\nwxyz"),
])
def test_parameter_names_wrap(name, wrapped):
    from simulator.reporting.figures import wrap_name

    assert wrap_name(name) == wrapped


@pytest.mark.parametrize("value, text", [(0.3, "0.3"), (0.04472, "0.0447"), (0.16123, "0.161"), (12.345, "12.3"),
                                         (2.0, "2"), (1234.5, "1,234"), (-123456.7, "-123,457"), (0.0000123456, "0.0000123")])
def test_parameter_values_have_three_digits_and_no_exponent(value, text):
    from simulator.reporting.figures import param_value

    assert param_value(value) == text


def test_network_section_ranks_each_scenarios_stores_by_recruitment(report, study_dir):
    """The shipped markets carry store networks: every scenario lists all its stores, ranked by
    recruitment rate (highest first), with the figures of study.network_table."""
    text = _section(report.read_text(encoding="utf-8"), "network")
    study = S.load_study(study_dir)
    for s in study.scenarios:
        t = S.network_table(s)
        assert t is not None and len(t) == len(s.stores["store"].unique())
        rates = t["recruitment_rate"].to_numpy()
        assert (rates[:-1] >= rates[1:]).all()
        # the network's rate is the customer-weighted mean of the stores': index 1 on average
        assert (t["recruitment_index"] * t["customers"]).sum() == pytest.approx(t["customers"].sum(), rel=1e-9)
        assert f"<h3>{html.escape(s.id)}</h3>" in text
        leader = t["store"].iloc[0]
        assert "Leaders: " + leader in text
    ranks = _column(text, "Rank")
    assert len(ranks) == sum(len(S.network_table(s)) for s in study.scenarios)


def test_a_pilot_by_store_is_read_against_matched_controls_in_the_report_and_workbook(tmp_path):
    """A scenario whose playbook pilots the design: the Network section gives its readout beside
    the true effect and the pairs, and the workbook's Network sheet the same figures."""
    import openpyxl

    from simulator.study import run_study, study_from_playbooks

    study, cells = study_from_playbooks(["markets/france/premium_club_store_pilot.yaml"], [], replications=2, seed=3,
                                        agents=1_500)
    study = study.model_copy(update={"sensitivity_replications": 1})
    run_study(study, cells, tmp_path / "study", force=False)
    st = S.load_study(tmp_path / "study")
    (s,) = st.scenarios
    ro = S.pilot_readout(s)
    assert ro is not None and ro["replications"] == 2 and len(ro["pairs"]) == 8
    text = _section((tmp_path / "study" / "report.html").read_text(encoding="utf-8"), "network")
    assert "<h4>Pilot readout</h4>" in text and f"{ro['true_effect']:+,.3f}" in text
    pairs = [r for r in _rows(text) if len(r) == 2 and r[0].startswith("fr")]
    assert [tuple(r) for r in pairs] == [tuple(p) for p in ro["pairs"]]
    ws = openpyxl.load_workbook(tmp_path / "study" / "workbook.xlsx")["Network"]
    cells_ = {r[3]: r[4] for r in ws.iter_rows(values_only=True) if r[0] == s.id and isinstance(r[3], str)}
    assert cells_["True effect (design - baseline on the pilot stores)"] == pytest.approx(ro["true_effect"])
    assert cells_["Estimated effect on revenue per customer-month (mean)"] == pytest.approx(ro["estimate"]["mean"])
