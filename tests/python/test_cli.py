"""The `bridge` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from py_bridge import PROTOCOL_VERSION, __version__
from py_bridge.etf import decode
from py_bridge.framing import HEADER

BRIDGE = [sys.executable, "-m", "py_bridge"]


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BRIDGE, *args], capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]


def test_help_explains_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "inspect", "tasks"):
        assert command in result.stdout
    serve_help = run("serve", "--help").stdout
    assert "--model" in serve_help and "--task" in serve_help and "bundled" in serve_help


def test_version_names_the_protocol() -> None:
    result = run("--version")
    assert __version__ in result.stdout and f"protocol {PROTOCOL_VERSION}" in result.stdout


def test_tasks_lists_the_foundation_tasks() -> None:
    names = run("tasks").stdout.split()
    assert "text_embedding" in names and "text_classification" in names
    assert "base" not in names


def test_inspect_prints_the_bundled_models_spec_as_json() -> None:
    result = run("inspect")
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)
    assert spec["hf_architecture"] == "BertModel"
    assert spec["architecture"] == "base"
    assert spec["has_tokenizer"] is True


def test_inspect_reports_a_missing_model_as_an_error(tmp_path: Path) -> None:
    result = run("inspect", "--model", str(tmp_path / "nope"))
    assert result.returncode != 0
    assert "model_not_found" in result.stderr


def test_inspect_etf_writes_one_frame_on_fd_4(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    # The child gets the pipe's write end as fd 4, as an Erlang port would give it.
    code = (
        "import os, sys; os.dup2(int(sys.argv[1]), 4); "
        "from py_bridge.cli import main; main(['inspect', '--etf'], standalone_mode=False)"
    )
    subprocess.run([sys.executable, "-c", code, str(write_fd)], pass_fds=(write_fd,), check=True, timeout=120)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    (length,) = HEADER.unpack(data[:4])
    assert length == len(data) - 4
    tag, spec = decode(data[4:])
    assert tag == "ok"
    # Strings travel as binaries, which the codec decodes to bytes.
    assert spec["hf_architecture"] == b"BertModel"


def test_serve_without_port_descriptors_says_how_to_run_it() -> None:
    # Run with fds 3/4 closed: a person typing `bridge serve` gets told what it is.
    result = subprocess.run(
        [*BRIDGE, "serve"], capture_output=True, text=True, timeout=60, close_fds=True, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2
    assert "Erlang port program" in result.stderr
    assert "--stdio" in result.stderr
