"""Several erase-calibrate workers on one study (PostgreSQL, a shared journal), finalize, check and CI.

The workers are real `erase-calibrate` processes on the tiny model and data of test_calibrate.
"""

from __future__ import annotations

import datetime
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
import typer
import yaml
from optuna.trial import TrialState

import erase
import postgres_server
from erase_calibrate.search import record
from erase_calibrate.search.base_answers import AnswerCache
from erase_calibrate.search.search_space import SearchSpace
from erase_calibrate.search.study import open_study, run_trials
from erase_calibrate.search.trials import TrialResult
from erase_calibrate.cli import calibrate_cmd
from test_calibrate import ITEMS, tiny_setup  # noqa: F401  (the module-scoped fixture)

ROOT = Path(__file__).resolve().parents[1]
ITERS = 6
STUDY = "model-erase"


# ----------------------------------------------------------------------------- helpers
def _worker_cmd(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-c", "from erase_calibrate.cli.calibrate_cmd import main; main()",
        "--model", str(root / "model"), "--benchmarks", "chartqa", "--data-dir", str(root / "data"),
        "--per-benchmark", str(ITEMS), "--max-new-tokens", "4", "--out", str(out), "--quiet", "--seed", "1",
        "--iters", str(ITERS), "--levels", "2", *extra,
    ]


