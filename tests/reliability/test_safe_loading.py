"""Safe loading (issue #10): checkpoints with ``weights_only``, YAML with the safe loader and strict validation, case
paths confined to their roots, and case ids that cannot steer outputs out of the output folder."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
import yaml
from reliability_battery import PREDICT, TEMP_NAME, Exploit
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import SEQUENCES
from gliomics.errors import CheckpointError, ConfigError, InputError
from gliomics.inference.predictor import Predictor
from gliomics.io import discover_cases
from gliomics.presets import apply_overrides, load_preset
from gliomics.runtime.checkpoint import load_checkpoint
from gliomics_testing import make_brats_case

SRC = Path(__file__).resolve().parents[2] / "src" / "gliomics"


def _calls(tree: ast.AST, module: str, names: set[str]) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in names and isinstance(node.func.value, ast.Name) and node.func.value.id == module]


def test_the_source_never_unpickles_untrusted_files():
    """Every torch.load passes weights_only=True; no yaml.load/unsafe_load, pickle.load or np.load(allow_pickle)."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(SRC.parent)
        for call in _calls(tree, "torch", {"load"}):
            flags = {k.arg: k.value for k in call.keywords}
            if not (isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True):
                problems.append(f"{where}:{call.lineno}: torch.load without weights_only=True")
        for call in _calls(tree, "yaml", {"load", "unsafe_load", "full_load", "load_all", "unsafe_load_all"}):
            problems.append(f"{where}:{call.lineno}: yaml.{call.func.attr} (use yaml.safe_load)")
        for call in _calls(tree, "pickle", {"load", "loads"}) + _calls(tree, "np", {"load"}):
            flags = {k.arg: k.value for k in call.keywords}
            if call.func.value.id == "pickle" or (isinstance(flags.get("allow_pickle"), ast.Constant)
                                                   and flags["allow_pickle"].value):
                problems.append(f"{where}:{call.lineno}: {call.func.value.id}.{call.func.attr} can run code")
    assert not problems, "\n".join(problems)


def test_a_checkpoint_carrying_a_pickled_object_is_refused_and_never_run(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": Exploit(sentinel)}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load: the checkpoint carries pickled objects"):
        load_checkpoint(path)
    assert not sentinel.exists()
    with pytest.raises(CheckpointError, match="evil.pt"):
        Predictor("cpu").load(path)
    assert not sentinel.exists()
    # the payload is real: running what unpickling would run creates the folder
    func, args = Exploit(sentinel).__reduce__()
    func(*args)
    assert sentinel.is_dir()


def test_a_checkpoint_whose_config_has_unknown_keys_is_refused(tiny_run, tmp_path):
    state = load_checkpoint(tiny_run / "best.pt")
    state["config"]["train"]["secret_option"] = 1
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd\.pt: does not match its model.*secret_option"):
        Predictor("cpu").load(tmp_path / "odd.pt")


def test_yaml_python_tags_are_refused_in_presets_and_overrides(tmp_path):
    sentinel = tmp_path / "pwned"
    preset = tmp_path / "evil.yaml"
    preset.write_text(f"inherits_from: mgmtnet_cpu\ndescription: !!python/object/apply:os.mkdir ['{sentinel}']\n")
    with pytest.raises(ConfigError, match=r"evil\.yaml: cannot read YAML.*python/object/apply:os\.mkdir"):
        load_preset(preset)
    assert not sentinel.exists()
    # an override value is parsed as YAML too; a tag stays text, it is never constructed
    text = f"!!python/object/apply:os.mkdir ['{sentinel}']"
    cfg = apply_overrides(load_preset("mgmtnet_cpu"), [f"description={text}"])
    assert cfg.description == text and not sentinel.exists()
    with pytest.raises(ConfigError, match=r"train\.patch_size"):
        apply_overrides(load_preset("mgmtnet_cpu"), [f"train.patch_size={text}"])
    # the payload is real: an unsafe loader runs it
    yaml.unsafe_load(preset.read_text())
    assert sentinel.is_dir()


@pytest.mark.parametrize(("text", "key"), [
    ("train:\n  epochs: 3\n  epoch: 4\n", "train.epoch"),
    ("model:\n  name: mgmtnet_cpu\n  params: {hidden_size: 3}\n", "model.params.hidden_size"),
    ("loss:\n  lambda_dice: many\n", "loss.lambda_dice"),
    ("optimizer: sgd\n", "optimizer"),
])
def test_configs_are_validated_strictly(tmp_path, text, key):
    preset = tmp_path / "run.yaml"
    preset.write_text("inherits_from: mgmtnet_cpu\n" + text)
    with pytest.raises(ConfigError, match=rf"run\.yaml: {key.replace('.', '[.]')}"):
        load_preset(preset)


def _row(case_id: str, folder: str) -> str:
    return ",".join([case_id, *(f"{folder}/{case_id}-{s}.nii.gz" for s in SEQUENCES)])


def test_case_paths_stay_within_their_roots_unless_absolute(tmp_path):
    make_brats_case(tmp_path / "data", "CASE-000")
    lists = tmp_path / "lists"
    lists.mkdir()
    manifest = lists / "manifest.csv"
    header = "case_id," + ",".join(SEQUENCES)
    manifest.write_text(f"{header}\n{_row('CASE-000', '../data/CASE-000')}\n")
    with pytest.raises(InputError, match=r"manifest\.csv: row 2 \(case CASE-000\): path '\.\./data.*points outside"):
        discover_cases(manifest)
    sneaky = f"{header}\n{_row('CASE-000', 'sub/../../data/CASE-000')}\n"
    manifest.write_text(sneaky)
    with pytest.raises(InputError, match="points outside"):
        discover_cases(manifest)
    manifest.write_text(f"{header}\n{_row('CASE-000', str(tmp_path / 'data' / 'CASE-000'))}\n")  # explicit
    assert discover_cases(manifest)[0].images["t1c"] == tmp_path / "data" / "CASE-000" / "CASE-000-t1c.nii.gz"

    datalist = lists / "datalist.json"
    images = [f"../data/CASE-000/CASE-000-{s}.nii.gz" for s in SEQUENCES]
    datalist.write_text(json.dumps({"training": [{"image": images}]}))
    with pytest.raises(InputError, match=r"datalist\.json training\[0\]: path '\.\./data.*points outside"):
        discover_cases(datalist)
    datalist.write_text(json.dumps({"dataroot": str(tmp_path / "data"), "training": [{"image": [
        f"CASE-000/CASE-000-{s}.nii.gz" for s in SEQUENCES]}]}))
    assert discover_cases(datalist)[0].case_id == "CASE-000"


def test_a_case_id_cannot_steer_outputs_out_of_the_output_folder(tiny_run, tmp_path):
    make_brats_case(tmp_path, "CASE-000")
    manifest = tmp_path / "manifest.csv"
    files = [f"CASE-000/CASE-000-{s}.nii.gz" for s in SEQUENCES]
    manifest.write_text("case_id," + ",".join(SEQUENCES) + "\n" + ",".join(["../../escaped", *files]) + "\n")
    out = tmp_path / "deep" / "pred"
    result = CliRunner().invoke(app, ["predict", "-i", str(manifest), "-o", str(out), "-m", str(tiny_run), *PREDICT])
    assert result.exit_code == 2
    assert "invalid case id '../../escaped'" in result.stderr and "manifest.csv" in result.stderr
    assert not list(tmp_path.rglob("escaped*")) and not out.exists()
    assert not [p for p in tmp_path.rglob("*") if TEMP_NAME.search(p.name)]

