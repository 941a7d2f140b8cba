"""`audit scan` on real pools (issue #13): time, memory and findings against a plain PIL decode of
the same files, measured in the same run. The project's modules are byte-compiled first, as an
installed copy is (``byte_compile``).

Subcommands (each run: wall, CPU and peak RSS of the child from ``/usr/bin/time -v``, the load
average before and after, medians over ``--repeat`` runs):

    python benchmarks/bench_real_pools.py openclipart --repeat 3 [--sizes 48x48 64x64 100x100]
        PIL decode of every openclipart-png file (one process), then `audit scan` of the package's
        folder, then of a copy with a planted linear bridge (30 RGBA images of 400×400, x' in
        a --labeled folder): found, in order, with its source?
    python benchmarks/bench_real_pools.py fmnist --repeat 3
        the 60k Fashion-MNIST PNG folder: PIL decode vs `audit scan`.
    python benchmarks/bench_real_pools.py hostile
        `audit scan` of the seeded hostile corpus (tests/hostile, scale 8: ~1,700 entries) and of
        every hostile data file (bombs included): exit codes, one-line errors, worst peak RSS.
    python benchmarks/bench_real_pools.py photos --repeat 3 [--peers]
        the 100k 640×480 JPEG folder of gen_photo_pool.py (planted bridge found?), and with
        --peers fastdup and cleanlab Datalab (each in its own venv, see peers_photos.py) on the
        same folder (its first --subset files).

Work files go to /work/data (``--work``), never to the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OPENCLIPART = Path("/usr/share/openclipart/png")
# each peer in its own venv (fastdup pins numpy 1.x, cleanlab's datasets/pyarrow need numpy 2),
# never in the project's: see benchmarks/peers_photos.py
PEERS_PY = {"fastdup": Path("/work/venv-peers/bin/python"), "cleanlab": Path("/work/venv-cleanlab/bin/python")}


def timed(args: list[str], ok: tuple[int, ...] = (0, 1), env: dict | None = None) -> dict:
    """Run ``args`` under /usr/bin/time -v: wall, CPU (user+sys, children included) and peak RSS
    (the largest process of the tree), the load average before and after."""
    load0 = os.getloadavg()[0]
    proc = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True, env=env)
    err = proc.stderr
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{err[-3000:]}")

    def field(name: str) -> float:
        m = re.search(rf"{re.escape(name)}: ([\d.:]+)", err)
        if m is None:
            return float("nan")
        v = m.group(1)
        if ":" in v:  # h:mm:ss or m:ss.ss
            parts = [float(p) for p in v.split(":")]
            return sum(p * 60**i for i, p in enumerate(reversed(parts)))
        return float(v)

    return {"wall_s": field("Elapsed (wall clock) time (h:mm:ss or m:ss)"),
            "cpu_s": field("User time (seconds)") + field("System time (seconds)"),
            "maxrss_mib": field("Maximum resident set size (kbytes)") / 1024,
            "load": (round(load0, 2), round(os.getloadavg()[0], 2)), "stdout": proc.stdout, "exit": proc.returncode}


def audit_exe() -> str:
    exe = Path(sys.executable).with_name("audit")
    return str(exe) if exe.exists() else "audit"


def pil_decode_cmd(folder: Path) -> list[str]:
    """A child that decodes every file under ``folder`` with PIL (full resolution, one process)."""
    code = ("import os,sys,warnings\nfrom PIL import Image\nwarnings.simplefilter('ignore')\nok=bad=0\n"
            "for d,_,fs in os.walk(sys.argv[1]):\n for f in fs:\n  try:\n   im=Image.open(os.path.join(d,f)); im.load(); ok+=1\n"
            "  except Exception: bad+=1\nprint(ok,bad)")
    return [sys.executable, "-c", code, str(folder)]


def load_cmd(folder: Path, size: str | None = None) -> list[str]:
    """A child that runs the data layer alone (walk, working size, decode in processes, assemble)."""
    hw = "None" if not size else repr(tuple(int(v) for v in size.lower().split("x")))
    code = (f"from audit.data import load_images\ns = load_images({str(folder)!r}, size={hw})\n"
            "print(len(s), s.shape, len(s.unreadable))")
    return [sys.executable, "-c", code]


def med(runs: list[dict], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def fmt(r: dict) -> str:
    return f"wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, peak RSS {r['maxrss_mib']:.0f} MiB, load {r['load'][0]}→{r['load'][1]}"


# --- the planted bridge -------------------------------------------------------------------------


def density_alphas(n: int) -> np.ndarray:
    """n values of a in [0, 1], ends included, by the inverse CDF of density 1.5-x."""
    return 1.5 - np.sqrt(2.25 - 2 * np.linspace(0, 1, n))


def plant(pool: Path, labeled: Path, n: int = 30, side: int = 400, seed: int = 0) -> dict:
    """Copy openclipart to ``pool`` and add a bridge of ``n`` RGBA images of side×side between two
    of its clip-art images, blended in premultiplied space; x' also goes to ``labeled``."""
    from PIL import Image

    if pool.exists():
        shutil.rmtree(pool)
    shutil.copytree(OPENCLIPART, pool, symlinks=True)
    rng = np.random.default_rng(seed)
    cands = []
    for d, _, fs in os.walk(OPENCLIPART):
        for f in sorted(fs):
            p = Path(d) / f
            if p.is_symlink():
                continue
            try:
                with Image.open(p) as im:
                    if im.mode == "RGBA" and min(im.size) >= 300 and im.size[0] * im.size[1] < 4_000_000:
                        cands.append(p)
            except Exception:
                continue
    ends = []
    for k in rng.permutation(len(cands)):
        with Image.open(cands[k]) as im:
            a = np.asarray(im.convert("RGBA").resize((side, side), Image.Resampling.BOX), np.float64) / 255
        if 0.2 < a[..., 3].mean() < 0.8:  # real content on a real transparent background
            ends.append((cands[k], a))
        if len(ends) == 2:
            break
    (src_path, x0), (dst_path, x1) = ends
    pm0, pm1 = x0[..., :3] * x0[..., 3:], x1[..., :3] * x1[..., 3:]
    alphas = density_alphas(n)
    dirs = sorted({str(Path(d).relative_to(OPENCLIPART)) for d, _, fs in os.walk(OPENCLIPART) if fs})
    ids = []
    for j, t in enumerate(alphas):
        pm, al = (1 - t) * pm0 + t * pm1, (1 - t) * x0[..., 3:] + t * x1[..., 3:]
        colour = np.where(al > 0, pm / np.maximum(al, 1e-9), 0)  # straight alpha, as PNG stores it
        rgba = np.rint(np.concatenate([colour, al], axis=2) * 255).clip(0, 255).astype(np.uint8)
        rel = f"{dirs[int(rng.integers(len(dirs)))]}/contrib_{rng.integers(1 << 30):08x}.png"
        Image.fromarray(rgba, "RGBA").save(pool / rel)
        ids.append(rel)
    if labeled.exists():
        shutil.rmtree(labeled)
    (labeled / "source").mkdir(parents=True)
    shutil.copy(pool / ids[0], labeled / "source" / "xprime.png")  # a = 0: x' itself
    for c, cat in enumerate(("animals", "food", "people", "transportation")):
        files = sorted(p for p in (OPENCLIPART / cat).rglob("*.png") if not p.is_symlink())[:5]
        (labeled / cat).mkdir()
        for p in files:
            shutil.copy(p, labeled / cat / p.name)
    truth = {"bridge_ids": ids, "alphas": alphas.tolist(), "source_labeled_id": "source/xprime.png",
             "x_prime": str(src_path), "x_star": str(dst_path)}
    Path(str(pool) + "-manifest.json").write_text(json.dumps(truth, indent=1))
    return truth


