"""Finding model files, reading specs and refusing unsafe weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from py_bridge.errors import ModelNotFoundError, UnsafeModelError
from py_bridge.loading import (
    BUNDLED_MODEL_ID,
    ModelRef,
    architecture_atom,
    check_weights_safe,
    model_spec,
    resolve,
)


@pytest.mark.parametrize(
    ("class_name", "atom"),
    [
        # The suffix rules of Bumblebee's class map (bumblebee_api.md §2.3).
        ("BertModel", "base"),
        ("BertForSequenceClassification", "for_sequence_classification"),
        ("BertForTokenClassification", "for_token_classification"),
        ("BertForMaskedLM", "for_masked_language_modeling"),
        ("BertForQuestionAnswering", "for_question_answering"),
        ("BertForMultipleChoice", "for_multiple_choice"),
        ("BertForPreTraining", "for_pre_training"),
        ("BertForNextSentencePrediction", "for_next_sentence_prediction"),
        ("BertLMHeadModel", "for_causal_language_modeling"),
        ("GPT2LMHeadModel", "for_causal_language_modeling"),
        ("LlamaForCausalLM", "for_causal_language_modeling"),
        ("WhisperForConditionalGeneration", "for_conditional_generation"),
        ("ViTForImageClassification", "for_image_classification"),
        ("DeiTForImageClassificationWithTeacher", "for_image_classification_with_teacher"),
        ("ViTForMaskedImageModeling", "for_masked_image_modeling"),
        ("T5EncoderModel", "encoder"),
        ("Dinov2Backbone", "backbone"),
        ("CLIPVisionModelWithProjection", "for_embedding"),
        ("DPTForDepthEstimation", "for_depth_estimation"),
        (None, "base"),
    ],
)
def test_architecture_atom_follows_bumblebee_suffix_rules(class_name: str | None, atom: str) -> None:
    assert architecture_atom(class_name) == atom


def test_model_spec_reads_config_without_weights(tmp_path: Path) -> None:
    config = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
        "max_position_embeddings": 128,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "tokenizer.json").write_text("{}")
    spec = model_spec(tmp_path)
    assert spec["architecture"] == "for_sequence_classification"
    assert spec["hf_architecture"] == "BertForSequenceClassification"
    assert spec["id_to_label"] == {0: "NEGATIVE", 1: "POSITIVE"}
    assert spec["max_positions"] == 128
    assert spec["has_tokenizer"] is True
    assert spec["has_featurizer"] is False
    assert model_spec(tmp_path, "base")["architecture"] == "base"


def test_resolve_refuses_missing_directories_and_non_model_directories(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve(ModelRef(model=str(tmp_path / "missing")))
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve(ModelRef(model=str(tmp_path)))


def test_resolve_reports_an_uncached_hub_model_offline(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="nobody/no-such-model"):
        resolve(ModelRef(model="nobody/no-such-model", offline=True, cache_dir=str(tmp_path)))


def test_the_bundled_model_answers_with_and_without_its_hub_id() -> None:
    bundled = resolve(ModelRef())
    assert (bundled / "config.json").is_file()
    assert resolve(ModelRef(model=BUNDLED_MODEL_ID)) == bundled


def test_pickled_weights_need_the_opt_in(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(UnsafeModelError, match="allow-pickle"):
        check_weights_safe(tmp_path, allow_pickle=False)
    check_weights_safe(tmp_path, allow_pickle=True)
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_weights_safe(tmp_path, allow_pickle=False)
