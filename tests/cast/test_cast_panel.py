"""Notebook 07's panel, figures, tables and sentences (nblib.cast.panel): sliders only index the precomputed sweep;
the tree layout; every sentence quotes the numbers it is given and says "not measured" where a file lacks them."""
from __future__ import annotations

import pytest

from nblib import cast


def sweep_rows():
    rows = [{"batch": b, "depth": 0, "top_k": 0, "budget": 0, "tokens_per_s": 6.0 * b, "accepted": 1.0} for b in (1, 2)]
    rows += [{"batch": b, "depth": d, "top_k": k, "budget": m, "tokens_per_s": b + d + k / 10 + m / 100,
              "accepted": 1 + d / 10 + m / 100} for b in (1, 2) for d in (2, 4) for k in (2, 4) for m in (4, 12)]
    return rows


def test_panel_looks_up_the_sweep_and_has_css_hooks():
    p = cast.panel.TreeSweepPanel(sweep_rows())
    for name in ("depth", "top_k", "budget", "batch"):
        assert f"nb07-{name.replace('_', '-')}" in p.sliders[name]._dom_classes
    assert "nb07-readout" in p.label._dom_classes and "nb07-plot" in p.image._dom_classes
    p.sliders["depth"].value, p.sliders["top_k"].value = 4, 4
    p.set(budget=12, batch=2)
    st = p.state()
    assert (st["batch"], st["depth"], st["top_k"], st["budget"]) == (2, 4, 4, 12)
    assert st["tokens_per_s"] == 2 + 4 + 0.4 + 0.12
    assert "batch 2" in p.label.value and f"{st['tokens_per_s']:.1f} tok/s" in p.label.value
    assert p.image.value[:4] == b"\x89PNG" and p.last_update_ms > 0


def test_tree_layout_places_children_right_of_parents():
    par, dep = [0, 0, 0, 1, 1, 3], [0, 1, 1, 2, 2, 3]
    pos = cast.panel.tree_layout(par, dep)
    assert len(pos) == 6
    for i in range(1, 6):
        assert pos[i][0] == pos[par[i]][0] + 1
    leaves = [2, 4, 5]
    assert len({pos[i][1] for i in leaves}) == 3  # leaves get distinct rows


# --- notebook 07's tables, figures and computed sentences (issues 22, 24) -----------------------------------------
FEAT = "feature (EAGLE)"


def bench_result(choice: bool = False, batches=(1, 2, 4), cast_plain=(1.5, 1.01, 0.7), sampling=None) -> dict:
    """A synthetic benchmark file as cast.bench.full_benchmark writes it: generate, the plain loop, a chain, a fixed
    tree and CAST per batch size (CAST / plain given by `cast_plain`), prompt lookup at batch 1 only."""
    rows = []
    for b, cp in zip(batches, cast_plain):
        gen, plain = 10.0 * b, 20.0 * b
        spec = [("HF generate greedy", "–", gen, 1.0), ("nblib plain greedy", "–", plain, 1.0),
                ("chain", FEAT, 1.3 * plain if b == 1 else 0.9 * plain, 1.7),
                ("EAGLE-2 tree", FEAT, 0.8 * plain / b, 2.4), ("CAST", FEAT, cp * plain, 1.8)]
        if b == 1:
            spec.append(("HF prompt lookup", "–", 1.1 * gen, 1.4))
        for m, d, tps, acc in spec:
            r = {"method": m, "draft": d, "batch": b, "tokens_per_s": tps, "accepted_per_call": acc,
                 "speedup": tps / gen, "over_plain": tps / plain, "lossless": True}
            if m == "CAST" and choice:
                r["choice"] = {"steps": 10, "no_draft_share": {1: 0.0, 2: 0.5}.get(b, 0.9), "levels_mean": 2.0,
                               "width_mean": 2.0, "verified_mean": 4.0}
            rows.append(r)
    vc = [{"n": n, "lean_s": 0.04 * (1 + n / 20), "torch_s": 0.06 * (1 + n / 10), "hf_s": 0.07 * (1 + n / 10),
           "flops": 1e6 * n} for n in (1, 2, 4, 8, 16)]
    for r in vc:
        for k in ("lean", "torch", "hf"):
            r[f"{k}_rel"] = r[f"{k}_s"] / vc[0][f"{k}_s"]
        r["flops_rel"] = r["flops"] / vc[0]["flops"]
    out = {"rows": rows, "agreement": {"feature": {"agree1": 0.5, "agree2": 0.42}, "token": {"agree1": 0.28}},
           "verify_cost": vc, "verify_context": 160, "prompts": 8, "max_new": 64,
           "env": {"threads": 2, "loadavg_before": [0.5, 0.4, 0.3], "loadavg_after": [2.0, 1.9, 1.1], "device": "cpu"},
           "machine": {"device": "cpu", "threads": 2, "date": "today"}}
    if sampling is not None:
        out["sampling"] = {"sampling_speedup_t07": sampling, "sampling_policy_t07": "chain-4"}
    return out