def detection(report: Path, truth: dict | None) -> dict:
    """Findings by kind; for a planted bridge: recall, other images in its finding, order, source."""
    r = json.loads(report.read_text())
    kinds: dict[str, int] = {}
    for f in r["findings"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    out = {"kinds": kinds, "n_images": r["n_images"], "timings": r.get("timings_s", {}),
           "error_images": sorted({m["id"] for f in r["findings"] if f["severity"] == "error" for m in f["members"]})}
    if truth:
        planted = dict(zip(truth["bridge_ids"], truth["alphas"]))
        best = max((f for f in r["findings"] if f["kind"] == "bridge"),
                   key=lambda f: sum(m["id"] in planted for m in f["members"]), default=None)
        if best is not None:
            mem = [m["id"] for m in best["members"]]
            hit = [planted[i] for i in mem if i in planted]
            rho = np.corrcoef(np.argsort(np.argsort(hit)), np.arange(len(hit)))[0, 1] if len(hit) > 2 else float("nan")
            out.update(found=len(hit), of=len(planted), others=len(mem) - len(hit), spearman=round(float(rho), 4),
                       source=best["evidence"].get("source_labeled_id"))
        else:
            out.update(found=0, of=len(planted))
        out["false_error_images"] = len([i for i in out["error_images"] if i not in planted])
    return out


def scan_cmd(pool: Path, report: Path, size: str | None, labeled: Path | None) -> list[str]:
    cmd = [audit_exe(), "scan", str(pool), "--json", str(report), "--quiet", "--fail-on", "never"]
    if size:
        cmd += ["--size", size]
    if labeled:
        cmd += ["--labeled", str(labeled)]
    return cmd


def cmd_openclipart(a) -> None:
    work = a.work / "openclipart"
    pool, labeled = work / "pool", work / "labeled"
    manifest = Path(str(pool) + "-manifest.json")
    truth = json.loads(manifest.read_text()) if manifest.exists() and not a.replant else plant(pool, labeled)
    for size in a.sizes:
        rows = {"pil": [], "load": [], "clean": [], "planted": []}
        for i in range(a.repeat):
            rows["pil"].append(timed(pil_decode_cmd(OPENCLIPART)))
            rows["load"].append(timed(load_cmd(OPENCLIPART, size)))
            rep = work / f"clean-{size or 'default'}.json"
            rows["clean"].append(timed(scan_cmd(OPENCLIPART, rep, size, None)) | {"det": detection(rep, None)})
            rep2 = work / f"planted-{size or 'default'}.json"
            rows["planted"].append(timed(scan_cmd(pool, rep2, size, labeled)) | {"det": detection(rep2, truth)})
            print(f"[{size or 'default'} run {i}] PIL decode: {fmt(rows['pil'][-1])}\n"
                  f"  load_images alone: {fmt(rows['load'][-1])}\n"
                  f"  clean scan: {fmt(rows['clean'][-1])}; ratio to PIL {rows['clean'][-1]['wall_s'] / rows['pil'][-1]['wall_s']:.2f}; "
                  f"{json.dumps(rows['clean'][-1]['det'] | {'error_images': len(rows['clean'][-1]['det']['error_images'])})}\n"
                  f"  planted scan: {fmt(rows['planted'][-1])}; "
                  f"{json.dumps({k: v for k, v in rows['planted'][-1]['det'].items() if k != 'error_images'})}", flush=True)
        print(f"[{size or 'default'}] medians: PIL {med(rows['pil'], 'wall_s'):.1f} s wall / {med(rows['pil'], 'cpu_s'):.1f} s CPU; "
              f"clean scan {med(rows['clean'], 'wall_s'):.1f} s / {med(rows['clean'], 'cpu_s'):.1f} s CPU, "
              f"peak {max(r['maxrss_mib'] for r in rows['clean']):.0f} MiB; ratio (wall, per run) "
              f"{np.median([c['wall_s'] / p['wall_s'] for c, p in zip(rows['clean'], rows['pil'])]):.2f}", flush=True)


def cmd_fmnist(a) -> None:
    folder = a.work / "fmnist60k"
    if not folder.is_dir() or len(os.listdir(folder)) < 60_000:
        from audit.data.builtin import fashion_mnist
        from audit.data.write import write_png_folder

        folder.mkdir(parents=True, exist_ok=True)
        write_png_folder(fashion_mnist().train, folder)
    pil, scans, loads = [], [], []
    for i in range(a.repeat):
        pil.append(timed(pil_decode_cmd(folder)))
        loads.append(timed(load_cmd(folder)))
        rep = a.work / "fmnist60k.json"
        scans.append(timed(scan_cmd(folder, rep, None, None)) | {"det": detection(rep, None)})
        d = scans[-1]["det"]
        print(f"[run {i}] PIL decode: {fmt(pil[-1])}\n  load_images alone: {fmt(loads[-1])}; ratio "
              f"{loads[-1]['wall_s'] / pil[-1]['wall_s']:.2f}\n"
              f"  scan: {fmt(scans[-1])}; ratio {scans[-1]['wall_s'] / pil[-1]['wall_s']:.2f} "
              f"(CPU {scans[-1]['cpu_s'] / pil[-1]['cpu_s']:.2f}); findings {d['kinds']}; stages {d['timings']}", flush=True)
    print(f"medians: PIL {med(pil, 'wall_s'):.1f} s / {med(pil, 'cpu_s'):.1f} s CPU; load_images {med(loads, 'wall_s'):.1f} s / "
          f"{med(loads, 'cpu_s'):.1f} s CPU; scan {med(scans, 'wall_s'):.1f} s / "
          f"{med(scans, 'cpu_s'):.1f} s CPU, peak {max(r['maxrss_mib'] for r in scans):.0f} MiB; ratio "
          f"{np.median([s['wall_s'] / p['wall_s'] for s, p in zip(scans, pil)]):.2f}", flush=True)


def cmd_photos(a) -> None:
    folder = a.work / "photos100k"
    truth = json.loads(Path(str(folder) + "-manifest.json").read_text())
    labeled = Path(str(folder) + "-labeled")
    runs = []
    for i in range(a.repeat):
        rep = a.work / "photos100k.json"
        runs.append(timed(scan_cmd(folder, rep, a.size, labeled)) | {"det": detection(rep, truth)})
        d = runs[-1]["det"]
        n = d["n_images"]
        print(f"[run {i}] scan: {fmt(runs[-1])}; {n / runs[-1]['cpu_s']:.0f} images per CPU-second; "
              f"{json.dumps({k: v for k, v in d.items() if k != 'error_images'})}", flush=True)
    if a.peers:
        peers(a, folder)


def peers(a, folder: Path) -> None:
    """fastdup and cleanlab Datalab on the same folder (or its first --subset images), each in
    the separate peers venv: images per CPU-second."""
    script = Path(__file__).with_name("peers_photos.py")
    for tool in ("fastdup", "cleanlab"):
        r = timed([str(PEERS_PY[tool]), str(script), tool, str(folder), str(a.subset), str(a.work / f"peer-{tool}")], ok=(0,))
        n = int(json.loads(r["stdout"].strip().splitlines()[-1])["images"])
        print(f"{tool} on {n} images: {fmt(r)}; {n / r['cpu_s']:.0f} images per CPU-second; {r['stdout'].strip()[-300:]}",
              flush=True)


def cmd_hostile(a) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hostile"))
    from hostile_corpus import build_pool
    from hostile_files import build_files

    root = a.work / "hostile"
    if root.exists():
        shutil.rmtree(root)
    m = build_pool(root, seed=0, scale=8)
    exp = build_files(root, m.marker)
    targets = [("pool", root / "pool", ["--html", str(a.work / "hostile.html"), "--csv", str(a.work / "hostile.csv")])]
    targets += [(name, root / "files" / name, []) for name in sorted(exp)]
    worst, bad = (0.0, ""), []
    for name, path, extra in targets:
        r = timed([audit_exe(), "scan", str(path), "--json", str(a.work / "hostile.json"), "--quiet", "--fail-on",
                   "never", *extra], ok=(0, 1, 2))
        r2 = subprocess.run([audit_exe(), "scan", str(path), "--quiet", "--fail-on", "never"], capture_output=True,
                            text=True)
        line = (r2.stderr.strip().splitlines() or [""])[-1]
        ok = r["exit"] in (0, 2) and "internal error" not in r2.stderr and "Traceback" not in r2.stderr
        if r["maxrss_mib"] > worst[0]:
            worst = (r["maxrss_mib"], name)
        if not ok:
            bad.append(name)
        print(f"{name}: exit {r['exit']}, {fmt(r)}; {line[:160]}", flush=True)
    print(f"{len(targets)} scans; worst peak RSS {worst[0]:.0f} MiB ({worst[1]}); not clean: {bad or 'none'}; "
          f"code executed: {m.marker.exists()}", flush=True)


def byte_compile() -> None:
    """Compile the project's modules once, as ``pip install .`` does. An editable checkout under
    ``PYTHONDONTWRITEBYTECODE=1`` (this sandbox sets it) would otherwise compile every module at
    every start (+0.1 s a scan), a cost no installed copy has and PIL's installed modules never pay."""
    import audit
    import redteam

    for pkg in (audit, redteam):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(pkg.__file__).parent)], check=True,
                       stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["openclipart", "fmnist", "photos", "hostile"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/work/data"))
    ap.add_argument("--sizes", nargs="*", default=[None], help="--size values to scan at (default: the default)")
    ap.add_argument("--size", default=None, help="photos: --size for the scan")
    ap.add_argument("--replant", action="store_true", help="openclipart: copy the pool and plant the bridge again")
    ap.add_argument("--peers", action="store_true", help="photos: also run fastdup and cleanlab Datalab")
    ap.add_argument("--subset", type=int, default=10_000, help="photos --peers: images given to each peer")
    a = ap.parse_args()
    a.sizes = [None if s in (None, "default") else s for s in a.sizes]
    a.work.mkdir(parents=True, exist_ok=True)
    byte_compile()
    t0 = time.perf_counter()
    {"openclipart": cmd_openclipart, "fmnist": cmd_fmnist, "photos": cmd_photos, "hostile": cmd_hostile}[a.what](a)
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
