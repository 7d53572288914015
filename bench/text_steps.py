"""Kim CNN training steps on MR-shaped batches: what the row-lazy Adadelta and the trimmed, length-bucketed
batches buy, each against the plain way in the same process (interleaved rounds, medians).

    python bench/text_steps.py            # 3 rounds of 40 steps per contender
    python bench/text_steps.py --quick    # 2 rounds of 20 steps

Contenders, on one kim_cnn (rand, 300-d, vocabulary 18,765 as MR's nine training folds) and MR's sentence-length
distribution (the real lengths when ../shared/data/text/mr is present, else lengths drawn to match it):
  dense:  torch.optim.Adadelta, every batch padded to 56 tokens (Kim's code)
  lazy:   cnnlab's Adadelta (row-lazy embedding update), padded to 56
  lazy + trimmed: cnnlab's Adadelta, batches from 20-batch chunks sorted by length, cut to the longest + 1
Last line: `speed-up: X` (dense step time / lazy + trimmed step time).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from benchlib import append_results, choose_threads, load_average, markdown_table, median

from cnnlab.models import create
from cnnlab.train.adadelta import Adadelta, embedding_parameters

VOCAB, LENGTH, BATCH = 18_765, 56, 50
MR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "text" / "mr"


def sentence_lengths(count: int, generator: torch.Generator) -> torch.Tensor:
    if MR.is_dir():
        from cnnlab.tasks.text.tokenize import clean_str

        lines = [line for f in sorted(MR.iterdir()) for line in f.read_bytes().decode("latin-1").split("\n") if line]
        lengths = torch.tensor([min(len(clean_str(line).split()), LENGTH) for line in lines])
        return lengths[torch.randint(len(lengths), (count,), generator=generator)]
    return (torch.randn(count, generator=generator) * 9 + 21).round().clamp(2, LENGTH).long()


def batches(steps: int, trimmed: bool, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    lengths = sentence_lengths(steps * BATCH, generator)
    if trimmed:  # what TokenBatches does with bucket=20: sort chunks by length, then cut each batch
        chunks = [lengths[i : i + BATCH * 20].sort().values for i in range(0, len(lengths), BATCH * 20)]
        lengths = torch.cat(chunks)
    out = []
    for i in range(steps):
        part = lengths[i * BATCH : (i + 1) * BATCH]
        ids = torch.randint(2, VOCAB, (BATCH, LENGTH), generator=generator)
        ids[torch.arange(LENGTH) >= part[:, None]] = 0
        width = min(int(part.max()) + 1, LENGTH) if trimmed else LENGTH
        out.append((ids[:, :width], torch.randint(0, 2, (BATCH,), generator=generator)))
    return out


def optimizer(model: torch.nn.Module, lazy: bool) -> torch.optim.Optimizer:
    if not lazy:
        return torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-6)
    tables = embedding_parameters(model)
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if id(p) not in tables]},
        {"params": [p for p in params if id(p) in tables], "lazy_rows": True},
    ]
    return Adadelta(groups, lr=1.0, rho=0.95, eps=1e-6)


def seconds_per_step(lazy: bool, trimmed: bool, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = create("kim_cnn", num_classes=2, vocab_size=VOCAB)
    opt = optimizer(model, lazy)
    data = batches(steps + 3, trimmed, torch.Generator().manual_seed(seed))
    for i, (ids, labels) in enumerate(data):
        if i == 3:  # three warm-up steps
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(ids), labels).backward()
        opt.step()
        model.fc.constrain()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="auto")
    args = parser.parse_args()
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    load = load_average()
    rounds, steps = (2, 20) if args.quick else (3, 40)
    contenders = {"dense, padded to 56": (False, False), "lazy, padded to 56": (True, False)}
    contenders["lazy, trimmed + bucketed"] = (True, True)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(rounds):
        for name, (lazy, trimmed) in contenders.items():
            times[name].append(seconds_per_step(lazy, trimmed, steps, seed=round_index))
    base = median(times["dense, padded to 56"])
    rows = [(name, f"{median(t) * 1000:.1f}", f"{base / median(t):.2f}") for name, t in times.items()]
    table = markdown_table(["contender", "ms per step (median)", "speed-up"], rows)
    print(table)
    append_results(
        "Kim CNN training steps (bench/text_steps.py)",
        threads,
        table,
        [
            f"{rounds} rounds of {steps} steps, batch {BATCH}, vocabulary {VOCAB}, MR lengths"
            + (" (real)" if MR.is_dir() else " (drawn)")
        ],
        load_before=load,
    )
    print(f"speed-up: {base / median(times['lazy, trimmed + bucketed']):.2f}")


if __name__ == "__main__":
    main()