def test_lookup_reads_top_level_then_nested_keys_and_says_when_absent():
    res = bench_result(sampling=1.23)
    assert cast.panel.lookup(res, "prompts") == 8
    assert cast.panel.lookup(res, "sampling_speedup_t07") == 1.23          # one level down
    assert cast.panel.lookup(bench_result(), "sampling_speedup_t07") is None
    assert cast.panel.lookup(bench_result(), "sampling_speedup_t07", "x") == "x"


def test_method_labels_name_the_draft_and_the_plain_loop():
    assert cast.panel.method_label("chain", FEAT) == "chain · feature draft"
    assert cast.panel.method_label("nblib plain greedy", "–") == "plain loop"
    assert cast.panel.method_label("HF generate greedy") == "transformers' generate"
    assert cast.panel.method_label("CAST", "token") == "CAST · token draft"


def test_comparison_table_has_one_row_per_method_units_and_no_empty_column():
    res = bench_result()
    df = cast.panel.comparison_table(res["rows"])
    assert len(df) == 6 and df["method"].is_unique                        # 5 methods + prompt lookup, one row each
    assert not df.isna().all().any()                                       # no all-NaN column
    assert {"batch 1: tokens/s", "batch 4: ÷ plain loop", "tokens per target call (batch 1)"} <= set(df.columns)
    cast_row = df[df["method"] == "CAST · feature draft"].iloc[0]
    assert cast_row["batch 4: ÷ plain loop"] == pytest.approx(0.7)
    lookup = df[df["method"] == "prompt lookup"].iloc[0]
    assert lookup["batch 2: tokens/s"] != lookup["batch 2: tokens/s"]      # did not run at batch 2: NaN, shown blank
    res["rows"][0]["lossless"] = False
    assert cast.panel.comparison_table(res["rows"]).iloc[0]["same output as generate"] == "NO"


def test_verdict_names_the_strongest_other_method_at_every_batch():
    head = cast.bench.headline(bench_result())
    lines = cast.panel.verdict_lines(head, margin=0.03)
    assert len(lines) == 3
    assert lines[0] == "batch 1: CAST: 1.50x the plain loop; strongest other method: chain · feature draft, 1.30x (CAST ahead)"
    assert "strongest other method: plain loop, 1.00x (within 0.03x of each other: no winner)" in lines[1]
    assert lines[2].endswith("(plain loop ahead)")


