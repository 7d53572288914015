"""Profile of cnnlab's training step: where the time of a `fit` step goes, and what each candidate change buys.

    python bench/profile_fit.py            # LeNet-5 modern on MNIST (batch 256), ResNet-20 (batch 128)
    python bench/profile_fit.py --quick

1. Trainer pieces, micro-timed (microseconds per step, tight loops): the LR scheduler step, on-device metric
   accumulation, the GradScaler wrappers, the built-in callbacks (progress bar included), the Preprocess module,
   Adam with fit's two parameter groups, Adam foreach; each as a fraction of a measured step.
2. Step-time A/B, interleaved in blocks: fit's own step (the Trainer and callbacks that `fit` builds, from
   `build_run`, which builds a run without training it) against the hand-written step; and model/kernel
   variants (channels_last, LeNet-5's identity adaptive pool removed, ReLU after the max-pool, bf16 autocast)
   as ratios to fit's default step.
3. torch.profiler: the ops that take the time in fit's default step.
4. Threads: the hand loop on 1 thread vs all cores, with OpenMP's default (spinning) wait policy and with
   OMP_WAIT_POLICY=PASSIVE, each in a fresh process (on a shared machine, spinning threads lose their core).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import (
    MNIST,
    affine_from,
    append_results,
    choose_threads,
    cores,
    load_average,
    markdown_table,
    median,
    quiet,
    write_cifar_like_npz,
)
from torch import nn

from cnnlab.config import build_dataclass
from cnnlab.train import TrainConfig, TrainingRun, build_run


def fit_run(model: str, data: str, batch: int, threads: int, out: Path, **extra) -> TrainingRun:
    """The run `fit` would train for this config (its Trainer with the built-in callbacks), not trained."""
    values = dict(model=model, data=data, val_split=0.0, epochs=3, batch_size=batch, threads=threads, out=str(out))
    values.update(optimizer={"name": "adam", "lr": 1e-3}, **extra)
    return build_run(build_dataclass(TrainConfig, values), overwrite=True)


def batches_of(trainer, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for x, y in trainer.train_batches():
        out.append((x, y))
        if len(out) == count:
            break
    return out


# -- 1. pieces -------------------------------------------------------------------------------------------------


def per_call_us(fn, calls: int = 2000) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def piece_costs(trainer, batch) -> list[tuple[str, float]]:
    x, y = batch
    model, optimizer, prepare = trainer.model, trainer.optimizer, trainer.context.prepare
    logits = model(prepare(x)).detach()
    loss = F.cross_entropy(logits, y).detach()
    sums = {"loss": torch.zeros(()), "accuracy": torch.zeros((), dtype=torch.long)}

    def metrics() -> None:  # what the classification task's step and the Trainer do with the step's sums
        hard = y.argmax(1) if y.ndim == 2 else y
        step_sums = {"loss": loss * len(y), "accuracy": (logits.argmax(1) == hard).sum()}
        for key, value in step_sums.items():
            sums[key] += value

    scale, shift = affine_from(prepare.shift.flatten().tolist(), [1.0] * prepare.shift.numel())
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    one_group = torch.optim.Adam(copy.deepcopy(model).parameters(), lr=1e-3)
    foreach = torch.optim.Adam(copy.deepcopy(model).parameters(), lr=1e-3, foreach=True)
    for opt in (one_group, foreach):
        for p in opt.param_groups[0]["params"]:
            p.grad = torch.randn_like(p) * 1e-3
    state = {"step": 0}
    with quiet():
        for callback in trainer.callbacks:
            callback.on_epoch_start(trainer, 1)

    def callbacks() -> None:
        state["step"] += 1
        for callback in trainer.callbacks:
            callback.on_batch_end(trainer, state["step"], len(y))

    with quiet():
        costs = [
            ("LR scheduler step (LambdaLR, schedule none)", per_call_us(trainer.scheduler.step)),
            ("metric accumulation (loss sum, argmax count)", per_call_us(metrics)),
            (
                "GradScaler wrappers, disabled (scale + update)",
                per_call_us(lambda: (trainer.scaler.scale(loss), trainer.scaler.update())),
            ),
            ("built-in callbacks on_batch_end (progress bar each 25)", per_call_us(callbacks, 1000)),
            ("Preprocess module", per_call_us(lambda: prepare(x), 300)),
            ("  the same addcmul by hand", per_call_us(lambda: torch.addcmul(shift, x.float(), scale), 300)),
            ("Adam step, fit's 2 param groups", per_call_us(optimizer.step, 200)),
            ("  Adam step, 1 group", per_call_us(one_group.step, 200)),
            ("  Adam step, foreach=True", per_call_us(foreach.step, 200)),
        ]
        for callback in trainer.callbacks:
            callback.on_epoch_end(
                trainer, 1, {"epoch": 1, "epoch_seconds": 1.0, "train_loss": 1.0, "train_accuracy": 0.5}
            )
    optimizer.zero_grad(set_to_none=True)
    return costs


# -- 2. step A/B -----------------------------------------------------------------------------------------------


class Contender:
    """One way of running a training step, on its own copy of the model and optimizer."""

    def __init__(self, label: str, step) -> None:
        self.label, self.step, self.times = label, step, []


def fit_step(trainer) -> Contender:
    state = {"step": 0}
    trainer.model.train()
    with quiet():  # the progress bar is created here and keeps writing into quiet's buffer
        for callback in trainer.callbacks:
            callback.on_epoch_start(trainer, 1)

    def step(x, y) -> None:
        state["step"] += 1
        output = trainer.train_step((x, y))
        for callback in trainer.callbacks:
            callback.on_batch_end(trainer, state["step"], output.count)

    return Contender("fit's step (Trainer.train_step + callbacks)", step)


def with_threads(contender: Contender, threads: int, restore: int) -> Contender:
    """The same step run on `threads` torch threads (the others keep `restore`)."""
    inner = contender.step

    def step(x, y) -> None:
        torch.set_num_threads(threads)
        try:
            inner(x, y)
        finally:
            torch.set_num_threads(restore)

    contender.step = step
    return contender


def hand_step(label: str, model: nn.Module, mean, std, channels_last=False, bf16=False, foreach=None) -> Contender:
    """The minimal step, optionally with one setting changed."""
    scale, shift = affine_from(mean, std)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=foreach)

    def step(x, y) -> None:
        x = torch.addcmul(shift, x.float(), scale).contiguous(memory_format=memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return Contender(label, step)


def lenet_without_identity_pool(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    model.avgpool = nn.Identity()  # 5x5 -> 5x5 at 28x28 input: an identity that costs a forward and a backward
    return model


def lenet_pool_then_relu(model: nn.Module) -> nn.Module:
    """max-pool before ReLU: the same function (max commutes with a monotone map), ReLU on a 4x smaller map."""
    model = lenet_without_identity_pool(model)
    conv1, relu1, pool1, conv2, relu2, pool2 = model.features
    model.features = nn.Sequential(conv1, pool1, relu1, conv2, pool2, relu2)
    return model


def variants(name: str, trainer, mean, std, compiled: bool) -> list[Contender]:
    base = trainer.unwrapped_model
    contenders = [fit_step(trainer), hand_step("hand-written step", copy.deepcopy(base), mean, std)]
    threads = torch.get_num_threads()
    other = cores() if threads < cores() else 1  # the other sensible choice on this machine
    if other != threads:
        step = hand_step(f"hand step, {other} thread(s) instead of {threads}", copy.deepcopy(base), mean, std)
        contenders.append(with_threads(step, other, threads))
    contenders.append(hand_step("hand step, channels_last", copy.deepcopy(base), mean, std, channels_last=True))
    contenders.append(hand_step("hand step, Adam foreach", copy.deepcopy(base), mean, std, foreach=True))
    if name == "lenet5_modern":
        plain, reordered = lenet_without_identity_pool(base), lenet_pool_then_relu(base)
        contenders.append(hand_step("hand step, no identity adaptive pool", plain, mean, std))
        contenders.append(
            hand_step(
                "hand step, no identity pool + channels_last", copy.deepcopy(plain), mean, std, channels_last=True
            )
        )
        contenders.append(
            hand_step("hand step, no identity pool + max-pool before ReLU + channels_last", reordered, mean, std, True)
        )
    contenders.append(hand_step("hand step, bf16 autocast + channels_last", copy.deepcopy(base), mean, std, True, True))
    if compiled:  # compiling forward + backward takes 10-40 s here: only on request
        contenders.append(hand_step("hand step, torch.compile", torch.compile(copy.deepcopy(base)), mean, std))
    return contenders


def interleaved(contenders: list[Contender], batches, blocks: int, steps: int) -> None:
    """Blocks of `steps` steps per contender, round-robin, order reversed every other block; per-step seconds."""
    for contender in contenders:  # warm-up: oneDNN primitives, allocator
        for x, y in batches[:2]:
            contender.step(x, y)
    for block in range(blocks):
        order = contenders if block % 2 == 0 else contenders[::-1]
        for contender in order:
            start = time.perf_counter()
            for i in range(steps):
                x, y = batches[(block * steps + i) % len(batches)]
                contender.step(x, y)
            contender.times.append((time.perf_counter() - start) / steps)


# -- 3. op profile ---------------------------------------------------------------------------------------------


def op_table(trainer, batches, rows: int = 10) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches[:10]:
            trainer.train_step(batch)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    table = [
        [e.key, f"{e.self_cpu_time_total / 1e3 / 10:.2f}", f"{e.self_cpu_time_total / total:.1%}"]
        for e in events[:rows]
    ]
    return markdown_table(["op (fit's default step)", "ms per step", "share"], table)


# -- 4. threads and OpenMP's wait policy (separate processes: the policy is read when OpenMP starts) ----------


def thread_worker(threads: int, images: int) -> None:
    """Print the hand loop's images/s for LeNet-5 on random MNIST-shaped data (median of epochs 2 and 3)."""
    from benchlib import hand_loop

    from cnnlab.models import create

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (images, 1, 28, 28), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (images,), generator=generator)
    torch.manual_seed(0)
    seconds = hand_loop(create("lenet5_modern"), x, y, [0.13], [0.31], 256, 3)
    print(f"RATE {median([images / s for s in seconds[1:]])}", flush=True)


