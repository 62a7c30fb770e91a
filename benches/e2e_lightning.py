"""digits-mlp as a Lightning script: e2e_torch.py's model, optimiser, schedule and epochs in a
LightningModule and a Trainer (no logger, checkpoints or progress bar); one side of
benches/end_to_end.py, run only where lightning is installed. Prints {"accuracy": ...} as JSON.

Usage: python benches/e2e_lightning.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from _e2e_data import digits_split
from e2e_torch import BATCH, EPOCHS, mlp


class DigitsMLP(L.LightningModule):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.model, self.steps = mlp(64, 10), steps
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        return self.loss_fn(self.model(x), y)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def main() -> None:
    L.seed_everything(0, verbose=False)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in digits_split())
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH, shuffle=True)
    module = DigitsMLP(EPOCHS * len(loader))
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    module.eval()
    with torch.inference_mode():
        accuracy = (module.model(x_test).argmax(1) == y_test).float().mean().item()
    print(json.dumps({"accuracy": accuracy}))


if __name__ == "__main__":
    main()