def test_per_batch_sentence_says_where_cast_wins_and_what_it_chose():
    text = cast.panel.per_batch_sentence(cast.bench.headline(bench_result()), margin=0.03)
    assert text.startswith("CAST beats the plain loop at batch 1 (1.50x)")
    assert "level with it (within 0.03x) at batch 2 (1.01x)" in text and "slower at batch 4 (0.70x)" in text
    assert "not measured" in text and "worst batch size is 0.70x" in text
    text = cast.panel.per_batch_sentence(cast.bench.headline(bench_result(choice=True)), margin=0.03)
    assert "0 % at batch 1, 50 % at batch 2 and 90 % at batch 4" in text and "not measured" not in text
    assert "skipped the draft on most steps (batch 4)" in text and "learning which choice pays" in text
    res = bench_result(choice=True, cast_plain=(1.5, 0.9, 0.7))  # batch 2 slower while drafting half its steps
    res["rows"] = [dict(r, choice={**r["choice"], "no_draft_share": 0.2}) if r.get("batch") == 2 and "choice" in r
                   else r for r in res["rows"]]
    res["paired"] = {"2": {"median": 0.9, "lo": 0.85, "hi": 0.99, "over_plain": [0.85, 0.9, 0.99], "lossless": True}}
    text = cast.panel.per_batch_sentence(cast.bench.headline(res), margin=0.03)
    assert "At batch 2 it drafted on 80 % of its steps" in text and "ranged from 0.85x to 0.99x" in text
    assert "skipped the draft on most steps (batch 4)" in text


def test_per_batch_table_and_figure_show_missing_choices_as_not_measured():
    res = bench_result()
    df = cast.panel.per_batch_table(res)
    assert list(df["batch size"]) == [1, 2, 4]
    assert list(df["strongest other method"]) == ["chain · feature draft", "plain loop", "plain loop"]
    fmt = cast.panel.per_batch_formats(df)
    assert fmt["CAST: steps without a draft (%)"](float("nan")) == "not measured"
    assert fmt["CAST: steps without a draft (%)"](50.0) == "50 %"
    fig = cast.panel.per_batch_figure(res)
    assert len(fig.axes) == 1                                              # no choice recorded: no choice panel
    ax = fig.axes[0]
    assert any(list(ln.get_ydata()) == [1, 1] for ln in ax.get_lines())    # the plain loop's line at 1
    assert len(cast.panel.per_batch_figure(bench_result(choice=True)).axes) == 2


def test_verify_cost_sentence_quotes_the_curve_it_is_given():
    res = bench_result()
    by = {r["n"]: r for r in res["verify_cost"]}
    text = cast.panel.verify_cost_sentence(res["verify_cost"], 160)
    assert f"{by[4]['lean_rel']:.2f}x" in text and f"{by[8]['lean_rel']:.2f}x" in text
    assert f"{by[2]['torch_rel']:.2f}x" in text and "cache 160 tokens" in text
    assert f"At n = 16 the kernel path costs {by[16]['lean_rel']:.2f}x" in text
    table = cast.panel.verify_cost_table(res["verify_cost"])
    assert table["kernel ÷ 1 step"].tolist() == [r["lean_rel"] for r in res["verify_cost"]]


def test_sampling_sentence_reports_the_shipped_value_or_not_measured():
    assert "not measured" in cast.panel.sampling_sentence(None, None)
    assert "1.23x the plain sampled loop" in cast.panel.sampling_sentence(None, 1.23, shipped_policy="chain-4")
    live = {"plain": {"tokens_per_s": 10.0, "tokens_per_call": 1.0},
            "chain-4": {"tokens_per_s": 12.0, "tokens_per_call": 1.6, "speedup": 1.2},
            "temperature": 0.7, "top_p": 1.0, "repeats": 3}
    assert "chain-4 reaches 1.20x" in cast.panel.sampling_sentence(live, None)


def test_choice_table_and_agreement_sentence():
    df = cast.panel.choice_table({1: {"steps": 4, "no_draft_share": 0.25, "levels_mean": 2.0, "width_mean": 1.0,
                                      "verified_mean": 3.0}})
    assert df.iloc[0]["steps without a draft (%)"] == 25.0 and "tokens per target call" not in df.columns
    text = cast.panel.agreement_sentence(bench_result()["agreement"])
    assert text.startswith("The feature draft's first choice is the target's on 50 % of the tokens at depth 1")
    assert "the token draft's on 28 % at depth 1" in text


