"""The code the benchmarks' archives ship (models and handlers, as source text) and the requests sent to them.

Kept as text so that the archives are built from exactly this code, and so that a change to it changes
the inputs' fingerprint (``inputs.py``) and rebuilds the cached archives.
"""

from __future__ import annotations

import json

# --- the serving benchmark's models (the notebook benchmark serves the tiny one too)

TINY_BODY = b'{"input": [1, 2, 3, 4]}'
BERT_TEXT = " ".join(f"word{i}" for i in range(40))  # 40 words -> 42 tokens with [CLS] and [SEP]
BERT_BODY = json.dumps({"text": BERT_TEXT}).encode()
BERT_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
    "num_labels": 2,
}
# The lighter BERT-sized model: the same tokenizer, request and width, half the layers. Its handler takes
# about 8 ms in-process at one torch thread here (the current one 16-18 ms), so a server's own cost per
# request weighs about twice as much against it (issue 23).
BERT_SMALL_CONFIG = BERT_CONFIG | {"num_hidden_layers": 2}
BERT_CONFIGS = {"bert": BERT_CONFIG, "bert_small": BERT_SMALL_CONFIG}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

TINY_MODEL = '''"""TinyNet: a 4 -> 8 -> 3 MLP."""

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))
'''

TINY_HANDLER = '''"""Lean handler for TinyNet: JSON {"input": [4 numbers]} -> a list of 3 floats per request."""

import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class TinyHandler(BaseHandler):
    def preprocess(self, data):
        rows = []
        for request in data:
            body = request.get("data")
            if body is None:
                body = request.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            rows.append(body["input"] if isinstance(body, dict) else body)
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, data):
        return data.tolist()
'''

BERT_HANDLER = '''"""Handler for a transformers sequence classifier saved with save_pretrained in model_dir."""

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from ts.torch_handler.base_handler import BaseHandler


class BertHandler(BaseHandler):
    def initialize(self, context):
        model_dir = context.system_properties["model_dir"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        self.initialized = True

    def preprocess(self, data):
        texts = []
        for request in data:
            body = request.get("data")
            if body is None:
                body = request.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = body.decode("utf-8")
            texts.append(body["text"] if isinstance(body, dict) else body)
        return self.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")

    def inference(self, data, *args, **kwargs):
        with torch.inference_mode():
            return self.model(**data).logits

    def postprocess(self, data):
        probs = torch.softmax(data, dim=-1)
        return [{"label": int(p.argmax()), "scores": [round(float(x), 6) for x in p]} for p in probs]
'''


# --- the archive benchmark's input: only built and timed, never served

BIG_MODEL = '''"""BigNet: {n} float32 parameters of {numel:,} elements (~{mb} MB), for archive timing only."""

import torch
from torch import nn


class BigNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{params}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w0[: x.shape[-1]]
'''

BIG_HANDLER = '''"""Trivial handler for BigNet: the archive is timed, never served."""

from ts.torch_handler.base_handler import BaseHandler


class BigHandler(BaseHandler):
    pass
'''
