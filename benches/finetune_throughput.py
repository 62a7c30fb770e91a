"""Fine-tuning throughput of torchvision's ResNet-18, backbone frozen and not, against a bare
PyTorch loop.

Usage: python benches/finetune_throughput.py [--quick] [--device cpu|cuda]

In one process, alternating, on the same random uint8 images (3×64×64, 10 classes) held in
memory, with the same network (torchvision's ``resnet18`` constructor, registered for the bench
by ``_plain_resnet.py``; random weights: the weights do not change the arithmetic), batch
size, AdamW, precision (fp32 on CPU, amp off), memory format (channels-last, as dltool's
``train.channels_last: auto`` feeds a CNN) and one thread (on a shared machine torch's
2-thread OpenMP pool stalls whenever one thread is descheduled, see export_latency.py, and
the ratio would measure the load, not the loops):
- dltool: the engine's own loop (``build_components`` + ``train_one_epoch``, as ``train``
  runs it), with ``model.freeze: backbone`` or ``none``;
- reference: a bare loop over the same architecture, the usual fine-tuning code: backbone
  parameters set to ``requires_grad=False`` and its BatchNorm layers put in eval mode, an
  optimizer over the head's parameters only; unfrozen, an optimizer over all.
Each side's figure is its median epoch, the best over the rounds; the ratio is dltool / bare.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
from torch import nn

from dltool.config import load_config
from dltool.data.prepare import PreparedData
from dltool.engine.device import resolve_device

sys.path.insert(0, str(Path(__file__).parent))
from _common import Row, bench_main, timed_epoch
from _plain_resnet import NAME
from train_throughput import dltool_rate, synthetic

MODEL = NAME  # torchvision's resnet18 constructor (benches/_plain_resnet.py)
SHAPE, CLASSES, BATCH = (3, 64, 64), 10, 32


def bench_config(freeze: str, device: str):
    sets = [
        f"model.name={MODEL}",
        f"model.freeze={freeze}",
        "optimizer.name=adamw",
        "optimizer.lr=1e-3",
        "scheduler.name=none",
        f"train.batch_size={BATCH}",
        "train.compile=false",
        f"train.device={device}",
        'train.amp="off"',
    ]
    return load_config("digits-mlp", sets)


def bare_rate(data: PreparedData, device: torch.device, epochs: int, frozen: bool) -> float:
    """The median epoch's samples/s of a hand-written fine-tuning loop (as ``dltool_rate``)."""
    from torchvision.models import resnet18

    train = data.splits["train"]
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    x = ((torch.from_numpy(train.images).float() / 255 - mean) / std).to(device)
    y = torch.from_numpy(train.labels).to(device)
    model = resnet18(num_classes=CLASSES).to(device, memory_format=torch.channels_last).train()  # as dltool's
    if frozen:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith("fc."))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(index: torch.Tensor) -> None:
        loss = loss_fn(model(x[index].contiguous(memory_format=torch.channels_last)), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return statistics.median(timed_epoch(step, len(y), BATCH, device) for _ in range(epochs))


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    samples, epochs, rounds = (128, 2, 2) if quick else (256, 2, 3)
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        torch.set_num_threads(1)  # run_all.py sets one per core again before the next bench
    data = synthetic(SHAPE, CLASSES, samples)
    rows = []
    for freeze in ("backbone", "none"):
        config = bench_config(freeze, device)
        ours = bare = 0.0
        for _ in range(rounds):  # alternate, to share the machine's noise
            ours = max(ours, dltool_rate(config, data, torch_device, epochs))
            bare = max(bare, bare_rate(data, torch_device, epochs, frozen=freeze == "backbone"))
        what = "backbone frozen" if freeze == "backbone" else "all weights"
        label = f"fine-tune torchvision resnet18 ({what}), 64×64, batch {BATCH}: samples/s"
        row_id = f"finetune-throughput.resnet18.{'frozen' if freeze == 'backbone' else 'all'}"
        rows.append(Row(label, f"{ours:,.0f}", f"{bare:,.0f} bare PyTorch loop", ours / bare, id=row_id))
    return rows


if __name__ == "__main__":
    bench_main(run, __doc__)
