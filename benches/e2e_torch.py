"""digits-mlp as a hand-written PyTorch script: the recipe's model (2 × 256, batch norm,
dropout 0.2), Adam at 1e-3 with a cosine schedule, label smoothing 0.1, batch 64, 30 epochs,
on dltool's digits split, torch's default threads; one side of benches/end_to_end.py.
Prints {"accuracy": test accuracy} as JSON.

Usage: python benches/e2e_torch.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _e2e_data import digits_split

EPOCHS, BATCH, WIDTH = 30, 64, 256


def mlp(inputs: int, classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width_in in (inputs, WIDTH):
        layers += [nn.Linear(width_in, WIDTH, bias=False), nn.BatchNorm1d(WIDTH), nn.ReLU(), nn.Dropout(0.2)]
    return nn.Sequential(*layers, nn.Linear(WIDTH, classes))


def main() -> None:
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in digits_split())
    model = mlp(x_train.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = -(-len(y_train) // BATCH)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS * steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    for _ in range(EPOCHS):
        model.train()
        for index in torch.randperm(len(y_train)).split(BATCH):
            loss = loss_fn(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    with torch.inference_mode():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(json.dumps({"accuracy": accuracy}))


if __name__ == "__main__":
    main()
