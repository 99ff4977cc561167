"""The app layer of the command lines (:mod:`interp_lib.cli`): flags, config schema,
files, run folder, error policy."""

from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest
import torch

from interp_lib import cli
from interp_lib.cli.config import REQUIRED


def _f(a: int, b: float = 0.5, *, c: str = "x", flag: bool = False, n: int | None = None,
       d: dict | None = None, seq: int | list[int] = 1, gen: torch.Generator | None = None):  # fmt: skip
    """A library function whose signature the schema is read from."""


@dataclasses.dataclass
class _D:
    epochs: int = 3
    lr: float = 1e-3


def test_keys_of_reads_types_and_defaults_from_the_signature():
    keys = cli.keys_of(_f, b={"minimum": 0, "maximum": 1}, c={"choices": ("x", "y")})
    assert set(keys) == {"a", "b", "c", "flag", "n", "d", "seq"}  # a Generator is not TOML
    assert keys["a"].types == (int,) and keys["a"].default is REQUIRED
    assert keys["a"].minimum == 0  # integers are counts, sizes or seeds
    assert keys["seq"].types == (int, list) and keys["seq"].items is int
    assert cli.keys_of(_D)["epochs"] == cli.Key((int,), 3, minimum=0)
    with pytest.raises(ValueError, match="no parameters \\['typo'\\]"):
        cli.keys_of(_f, skip=("typo",))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"a": "2"}, "t.a must be an integer >= 0, got '2' \\(a string\\)"),
        ({"a": 2.5}, "t.a must be an integer >= 0, got 2.5 \\(a number\\)"),
        ({"a": True}, "t.a must be an integer >= 0, got True"),
        ({"a": -1}, "t.a must be an integer >= 0, got -1"),
        ({"a": 1, "b": 2}, "t.b must be a number in \\[0, 1\\], got 2"),
        ({"a": 1, "c": "z"}, "t.c must be one of 'x', 'y', got 'z'"),
        ({"a": 1, "seq": [1, "2"]}, "t.seq must be"),
        ({"a": 1, "flg": True}, "unknown key t.flg \\(did you mean flag\\?\\)"),
        ({}, "t.a is required"),
    ],
)
def test_check_table_names_the_key_expected_and_got(values, message):
    keys = cli.keys_of(_f, b={"minimum": 0, "maximum": 1}, c={"choices": ("x", "y")})
    with pytest.raises(ValueError, match=message):
        cli.check_table("t", values, keys)


def test_check_table_fills_defaults_and_widens_integers_to_floats():
    out = cli.check_table("t", {"a": 2, "b": 1}, cli.keys_of(_f))
    assert out["b"] == 1.0 and isinstance(out["b"], float)
    assert out["c"] == "x" and out["n"] is None


def test_read_toml_errors_are_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli.read_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[t]\nname = '\xff\xfe'\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        cli.read_toml(bad)
    bad.write_text("[t\n")
    with pytest.raises(ValueError, match=r"not valid TOML.*line 1"):
        cli.read_toml(bad)
    bad.write_text("[tt]\n")
    with pytest.raises(ValueError, match="unknown table \\[tt\\] \\(did you mean \\[t\\]\\?\\)"):
        cli.load_config(bad, {"t": cli.keys_of(_D)})


def test_write_json_and_csv_are_atomic_and_complete(tmp_path, monkeypatch):
    path = cli.write_json(tmp_path / "a.json", {"x": (1, float("nan")), "p": tmp_path})
    assert json.loads(path.read_text()) == {"x": [1, None], "p": str(tmp_path)}
    cli.write_csv(tmp_path / "h.csv", [{"b": 1, "a": 2}, {"a": 3}])
    assert (tmp_path / "h.csv").read_text() == "a,b\n2,1\n3,\n"
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    cli.write_json(tmp_path / "a.json", {"y": 1})
    assert calls  # fsynced (the file, then its folder)
    assert json.loads((tmp_path / "a.json").read_text()) == {"y": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "h.csv"]  # no temporaries


def test_run_folder_confines_every_output(tmp_path):
    folder = cli.RunFolder(tmp_path / "run")
    assert folder.path("a", "b.pt") == tmp_path / "run" / "a" / "b.pt"
    for escape in ("../x.pt", "a/../../x.pt", str(tmp_path / "x.pt")):
        with pytest.raises(cli.UsageError, match="outside --out"):
            folder.path(escape)
    (tmp_path / "run" / "link").symlink_to(tmp_path)
    with pytest.raises(cli.UsageError, match="outside --out"):
        folder.path("link", "x.pt")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        cli.RunFolder(tmp_path / "file")


def test_run_folder_records_and_compares_settings(tmp_path):
    folder = cli.RunFolder(tmp_path)
    settings = {"seed": 0, "fit": {"epochs": 2, "lr": 0.1}}
    assert folder.begin(settings, resume=True, overwrite=False) is False  # nothing to resume
    folder.record(settings, ["train"])
    meta = json.loads((tmp_path / cli.METADATA).read_text())
    assert meta["settings"] == settings and meta["command_line"][1:] == ["train"]
    assert set(meta["versions"]) == {"python", "interp_lib", "torch", "torchvision"}
    assert folder.begin(settings, resume=True, overwrite=False) is True
    with pytest.raises(FileExistsError, match="--resume to continue"):
        folder.begin(settings, resume=False, overwrite=False)
    other = {"seed": 1, "fit": {"epochs": 3, "lr": 0.1}}
    with pytest.raises(ValueError, match=r"fit.epochs \(2 -> 3\), seed \(0 -> 1\)"):
        folder.begin(other, resume=True, overwrite=False)
    assert folder.begin(other, resume=False, overwrite=True) is False
    with pytest.raises(cli.UsageError, match="pick one"):
        folder.begin(other, resume=True, overwrite=True)
    folder.check(settings)  # versions and time are not compared
    with pytest.raises(ValueError, match="seed"):
        folder.check(other)
    with pytest.raises(FileNotFoundError, match="run `train` first"):
        cli.RunFolder(tmp_path / "empty").check(settings)


def test_resolve_device():
    assert cli.resolve_device("cpu") == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert cli.resolve_device("auto").type == want
    with pytest.raises(cli.UsageError, match="not a device name"):
        cli.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(cli.UsageError, match="CUDA is not available"):
            cli.resolve_device("cuda")


def test_run_command_prints_one_line_and_exits_2(capsys):
    def body(argv):
        raise ValueError("bad\nvalue")

    assert cli.run_command(body, []) == cli.EXIT_USAGE
    assert capsys.readouterr().err == "error: bad value\n"
    with pytest.raises(ValueError):
        cli.run_command(body, ["--debug"])

    def interrupted(argv):
        raise KeyboardInterrupt

    assert cli.run_command(interrupted, [], interrupted="stopped; --resume") == 130
    assert capsys.readouterr().err == "stopped; --resume.\n"

    def bug(argv):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):  # not a user error: the traceback stays
        cli.run_command(bug, [])


def test_argument_errors_are_usage_errors():
    p = cli.ArgumentParser(prog="x")
    p.add_argument("--k", type=cli.positive_int)
    with pytest.raises(cli.UsageError, match="--k: expected an integer >= 1, got 0"):
        p.parse_args(["--k", "0"])


def test_help_says_each_default_once_and_none_never():
    from interp_lib.profile.cli import _parser

    text = " ".join(_parser().format_help().split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: the paper's checkpoints)" in text
    assert not re.search(r"\(default: [^)]*\) \(default:", text)  # said twice
    assert "(default: 500)" in text  # an actual default is still said
