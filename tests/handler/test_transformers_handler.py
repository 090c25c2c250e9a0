"""A handler written for TorchServe, loading a transformers model from model_dir, runs in the dry run
with no torchserve installed. The model is a tiny BERT built from a config: nothing is downloaded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ts_notebook.handler import dry_run, make_request

transformers = pytest.importorskip("transformers")

HANDLER = """\
import os

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import load_label_mapping


class TransformersClassifier(BaseHandler):
    def initialize(self, context):
        model_dir = context.system_properties["model_dir"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        self.mapping = load_label_mapping(os.path.join(model_dir, "index_to_name.json"))
        self.initialized = True

    def preprocess(self, data):
        texts = []
        for row in data:
            text = row.get("data") or row.get("body")
            if isinstance(text, (bytes, bytearray)):
                text = text.decode("utf-8")
            texts.append(text)
        return self.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")

    def inference(self, inputs):
        with torch.inference_mode():
            return self.model(**inputs).logits

    def postprocess(self, logits):
        return [self.mapping[str(i)] for i in logits.argmax(dim=-1).tolist()]
"""
WORDS = ["the", "movie", "was", "great", "terrible", "fine", "plot", "acting"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    folder = tmp_path_factory.mktemp("bert")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = transformers.BertTokenizerFast(vocab=vocab)
    config = transformers.BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "index_to_name.json").write_text(json.dumps({"0": "negative", "1": "neutral", "2": "positive"}))
    (folder / "handler.py").write_text(HANDLER)
    return folder


def test_torchserve_transformers_handler_runs_without_torchserve(model_dir: Path) -> None:
    assert importlib.util.find_spec("ts") is None  # no torchserve package in this environment
    texts = ["the movie was great", "terrible acting"]
    requests = [make_request(t, "text/plain") for t in texts]
    trace = dry_run("handler.py", model_dir, requests, model_name="bert", manifest=None)
    assert trace.ok, trace.failure
    assert [s.name for s in trace.stages] == ["initialize", "preprocess", "inference", "postprocess"]
    assert trace.data == [{"body": "the movie was great"}, {"body": "terrible acting"}]
    assert trace.stage("preprocess").summary == (
        "BatchEncoding{input_ids: Tensor[2, 6] int64, token_type_ids: Tensor[2, 6] int64, "
        "attention_mask: Tensor[2, 6] int64}"
    )
    assert trace.stage("preprocess").output["input_ids"][0].tolist() == [2, 5, 6, 7, 8, 3]  # real tokens, no [UNK]
    assert trace.stage("inference").summary.startswith("Tensor[2, 3] float32")

    import torch

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    assert trace.result == [labels[i] for i in logits.argmax(dim=-1).tolist()]
    assert importlib.util.find_spec("ts") is None  # and none left behind
