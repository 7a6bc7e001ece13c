"""What a calibration writes: the next profile version, a markdown report and a trial plot."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

import erase
from erase.fileio import atomic_write
from erase.profile import Calibration, Profile, Stage1

from ..plotting import Series, scatter_png

_VERSION = re.compile(r"^(?P<name>.+?)(?:\.v(?P<v>\d+))?\.ya?ml$")


def next_version(out_dir: Path, name: str) -> int:
    versions = [0]
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            m = _VERSION.match(p.name)
            if m and m["name"] == name:
                try:
                    versions.append(erase.load_profile(p).profile_version)
                except erase.EraseError:
                    versions.append(int(m["v"] or 1))
    return max(versions) + 1


def build_profile(
    template: Profile, trial: optuna.trial.FrozenTrial, *, name: str, version: int, config: Any, datasets: dict[str, int]
) -> Profile:
    ua = trial.user_attrs
    return template.replace(
        name=name,
        profile_version=version,
        stage1=Stage1(thresholds=tuple(ua["thresholds"]), keep_ratios=tuple(ua["keep_ratios"])),
        calibration=Calibration(
            source="calibrated",
            toolkit_version=erase.__version__,
            date=dt.date.today().isoformat(),
            alpha=config.alpha,
            iterations=config.iters,
            seed=config.seed,
            sampler="TPE",
            datasets=datasets,
            accuracy=round(float(ua["accuracy"]), 6),
            objective=round(float(ua["objective"]), 6),
            notes=f"trial {trial.number} of study {config.study_name!r}, selected by {config.select}; "
            f"trials evaluated {'Stage 1 only' if config.stage2_keep_ratio is None else 'Stage 1+2'}",
        ),
    )


def write_outputs(out_dir: Path, profile: Profile, study: optuna.Study, chosen: optuna.trial.FrozenTrial, config: Any) -> dict[str, Path]:
    stem = f"{profile.name}.v{profile.profile_version}"
    profile_path = out_dir / f"{stem}.yaml"
    plot_path = out_dir / f"{stem}-trials.png"
    report_path = out_dir / f"{stem}-report.md"
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "accuracy" in t.user_attrs]
    stopped = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    feasible = [(t.user_attrs["mean_pruning"], t.user_attrs["accuracy"]) for t in trials if t.user_attrs.get("feasible")]
    infeasible = [(t.user_attrs["mean_pruning"], t.user_attrs["accuracy"]) for t in trials if not t.user_attrs.get("feasible")]
    ruled = [
        (t.user_attrs["mean_pruning"], t.user_attrs.get("accuracy", t.user_attrs.get("accuracy_at_most", 0.0)))
        for t in stopped if "mean_pruning" in t.user_attrs
    ]
    series = [Series("complete trials", feasible, (40, 90, 200))]
    if ruled:
        series.append(Series("ruled out (stopped early: accuracy at most)", ruled, (230, 140, 40), 3))
    if infeasible:
        series.append(Series("a level left empty", infeasible, (170, 170, 170), 3))
    png = scatter_png(
        series,
        title=f"{profile.name}: accuracy vs mean pruning ratio per trial",
        xlabel="mean pruning ratio (sum c_i p_i)",
        ylabel="normalised accuracy",
        highlight=(chosen.user_attrs["mean_pruning"], chosen.user_attrs["accuracy"]),
        highlight_label=f"selected: trial {chosen.number}",
    )
    atomic_write(plot_path, png)
    atomic_write(report_path, report_markdown(profile, trials, chosen, config, plot_path.name, stopped))
    profile.save(profile_path)  # last: the profile appears only when everything else is written
    return {"profile": profile_path, "report": report_path, "plot": plot_path}


def report_markdown(profile: Profile, trials: list, chosen: Any, config: Any, plot_name: str, stopped: list = ()) -> str:
    ua = chosen.user_attrs
    levels = len(ua["keep_ratios"])
    lines = [
        f"# Calibration of {config.model}",
        "",
        f"Command: `{config.command}`",
        "",
        f"Profile `{profile.name}` v{profile.profile_version}, {len(trials) + len(stopped)} trials ({len(trials)} complete, "
        f"{len(stopped)} ruled out and stopped early), alpha {config.alpha}, seed {config.seed}, selection rule `{config.select}`.",
        "",
        "## Selected configuration",
        "",
        f"- trial {chosen.number}: accuracy {ua['accuracy']:.4f}, objective F {ua['objective']:.4f}, "
        f"mean pruning ratio {ua['mean_pruning']:.4f}",
        f"- thresholds: {', '.join(f'{t:.4f}' for t in ua['thresholds'])}",
        "",
        "| level | share of images c_i | keep ratio | pruning ratio |",
        "|---|---|---|---|",
    ]
    for i in range(levels):
        k = ua["keep_ratios"][i]
        lines.append(f"| {i + 1} | {ua[f'c{i + 1}']:.3f} | {k:.4f} | {1 - k:.4f} |")
    lines += ["", f"![trials]({plot_name})", "", "## Best trials by accuracy", "",
              "| trial | accuracy | F | mean pruning | feasible |", "|---|---|---|---|---|"]
    ranked = sorted(trials, key=lambda t: (-t.user_attrs["accuracy"], -t.user_attrs["objective"]))[:10]
    for t in ranked:
        a = t.user_attrs
        lines.append(f"| {t.number} | {a['accuracy']:.4f} | {a['objective']:.4f} | {a['mean_pruning']:.4f} | {a['feasible']} |")
    tokens = [t.user_attrs["tokens"] for t in [*trials, *stopped] if "tokens" in t.user_attrs]
    hits = sum(t.user_attrs.get("memo_hits", 0) for t in [*trials, *stopped])
    decided = hits + sum(t.user_attrs.get("evaluated", 0) for t in [*trials, *stopped])
    if tokens:
        lines += ["", "## Cost", "",
                  f"- language-model tokens per trial (batch x sequence length): mean {sum(tokens) / len(tokens):,.0f}",
                  f"- item results taken from the memo: {hits} of {decided}" + (f" ({hits / decided:.0%})" if decided else "")]
    lines.append("")
    return "\n".join(lines)