def test_legends_sit_outside_the_data():
    res = bench_result()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = cast.panel.speedup_figure(res["rows"])
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    leg = ax.get_legend().get_window_extent(canvas.get_renderer())
    assert leg.x0 >= ax.get_window_extent(canvas.get_renderer()).x1        # right of the bars
    fig = cast.panel.verify_cost_figure(res["verify_cost"], 160)
    assert all(a.get_legend() is None for a in fig.axes) and len(fig.legends) == 1   # one legend below the panels


def test_panel_display_bundle_carries_its_figure():
    """Read without a kernel, the panel still shows its figure (image/png) and its readout (text/plain)."""
    import base64

    p = cast.panel.TreeSweepPanel(sweep_rows())
    bundle = p._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert bundle["text/plain"].startswith("TreeSweepPanel: depth 2 · top-k 2")


def test_paper_table_sets_cast_against_the_strongest_other_method():
    df = cast.panel.paper_beside_ours(cast.bench.headline(bench_result()))
    ours = dict(zip(df["claim"], df["ours (SmolLM2-135M, CPU)"]))
    assert ours["CAST over the strongest other method, batch 1"].startswith("+15 % (chain · feature draft: 1.30x")
    assert ours["CAST over the strongest other method, batch 4"] == "-30 % (the strongest is the plain loop itself; CAST 0.70x of it)"
    assert ours["CAST ÷ plain loop at its worst batch size"] == "0.70x"
    assert ours["sampling at temperature 0.7, ÷ plain sampled loop"] == "not measured"
    df = cast.panel.paper_beside_ours(cast.bench.headline(bench_result()), sampling_speedup=1.1)
    assert "1.10x" in df["ours (SmolLM2-135M, CPU)"].tolist()


def test_overheads_table_in_ms_or_none_for_an_older_file():
    assert cast.panel.overheads_table(bench_result()) is None
    res = {**bench_result(), "overheads": {"2": {"step_s": 0.009, "level_s": 0.004, "nodraft_s": 0.002,
                                                 "kernel_rows": None}, "1": {"step_s": 0.008, "level_s": 0.003,
                                                                            "nodraft_s": 0.001, "kernel_rows": 12}}}
    df = cast.panel.overheads_table(res)
    assert list(df["batch size"]) == [1, 2]
    assert df["per drafted step (ms)"].tolist() == pytest.approx([8.0, 9.0])
    assert df["skinny kernel up to (rows)"].iloc[0] == 12


def test_paired_rounds_decide_the_headline_table_and_figure():
    """With paired rounds in the file, CAST / plain is their median (one run's ratio is ignored), the table shows the
    lowest and highest round, and the worst batch reads the medians; without them neither range column appears."""
    res = bench_result(cast_plain=(1.5, 0.80, 0.70))
    res["paired"] = {"1": {"median": 1.4, "lo": 1.3, "hi": 1.5, "over_plain": [1.3, 1.4, 1.5], "lossless": True},
                     "2": {"median": 0.99, "lo": 0.95, "hi": 1.02, "over_plain": [0.95, 0.99, 1.02], "lossless": True},
                     "4": {"median": 0.98, "lo": 0.90, "hi": 1.0, "over_plain": [0.9, 0.98, 1.0], "lossless": True}}
    head = cast.bench.headline(res)
    assert head["cast_over_plain_b2"] == 0.99 and head["cast_min_over_plain_any_batch"] == 0.98
    assert head["cast_over_plain_rounds"]["4"]["lo"] == 0.90
    df = cast.panel.per_batch_table(res)
    assert list(df["CAST ÷ plain loop"]) == [1.4, 0.99, 0.98]
    assert list(df["CAST ÷ plain: lowest round"]) == [1.3, 0.95, 0.90]
    assert cast.panel.per_batch_figure(res).axes[0].containers  # error bars drawn
    plain = cast.panel.per_batch_table(bench_result())
    assert not any("round" in c for c in plain.columns)
    assert "0.7" in cast.panel.per_batch_sentence(cast.bench.headline(bench_result()))
