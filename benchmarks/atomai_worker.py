"""Train AtomAI's own ImSpec on tiles handed over in a .npz; run by bench_atomai.py.

Runs inside the separate AtomAI environment (make_atomai_venv.sh), so it imports only numpy,
torch and atomai. AtomAI's users scale inputs and targets globally (here: by the training
maximum of each); predictions are scaled back, and per-sample NMSE does not depend on that
scale. Training uses AtomAI's own loop body (``step_full``: every mini-batch once, Adam 1e-3,
MSE, batch 64, its default architecture for the latent size); the clock covers only those
calls. After every epoch the network predicts the whole test set off the clock and the
predictions are saved, so the caller computes the metrics with the toolkit's own function.

Usage: python atomai_worker.py IN.npz OUT.npz   (IN: x_train y_train x_test y_test latent seed epochs
max_seconds threads)
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch


def main(src: str, dst: str) -> int:
    data = np.load(src)
    torch.set_num_threads(int(data["threads"]))
    from atomai.models import ImSpec
    from atomai.transforms import imspec_augmentor

    x_tr, y_tr, x_te = (np.asarray(data[k], dtype=np.float32) for k in ("x_train", "y_train", "x_test"))
    x_scale, y_scale = float(np.abs(x_tr).max()), float(np.abs(y_tr).max())
    in_dim, out_dim = x_tr.shape[1:], y_tr.shape[1:]
    model = ImSpec(in_dim, out_dim, latent_dim=int(data["latent"]), seed=int(data["seed"]))
    # AtomAI's own test pass runs inside every epoch: give it a small slice so it costs little;
    # the real test measurement happens off the clock below
    n_probe = min(256, len(x_te))
    y_probe = np.asarray(data["y_test"][:n_probe], dtype=np.float32)
    model.compile_trainer((x_tr / x_scale, y_tr / y_scale, x_te[:n_probe] / x_scale, y_probe / y_scale),
                          loss="mse", training_cycles=int(data["epochs"]), batch_size=64,
                          full_epoch=True, plot_training_history=False, print_loss=10**9)
    model.augment_fn = imspec_augmentor(in_dim, out_dim)
    predictions, clock, times = [], 0.0, []
    x_eval = torch.from_numpy(x_te / x_scale)
    x_eval = x_eval[:, None] if x_eval.ndim == len(in_dim) + 1 else x_eval
    for _ in range(int(data["epochs"])):
        t0 = time.perf_counter()
        model.step_full()
        clock += time.perf_counter() - t0
        times.append(clock)
        model.net.eval()
        with torch.no_grad():
            out = torch.cat([model.net(x_eval[i:i + 1024]) for i in range(0, len(x_eval), 1024)])
        predictions.append(out.reshape(len(x_te), *out_dim).numpy() * y_scale)
        if clock > float(data["max_seconds"]):
            break
    n_params = sum(p.numel() for p in model.net.parameters())
    np.savez(dst, predictions=np.stack(predictions).astype(np.float32), train_s=np.array(times),
             n_params=n_params)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
