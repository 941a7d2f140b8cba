"""Regenerate fixtures/fashion-mnist-200.npz from the Debian package dataset-fashion-mnist."""

from pathlib import Path

import numpy as np

from audit.data.builtin import fashion_mnist

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "fashion-mnist-200.npz"


def main() -> None:
    test = fashion_mnist().test
    idx = np.concatenate([np.flatnonzero(test.labels == c)[:20] for c in range(10)])
    np.savez_compressed(OUT, images=test.images[idx], labels=test.labels[idx])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