def _run_workers(cmds: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Start all workers at once, wait for all."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in cmds]
    done = []
    for c, p in zip(cmds, procs):
        try:
            out, err = p.communicate(timeout=480)
        finally:
            if p.poll() is None:
                p.kill()
        done.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    for r in done:
        assert r.returncode == 0, r.stderr[-3000:]
    return done


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run erase-calibrate in this process through its console-script entry point."""
    argv = sys.argv
    sys.argv = ["erase-calibrate", *args]
    try:
        calibrate_cmd.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_study_exact(study: optuna.Study, iters: int = ITERS) -> list[optuna.trial.FrozenTrial]:
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]  # finished: they count
    assert len(done) == iters
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in done}) == iters  # no draw duplicated
    for t in trials:  # anything not finished is a surplus trial: never evaluated
        if t not in done:
            assert t.state == TrialState.FAIL and t.user_attrs.get("surplus") and not t.params
    # Which worker ran how many trials is the scheduler's business (one may even run them all);
    # every finished trial names one of the two.
    assert 1 <= len({t.user_attrs["worker"] for t in done}) <= 2
    return [t for t in done if t.state == TrialState.COMPLETE]


def _assert_one_writer(results: list[subprocess.CompletedProcess], profiles: list[Path]) -> Path:
    writers = [r for r in results if r.stdout.startswith("profile  ")]
    assert len(writers) == 1, [r.stdout for r in results]
    for r in results:
        if r is not writers[0]:
            line = r.stdout.strip()
            assert "\n" not in line and line.startswith("erase-calibrate: ") and "profile" in line, line
    assert len(profiles) == 1, profiles
    path = Path(writers[0].stdout.split()[1])
    assert path == profiles[0]
    profile = erase.load_profile(path)  # the runtime reads it
    assert profile.calibration.iterations == ITERS
    assert profile.calibration.datasets == {"chartqa": ITEMS}
    return path


def _journal(out: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / f"{STUDY}.journal")))
    return optuna.load_study(study_name=STUDY, storage=storage)


# ----------------------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="module")
def postgres():
    reason = postgres_server.why_unavailable()
    if reason:
        pytest.skip(reason)
    root = tempfile.mkdtemp(prefix="erase-pg-")  # not under pytest's 0700 tmp: the server user must reach it
    server = postgres_server.start(Path(root))
    try:
        yield server
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", root], check=False)


def test_two_workers_on_postgresql(tiny_setup, postgres, tmp_path):  # noqa: F811
    url = postgres.url()
    outs = [tmp_path / "machine-a", tmp_path / "machine-b"]  # as on two machines: nothing shared but the database
    results = _run_workers([_worker_cmd(tiny_setup, out, "--storage", url, "--study-name", STUDY) for out in outs])
    profiles = sorted(p for out in outs for p in out.glob("*.yaml"))
    path = _assert_one_writer(results, profiles)

    study = optuna.load_study(study_name=STUDY, storage=url)
    complete = _assert_study_exact(study)
    assert record.written(study, ITERS, rule="accuracy", out=path.parent)["path"] == str(path.resolve())
    assert record.load_setup(study).datasets == {"chartqa": ITEMS}
    chosen = max((t for t in complete if t.user_attrs["feasible"]), key=lambda t: (t.user_attrs["accuracy"], t.value))
    assert list(erase.load_profile(path).stage1.keep_ratios) == pytest.approx(chosen.user_attrs["keep_ratios"])


def _running_trial_of(url: str, study_name: str, pid: int) -> optuna.trial.FrozenTrial | None:
    try:
        study = optuna.load_study(study_name=study_name, storage=url)
    except KeyError:
        return None
    me = f"{socket.gethostname()}:{pid}"
    return next((t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.user_attrs.get("worker") == me), None)


def test_a_worker_killed_mid_trial_is_noticed_by_heartbeat_and_its_trial_rerun(tiny_setup, postgres, tmp_path):  # noqa: F811
    """Two workers on PostgreSQL (as on two hosts: nothing shared but the database). One is killed in
    the middle of a trial; the other notices through Optuna's heartbeat within the grace period,
    re-runs that trial's parameters and finishes the study with exactly --iters trials."""
    url, name, iters, grace = postgres.url(), "heartbeat", 8, 3
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    extra = ["--storage", url, "--study-name", name, "--heartbeat-interval", "1", "--grace-period", str(grace)]

    def cmd(out: Path) -> list[str]:
        argv = _worker_cmd(tiny_setup, out, *extra)
        return [*argv[: argv.index("--iters")], "--iters", str(iters), *argv[argv.index("--iters") + 2 :]]

    victim = subprocess.Popen(cmd(tmp_path / "host-b"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    survivor = None
    try:
        deadline = time.monotonic() + 300
        killed = None
        while killed is None:
            assert time.monotonic() < deadline and victim.poll() is None, "the victim never ran a trial"
            trial = _running_trial_of(url, name, victim.pid)
            if trial is None or not trial.params:  # mid-trial: asked, and its configuration drawn
                time.sleep(0.05)
                continue
            victim.send_signal(signal.SIGSTOP)  # frozen mid-trial (its heartbeat thread too) ...
            still = _running_trial_of(url, name, victim.pid)
            if still is None or still.number != trial.number:
                victim.send_signal(signal.SIGCONT)  # it finished that trial just before: wait for its next one
                continue
            survivor = subprocess.Popen(cmd(tmp_path / "host-a"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)
            me = f"{socket.gethostname()}:{survivor.pid}"
            while survivor.poll() is None and time.monotonic() < deadline:  # the survivor is at work ...
                study = optuna.load_study(study_name=name, storage=url)
                if any(t.user_attrs.get("worker") == me for t in study.get_trials(deepcopy=False)):
                    break
                time.sleep(0.2)
            victim.send_signal(signal.SIGKILL)  # ... when the victim dies, as with a lost host
            killed, killed_at = trial, datetime.datetime.now()
        victim.wait(timeout=30)
        out, err = survivor.communicate(timeout=480)
    finally:
        for p in (victim, survivor):
            if p is not None and p.poll() is None:
                p.kill()
    assert survivor.returncode == 0, err[-3000:]
    assert out.startswith("profile  "), out  # the survivor finished the study and wrote the profile
    assert erase.load_profile(Path(out.split()[1])).calibration.iterations == iters

    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == iters  # exactly --iters, the killed trial's re-run among them
    dead = next(t for t in trials if t.number == killed.number)
    assert dead.state == TrialState.FAIL
    assert (dead.datetime_complete - killed_at).total_seconds() < grace + 30  # noticed within a bounded time
    rerun = [t for t in done if t.system_attrs.get("failed_trial") == killed.number]
    assert len(rerun) == 1 and rerun[0].params == dead.params
    assert rerun[0].user_attrs["worker"] != dead.user_attrs["worker"]
    assert [t.state for t in trials].count(TrialState.FAIL) == 1


def test_write_claim_is_atomic_on_postgresql(postgres):
    url = postgres.url()
    a = open_study(url, "claims", Path("."), seed=0)
    b = open_study(url, "claims", Path("."), seed=0)
    assert record.claim(a, 3, "a") and not record.claim(b, 3, "b")
    assert record.claimed_by(b, 3) == "a"
    record.release(a, 3)
    assert record.claim(b, 3, "b")


# ----------------------------------------------------------------------------- a shared journal file
@pytest.fixture(scope="module")
def journal_run(tiny_setup, tmp_path_factory):  # noqa: F811
    """Two workers on one machine: one output folder, one journal, one base-answer cache."""
    out = tmp_path_factory.mktemp("journal") / "out"
    storage = out / f"{STUDY}.journal"
    results = _run_workers([_worker_cmd(tiny_setup, out, "--storage", str(storage), "--study-name", STUDY)] * 2)
    return out, results


def test_two_workers_on_a_journal_file(journal_run):
    out, results = journal_run
    path = _assert_one_writer(results, sorted(out.glob("*.yaml")))
    assert path.name == "model.v1.yaml"
    _assert_study_exact(_journal(out))
    cached = list((out / "base-answers").glob("chartqa-*/*.json"))
    assert len(cached) == ITEMS  # both workers filled one cache, one file per item


def test_finalize_writes_the_profile_from_the_storage_alone(journal_run, tmp_path, monkeypatch, capsys):
    out, _ = journal_run

    def no_model(*args, **kwargs):
        raise AssertionError("finalize must not load the model")

    monkeypatch.setattr("erase_calibrate.models.load", no_model)
    monkeypatch.setattr("transformers.AutoConfig.from_pretrained", no_model)
    target = tmp_path / "final"
    args = ["finalize", "--storage", str(out / f"{STUDY}.journal"), "--study-name", STUDY, "--out", str(target)]
    code, stdout, err = _cli(args, capsys)
    assert code == 0, err
    written = erase.load_profile(target / "model.v1.yaml")
    worker = erase.load_profile(out / "model.v1.yaml")
    assert written.stage1 == worker.stage1 and written.model == worker.model and written.stage2 == worker.stage2
    assert written.calibration.iterations == ITERS and written.calibration.datasets == {"chartqa": ITEMS}
    assert (target / "model.v1-report.md").read_text().startswith("# Calibration of")

    # idempotent: the same study state is not written twice into one folder
    code, stdout, _ = _cli(args, capsys)
    assert code == 0 and stdout.startswith("erase-calibrate: already written:")
    assert sorted(p.name for p in target.glob("*.yaml")) == ["model.v1.yaml"]

    code, _, err = _cli(["finalize", "--storage", str(out / "nope.journal"), "--study-name", STUDY, "--out", str(target)], capsys)
    assert code == 2 and "no such study journal" in err and len(err.strip().splitlines()) == 1


def _edited(src: Path, dst: Path, edit) -> Path:
    data = yaml.safe_load(src.read_text())
    edit(data)
    dst.write_text(yaml.safe_dump(data, sort_keys=False))
    return dst


def test_check_current_and_stale(journal_run, tiny_setup, tmp_path, monkeypatch, capsys):  # noqa: F811
    out, _ = journal_run
    fresh = out / "model.v1.yaml"

    def no_weights(*args, **kwargs):
        raise AssertionError("check must not load weights")

    monkeypatch.setattr("erase_calibrate.models.load", no_weights)
    monkeypatch.setattr("transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained", no_weights)
    model = str(tiny_setup / "model")

    code, stdout, _ = _cli(["check", "--model", model, "--profile", str(fresh)], capsys)
    assert code == 0 and stdout.startswith("current: model v1") and "config-sha256:" in stdout

    def revision(d):
        d["model"]["revision"] = "config-sha256:0000000000000000"

    def fingerprint(d):
        d["model"]["fingerprint"]["hidden_size"] = 128

    def toolkit(d):
        d["calibration"]["toolkit_version"] = "1.0.0"

    def schema(d):
        d["schema_version"] = 0

    for edit, reason in [
        (revision, "model revision config-sha256:"),
        (fingerprint, "architecture changed (profile vs model: hidden size 128 vs 64)"),
        (toolkit, "calibrated by toolkit 1.0.0"),
        (schema, "schema_version 0"),
    ]:
        stale = _edited(fresh, tmp_path / f"{edit.__name__}.yaml", edit)
        code, stdout, _ = _cli(["check", "--model", model, "--profile", str(stale)], capsys)
        assert code == 3, stdout
        assert stdout.startswith("stale: ") and reason in stdout and len(stdout.strip().splitlines()) == 1

    for args, expect in [
        (["--model", model, "--profile", str(tmp_path / "missing.yaml")], "no such profile file"),
        (["--model", str(tmp_path / "no-model"), "--profile", str(fresh)], "cannot load model"),
    ]:
        code, _, err = _cli(["check", *args], capsys)
        assert code == 2 and expect in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_if_stale_skips_a_current_profile(journal_run, tiny_setup, tmp_path, monkeypatch, capsys):  # noqa: F811
    out, _ = journal_run
    target = tmp_path / "out"

    def no_model(*args, **kwargs):
        raise AssertionError("a current profile must not start a calibration")

    monkeypatch.setattr("erase_calibrate.models.load", no_model)
    code, stdout, err = _cli(
        ["--model", str(tiny_setup / "model"), "--out", str(target), "--if-stale", str(out / "model.v1.yaml"), "--quiet"],
        capsys,
    )
    assert code == 0, err
    assert stdout.startswith("erase-calibrate: current: ") and "nothing to calibrate" in stdout
    assert not target.exists()


def test_if_stale_calibrates_a_stale_profile(journal_run, tiny_setup, tmp_path):  # noqa: F811
    out, _ = journal_run
    stale = _edited(out / "model.v1.yaml", tmp_path / "stale.yaml", lambda d: d["model"].update(revision="config-sha256:0"))
    res = subprocess.run(
        _worker_cmd(tiny_setup, out, "--storage", str(out / f"{STUDY}.journal"), "--study-name", STUDY, "--if-stale", str(stale)),
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("erase-calibrate: stale: model revision") and lines[0].endswith("; calibrating")
    # the study already holds its trials and its profile: the run goes no further than saying so
    assert lines[1] == f"erase-calibrate: study '{STUDY}' ({ITERS} trials): its profile was already written: {out / 'model.v1.yaml'}"


# ----------------------------------------------------------------------------- exactness, in process
def _fake_result(thresholds, keeps, context=None) -> TrialResult:
    return TrialResult(tuple(thresholds), tuple(keeps), accuracy=1.0, objective=0.5, shares=(0.5, 0.5),
                       mean_pruning=0.3, feasible=True)


def test_a_worker_that_asks_for_one_trial_too_many_stops(tmp_path):
    """Two workers pass the loop check together; the later-numbered trial is told FAIL as surplus."""
    storage = str(tmp_path / "s.journal")
    a = open_study(storage, "race", tmp_path, seed=0)
    b = open_study(storage, "race", tmp_path, seed=0)
    space = SearchSpace([0.5, 1.0, 1.5, 2.0], levels=2)
    assert run_trials(a, space, _fake_result, iters=2).completed == 2
    # now the study holds 2; aim at 3: A takes the last slot right after B passed its check
    taken = {}
    ask = b.ask

    def racing_ask(*args, **kwargs):
        taken["a"] = a.ask()
        return ask(*args, **kwargs)

    b.ask = racing_ask
    run = run_trials(b, space, _fake_result, iters=3)
    assert run.surplus and run.completed == 0
    a.tell(taken["a"], 0.1)
    trials = a.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3
    surplus = [t for t in trials if t.user_attrs.get("surplus")]
    assert len(surplus) == 1 and surplus[0].state == TrialState.FAIL and surplus[0].number == 3


def test_workers_draw_different_points(tmp_path):
    """Per-trial seeding: two workers with the same seed never propose the same point."""
    storage = str(tmp_path / "s.journal")
    workers = [open_study(storage, "draws", tmp_path, seed=7) for _ in range(2)]
    space = SearchSpace([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], levels=4)
    for _ in range(5):
        for w in workers:
            t = w.ask()
            space.suggest(t)
            w.tell(t, 0.0)
    params = [tuple(sorted(t.params.items())) for t in workers[0].trials]
    assert len(set(params)) == len(params) == 10


# ----------------------------------------------------------------------------- the base-answer cache
def test_answer_cache_tolerates_concurrent_writers(tmp_path):
    from erase_calibrate.tasks.answering import Answer

    folder = tmp_path / "base-answers"
    a, b = AnswerCache(folder, "k", "bench"), AnswerCache(folder, "k", "bench")
    a.put("q1", Answer(text="yes", token_ids=(1, 2)), 1.0)
    assert b.get("q1")["text"] == "yes"  # seen by a cache opened before it was written

    def write(cache, text):
        for i in range(50):
            cache.put(f"item{i}", Answer(text=text, token_ids=(i,)), 1.0)

    threads = [threading.Thread(target=write, args=(c, "same")) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a.dir / "0000broken.json").write_text('{"id": "x", "te')  # a writer killed mid-way leaves at most this
    fresh = AnswerCache(folder, "k", "bench")
    assert len(fresh.entries) == 51 and all(fresh.get(f"item{i}")["tokens"] == [i] for i in range(50))
    assert not list(a.dir.glob(".*.tmp"))


# ----------------------------------------------------------------------------- the CI workflow
WORKFLOW = ROOT / ".github" / "workflows" / "recalibrate.yml"
_SHELL_OPS = {"|", "||", "&&", ";", ">", ">>", "2>&1", "<"}


class _Scripts(dict):
    """Console script name -> its click command, imported only when a workflow line uses it."""

    def __init__(self):
        import tomllib

        super().__init__()
        self.targets = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    def __contains__(self, name):
        return name in self.targets

    def __missing__(self, name):
        from erase_calibrate.cli.entry import COMMANDS  # the scripts' guard -> the command's module

        module = self.targets[name].partition(":")[0]
        module = COMMANDS.get(name, module) if module == "erase_calibrate.cli.entry" else module
        self[name] = typer.main.get_command(__import__(module, fromlist=["app"]).app)
        return self[name]


def _scripts() -> _Scripts:
    return _Scripts()


def _invocations(script: str) -> list[list[str]]:
    """Every erase-* command line in a `run:` script, as tokens up to the first shell operator."""
    text = script.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.split(" #")[0]
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        for i, tok in enumerate(tokens):
            if tok.startswith("erase-"):
                args = []
                for t in tokens[i + 1:]:
                    if t in _SHELL_OPS or t.startswith(">"):
                        break
                    args.append(t)
                found.append([tok, *args])
    return found


def _check_invocation(tokens: list[str], commands: dict) -> None:
    # typer may carry its own copy of click: duck-type its command objects
    name, args = tokens[0], tokens[1:]
    assert name in commands, f"{name}: no such console script"
    cmd = commands[name]
    if getattr(cmd, "commands", None) and args and not args[0].startswith("-"):
        assert args[0] in cmd.commands, f"{name} {args[0]}: no such subcommand"
        cmd, args = cmd.commands[args[0]], args[1:]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    used = {a.split("=")[0] for a in args if a.startswith("-")}
    assert used <= known, f"{' '.join(tokens)}: unknown option(s) {sorted(used - known)}"
    for p in cmd.params:
        if p.param_type_name == "option" and p.required:
            assert set(p.opts) & used, f"{' '.join(tokens)}: missing {p.opts[0]}"


def test_workflow_runs_only_commands_and_options_that_exist():
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"schedule", "workflow_dispatch", "push"} <= set(triggers)
    assert "revision" in triggers["workflow_dispatch"]["inputs"]
    steps = [s for job in flow["jobs"].values() for s in job["steps"]]
    runs = [s["run"] for s in steps if "run" in s]
    invocations = [inv for r in runs for inv in _invocations(r)]
    commands = _scripts()
    for inv in invocations:
        _check_invocation(inv, commands)
    called = {(inv[0], inv[1] if len(inv) > 1 and not inv[1].startswith("-") else None) for inv in invocations}
    assert {("erase-calibrate", "check"), ("erase-calibrate", None), ("erase-profile", "validate")} <= called
    assert any("--device" in inv and "cuda" in inv for inv in invocations)
    assert any(s.get("uses", "").startswith("peter-evans/create-pull-request") for s in steps)


def test_invocation_checker_catches_mistakes():
    commands = _scripts()
    for bad in (["erase-calibrate", "chek", "--model", "m"], ["erase-calibrate", "--modle", "m"],
                ["erase-calibrate", "check", "--model", "m"], ["erase-nope"]):
        with pytest.raises(AssertionError):
            _check_invocation(bad, commands)
    _check_invocation(["erase-calibrate", "finalize", "--study-name", "s", "--out=o"], commands)


def test_help_lists_subcommands_options_and_exit_codes(capsys):
    code, stdout, _ = _cli(["--help"], capsys)
    assert code == 0
    for word in ("check", "finalize", "--model", "--iters", "--storage", "--study-name", "--if-stale", "3 stale"):
        assert word in stdout, word
    code, stdout, _ = _cli(["check", "--help"], capsys)
    assert code == 0 and "Exit codes: 0 current, 3 stale" in stdout


def test_revision_of_a_local_folder_is_a_config_digest(tmp_path):
    import json

    from erase_calibrate.search.staleness import release_series
    from erase_calibrate.models.identity import config_digest, model_revision

    config = {"model_type": "qwen2_5_vl", "hidden_size": 64, "transformers_version": "5.0.0"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    first = model_revision(str(tmp_path))
    assert first.startswith("config-sha256:") and len(first) == len("config-sha256:") + 16
    (tmp_path / "config.json").write_text(json.dumps({**config, "transformers_version": "5.9.0"}, indent=2))
    assert config_digest(tmp_path) == first  # re-saved by a newer transformers: the same model
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_size": 128}))
    assert config_digest(tmp_path) != first
    snapshot = tmp_path / "models--o--m" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config))
    assert model_revision(str(snapshot)) == "a" * 40  # a hub-cache folder: its commit
    assert release_series("0.1.3") == "0.1" != release_series("0.2.0")
    assert release_series("1.4.2") == release_series("1.0.0") == "1"


def test_a_worker_with_other_options_is_refused(tmp_path):
    import dataclasses

    from erase_calibrate.search.run import CalibrationConfig

    study = open_study(str(tmp_path / "s.journal"), "setup", tmp_path, seed=0)
    template = erase.load_profile("qwen2.5-vl-7b")
    config = CalibrationConfig(model="m", benchmarks=["chartqa"], study_name="setup")
    record.save_setup(study, record.StudySetup.from_config(config, template))
    record.save_setup(study, record.StudySetup.from_config(dataclasses.replace(config, iters=7), template))  # fine
    with pytest.raises(erase.EraseError, match=r"started with alpha 0.65, this run has 0.5"):
        record.save_setup(study, record.StudySetup.from_config(dataclasses.replace(config, alpha=0.5), template))
    other = template.replace(model=template.model.__class__(id="m", fingerprint=template.model.fingerprint, revision="x"))
    with pytest.raises(erase.EraseError, match="model revision"):
        record.save_setup(study, record.StudySetup.from_config(config, other))
    assert record.load_setup(study).template_profile() == template