def thread_policy_table(quick: bool) -> tuple[str, str]:
    """LeNet-5 hand-loop images/s: 1 thread, all cores (OpenMP's default spin-wait), all cores with
    OMP_WAIT_POLICY=PASSIVE; each in a fresh process, rounds alternated; ratios to 1 thread."""
    import os
    import subprocess
    import sys

    settings = [("1 thread", 1, None), (f"{cores()} threads", cores(), None)]
    settings.append((f"{cores()} threads, OMP_WAIT_POLICY=PASSIVE", cores(), "PASSIVE"))
    rates: dict[str, list[float]] = {label: [] for label, _, _ in settings}
    for number in range(1 if quick else 3):
        for label, threads, policy in settings if number % 2 == 0 else settings[::-1]:
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            images = "2048" if quick else "4096"
            command = [sys.executable, __file__, "--thread-worker", str(threads), "--images", images]
            out = subprocess.run(command, env=env, capture_output=True, text=True).stdout
            rates[label] += [float(line.split()[1]) for line in out.splitlines() if line.startswith("RATE ")]
    one = median(rates["1 thread"])
    rows = [[label, median(values), median(values) / one] for label, values in rates.items() if values]
    ratios = ", ".join(f"{row[0]}: {row[2]:.2f}" for row in rows[1:])
    note = f"threads, images/s ratio to 1 thread ({ratios}); load average {load_average():.2f} on {cores()} cores"
    return markdown_table(["LeNet-5 hand loop, batch 256", "images/s", "ratio to 1 thread"], rows), note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--compile", action="store_true", help="also a torch.compile contender (slow to compile)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--thread-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=4096, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.thread_worker:
        thread_worker(args.thread_worker, args.images)
        return
    load_before = load_average()
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    sections, notes = [], []
    with tempfile.TemporaryDirectory(prefix="cnnlab-profile-") as tmp:
        cifar = write_cifar_like_npz(Path(tmp) / "cifar_like.npz", train=1024, test=64)
        workloads = [("lenet5_modern", str(MNIST), 256, dict(train_samples=8192)), ("resnet20", str(cifar), 128, {})]
        for name, data, batch, extra in workloads:
            run = fit_run(name, data, batch, threads, Path(tmp) / name, **extra)
            trainer = run.trainer
            torch.set_num_threads(threads)
            batches = batches_of(trainer, 16)
            # The training split's mean/std in [0, 1] units, as run.json records them (what Preprocess applies).
            mean, std = run.meta["normalization"]["mean"], run.meta["normalization"]["std"]
            contenders = variants(name, trainer, mean, std, args.compile)
            # Short blocks, many of them: the load of other processes changes within seconds here.
            blocks, steps = (10, 3) if args.quick else (24, 3)
            if name == "resnet20":
                blocks, steps = (3, 2) if args.quick else (8, 1)
            interleaved(contenders, batches, blocks, steps)
            base = median(contenders[0].times)
            step_rows = [[c.label, median(c.times) * 1e3, median(c.times) / base] for c in contenders]
            ab = markdown_table([f"{name}, batch {batch}: step", "ms per step", "time / fit's step"], step_rows)
            costs = piece_costs(trainer, batches[0]) if name == "lenet5_modern" else []
            piece_rows = [[label, f"{us:,.1f}", f"{us / (base * 1e6):.2%}"] for label, us in costs]
            pieces = markdown_table(["Trainer piece", "us per step", "of fit's step"], piece_rows) if costs else ""
            ops = op_table(trainer, batches)
            shown = [ab, pieces, ops] if pieces else [ab, ops]
            print(*shown, sep="\n\n", flush=True)
            sections += shown
            overhead = base / median(contenders[1].times)
            notes.append(f"{name}: fit's step takes {overhead:.3f}x the hand-written step's time (same model, batches)")
    if cores() > 1:
        threads_table, threads_note = thread_policy_table(args.quick)
        print(threads_table, flush=True)
        sections.append(threads_table)
        notes.append(threads_note)
    if not args.no_record:
        append_results(
            "Profile of fit's step" + (" (quick)" if args.quick else ""),
            threads,
            "\n\n".join(sections),
            notes,
            load_before,
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
