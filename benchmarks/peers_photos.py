"""The peers of `bench_real_pools.py photos --peers`: fastdup and cleanlab Datalab on the same JPEG
folder (its first N files in sorted order). Each runs in a venv of its own, never the project's
(fastdup pins numpy 1.x, cleanlab's datasets/pyarrow need numpy 2):
`python -m venv /work/venv-peers && /work/venv-peers/bin/pip install fastdup` and
`python -m venv /work/venv-cleanlab && /work/venv-cleanlab/bin/pip install 'cleanlab[datalab]' pillow`.
Prints one JSON line: the images given and what the tool reported.

    /work/venv-peers/bin/python benchmarks/peers_photos.py fastdup FOLDER N WORK_DIR
    /work/venv-cleanlab/bin/python benchmarks/peers_photos.py cleanlab FOLDER N WORK_DIR
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    tool, folder, n, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".jpg"))[:n]
    os.makedirs(work, exist_ok=True)
    if tool == "fastdup":
        import fastdup

        fd = fastdup.create(work_dir=work, input_dir=folder)
        fd.run(input_dir=files, overwrite=True, num_threads=os.cpu_count() or 1)
        sims = fd.similarity()
        out = {"images": len(files), "similar_pairs": int(len(sims)) if sims is not None else 0}
    else:
        import numpy as np
        from cleanlab import Datalab
        from PIL import Image

        # cleanlab needs features: each image decoded (JPEG DCT scaling, as the scan does) to the
        # scan's working size, 40×30 RGB pixels
        feats = np.empty((len(files), 40 * 30 * 3), np.float32)
        for i, f in enumerate(files):
            with Image.open(f) as im:
                im.draft("RGB", (40, 30))
                feats[i] = np.asarray(im.convert("RGB").resize((40, 30), Image.Resampling.BOX), np.float32).ravel()
        lab = Datalab(data={"id": list(range(len(files)))})
        lab.find_issues(features=feats / 255.0, issue_types={"near_duplicate": {}, "outlier": {}})
        issues = lab.get_issues()
        out = {"images": len(files), "near_duplicate": int(issues["is_near_duplicate_issue"].sum()),
               "outlier": int(issues["is_outlier_issue"].sum())}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
