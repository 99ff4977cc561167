"""Run by tests/test_protopnet_ddp.py under ``torchrun --nproc_per_node=2`` (not a test).

Trains the tiny ProtoPNet with DDP on CPU (gloo) and has rank 0 save the final weights,
the history and a checkpoint to the folder given as argv[1].
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from _protopnet_toy import ddp_setup

from interp_lib.protopnet.train import fit


def main(out: Path) -> None:
    torch.set_num_threads(1)
    model, train, val, push_ld, schedule = ddp_setup(per_process_batch=8)
    h = fit(model, train, val_loader=val, push_loader=push_ld, schedule=schedule,
            checkpoint=out / "ddp.pt", progress=True, restore_best=False)  # fmt: skip
    # fit started the process group from torchrun's environment and closed it again
    assert not dist.is_initialized()
    if int(__import__("os").environ["RANK"]) == 0:
        torch.save(
            {"state_dict": model.state_dict(), "history": h.to_state()}, out / "ddp_result.pt"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
