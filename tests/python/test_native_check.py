"""``bridge native-check`` and its table, against the Bumblebee API reference.

The reference (``shared/reference/bumblebee_api.md``, outside the repository)
was written from Bumblebee's source: §2.3 lists the 145 classes of
``@transformers_class_to_model`` with their modules and the rules that give
each its architecture atom, §1.1 the architecture each serving requires. The
tests parse those tables here, independently of ``py_bridge.native_check``,
and compare them with ``protocols/bumblebee_architectures.tsv`` class by class.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiny_models import tiny_model

from py_bridge import native_check
from py_bridge.etf import Atom, decode

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "bumblebee_api.md"
BRIDGE = Path(sys.executable).with_name("bridge")


def _reference_text() -> str:
    if not REFERENCE.is_file():
        pytest.skip(f"the Bumblebee API reference is not at {REFERENCE}; these tests compare the table with it")
    return REFERENCE.read_text(encoding="utf-8")


def _table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            # Cells may hold escaped pipes ("`:softmax \\| :sigmoid`").
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
    return rows[1:]  # without the header row


def _suffix_atom(name: str) -> str:
    # The rules as §2.3 states them, below its table.
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "for_causal_language_modeling"
    if name.endswith("ForMaskedLM"):
        return "for_masked_language_modeling"
    head = re.search(r"For([A-Za-z]+)$", name)
    if head:
        return "for_" + re.sub(r"(?<!^)(?=[A-Z])", "_", head.group(1)).lower()
    assert name.endswith("Model"), name
    return "base"


def reference_classes() -> dict[str, tuple[str, str]]:
    """Class name -> (module, architecture), from §2.3 of the reference."""
    section = _reference_text().split("### 2.3", 1)[1].split("\nThe architecture atom", 1)[0]
    classes: dict[str, tuple[str, str]] = {}
    for module, names in _table_rows(section):
        # A class is in backticks, optionally followed by its atom in parentheses.
        for match in re.finditer(r"`(\w+)`(?:\s*\(:(\w+))?", names):
            name, explicit = match.groups()
            classes[name] = (f"Bumblebee.{module}", explicit or _suffix_atom(name))
    return classes


def reference_serving_architectures() -> dict[str, set[str] | None]:
    """Serving ``Module.function/arity`` -> the architectures it requires (None: any), from §1.1."""
    section = _reference_text().split("### 1.1", 1)[1].split("### 1.2", 1)[0]
    required: dict[str, set[str] | None] = {}
    for function, architectures, _options in _table_rows(section):
        match = re.match(r"`([\w.]+)\(.*\)`\s*((?:/\d,?)+)", function)
        assert match, function
        arity = max(int(a) for a in re.findall(r"\d+", match.group(2)))
        atoms = set(re.findall(r":(\w+)", architectures))
        required[f"{match.group(1)}/{arity}"] = atoms or None
    return required


@pytest.fixture(scope="module")
def table() -> native_check.Table:
    return native_check.load_table()


class TestTable:
    def test_has_every_class_of_the_reference_with_its_module_and_architecture(self, table):
        reference = reference_classes()
        assert len(reference) == 145
        assert sorted(table.entries) == sorted(reference)
        for name, (module, architecture) in reference.items():
            entry = table.entries[name]
            assert (entry.module, entry.architecture) == (module, architecture), name

    def test_every_listed_serving_accepts_the_architecture_it_is_listed_for(self, table):
        required = reference_serving_architectures()
        for entry in table.entries.values():
            for serving in entry.servings:
                assert serving in required, f"{entry.hf_architecture}: {serving} is not a Bumblebee serving"
                atoms = required[serving]
                assert atoms is None or entry.architecture in atoms, (entry.hf_architecture, serving)

    def test_names_the_bumblebee_version_it_reflects(self, table):
        assert table.version == "0.7.0"
        assert table.commit == "d0774e8"
        assert "0.7.0" in _reference_text() and "d0774e8" in _reference_text()

    def test_parse_serving(self):
        assert native_check.parse_serving("Bumblebee.Diffusion.StableDiffusion.text_to_image/6") == (
            "Bumblebee.Diffusion.StableDiffusion",
            "text_to_image",
            6,
        )


class TestCheck:
    def test_a_listed_class_is_native_with_its_servings(self, table):
        answer = native_check.check({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}, table)
        assert answer.native
        assert (answer.module, answer.architecture) == ("Bumblebee.Text.Qwen3", "for_causal_language_modeling")
        assert answer.servings == ("Bumblebee.Text.generation/4", "Bumblebee.Text.text_reranking_qwen3/3")

    def test_another_head_of_a_known_family_names_the_module_and_its_heads(self, table):
        answer = native_check.check({"architectures": ["LlamaForQuestionAnswering"], "model_type": "llama"}, table)
        assert not answer.native
        assert answer.closest_module == "Bumblebee.Text.Llama"
        assert answer.closest_heads == ("base", "for_causal_language_modeling", "for_sequence_classification")
        assert "LlamaForQuestionAnswering" in answer.reason

    def test_the_model_type_finds_the_family_when_the_class_name_does_not(self, table):
        answer = native_check.check({"architectures": ["XLMRobertaForFancyHead"], "model_type": "xlm-roberta"}, table)
        assert answer.closest_module == "Bumblebee.Text.Roberta"

    def test_an_unknown_family_has_no_closest_module(self, table):
        answer = native_check.check({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}, table)
        assert not answer.native and answer.closest_module is None

    @pytest.mark.parametrize("classes", [[], ["BertModel", "BertForMaskedLM"]])
    def test_bumblebee_needs_exactly_one_class(self, table, classes):
        answer = native_check.check({"architectures": classes, "model_type": "bert"}, table)
        assert not answer.native
        assert "architecture class" in answer.reason
        assert answer.closest_module == "Bumblebee.Text.Bert"

    def test_an_architecture_override_the_module_has_is_native_with_a_load_option(self, table):
        config = {"architectures": ["BertModel"], "model_type": "bert"}
        answer = native_check.check(config, table, architecture="for_token_classification")
        assert answer.native
        assert answer.load_options == {"architecture": "for_token_classification"}
        assert answer.servings == ("Bumblebee.Text.token_classification/3",)

    def test_an_architecture_override_the_module_lacks_is_not_native(self, table):
        config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}
        answer = native_check.check(config, table, architecture="for_question_answering")
        assert not answer.native
        assert "no :for_question_answering head" in answer.reason


def _bridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BRIDGE), "native-check", *args], capture_output=True, text=True, timeout=120)


class TestCommand:
    def test_a_supported_tiny_model_is_native(self):
        out = _bridge("--model", str(tiny_model("bert_sequence_classification")), "--json")
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer["native"] is True
        assert answer["hf_architecture"] == "BertForSequenceClassification"
        assert answer["module"] == "Bumblebee.Text.Bert"
        assert answer["architecture"] == "for_sequence_classification"
        assert "Bumblebee.Text.text_classification/3" in answer["servings"]

    def test_an_unsupported_tiny_model_is_not_yet_native_and_named(self):
        path = tiny_model("deberta_v2_sequence_classification")
        assert json.loads((path / "config.json").read_text())["architectures"] == ["DebertaV2ForSequenceClassification"]
        out = _bridge("--model", str(path), "--json")
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer["native"] is False
        assert answer["hf_architecture"] == "DebertaV2ForSequenceClassification"
        assert answer["model_type"] == "deberta-v2"
        human = _bridge("--model", str(path))
        assert human.stdout.startswith("Not yet: DebertaV2ForSequenceClassification")

    def test_human_output_names_the_module_architecture_and_servings(self):
        out = _bridge("--model", str(tiny_model("bert_sequence_classification")))
        assert "supported natively by Bumblebee 0.7.0" in out.stdout
        assert "Bumblebee.Text.Bert" in out.stdout
        assert ":for_sequence_classification" in out.stdout
        assert "Bumblebee.Text.zero_shot_classification/4" in out.stdout

    def test_etf_writes_one_frame_on_fd_4(self):
        read_fd, write_fd = os.pipe()
        model = tiny_model("bert_sequence_classification")
        # As the shim's port does: the frame goes to fd 4, here the pipe's write end.
        proc = subprocess.run(
            ["bash", "-c", f'exec "$0" native-check --model "$1" --etf 4>&{write_fd}', str(BRIDGE), str(model)],
            pass_fds=(write_fd,),
            capture_output=True,
            timeout=120,
        )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            frame = pipe.read()
        assert proc.returncode == 0, proc.stderr
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        ok, (tag, answer) = decode(frame[4:])
        assert ok == Atom("ok")
        assert tag == Atom("native")
        assert answer["module"] == b"Bumblebee.Text.Bert"
        assert answer["architecture"] == b"for_sequence_classification"

    def test_a_missing_model_is_an_error(self, tmp_path):
        out = _bridge("--model", str(tmp_path / "nothing"))
        assert out.returncode == 1
        assert "model_not_found" in out.stderr
