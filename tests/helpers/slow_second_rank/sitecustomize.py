"""Put on PYTHONPATH, this makes rank 1 of a torch.distributed run write its RNG state 2 s late (a slow disk, a busy
node): rank 0 must wait for every rank's part of a checkpoint before it lists and signs the files."""

import os

if os.environ.get("RANK") == "1":
    import time

    import torch

    _save = torch.save

    def _slow_save(obj, f, *args, **kwargs):
        if str(f).endswith("rng_state_1.pth"):
            time.sleep(2)
        return _save(obj, f, *args, **kwargs)

    torch.save = _slow_save
