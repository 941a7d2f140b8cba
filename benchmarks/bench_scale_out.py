"""Scale-out benchmark (issue #17): ``audit scan --engine ray`` against the local engine, and a
pool in S3 (a local moto server) against the same files on disk.

``engines POOL``: each engine runs as a child process (``audit scan POOL --json ... --quiet``),
interleaved so both see the same shifts of the shared machine's load. The Ray runs join a
2-worker local cluster started once beforehand with ``ray start --head --num-cpus 2`` (its
start-up is timed apart: a real cluster is started once, not per scan). Measured per run:

* the driver: wall and CPU seconds and max RSS (``os.wait4``; the local engine's decode
  processes are its children, so their CPU is in its count);
* the cluster: CPU seconds of every Ray process during the run (workers ``ray::…`` and Ray's
  own daemons, from /proc every 0.25 s: CPU of a process that ends between two samples is
  lost), each worker's peak RSS and peak private memory (``Private_*`` of
  ``/proc/PID/smaps_rollup``: RSS also counts the object-store pages a worker maps, which are
  shared and counted once, in /dev/shm), and the peak use of /dev/shm (the object store's file:
  it keeps the pages it has touched, so later runs show the high-water mark of earlier ones);
* ``cat /proc/loadavg`` at the start of every run, and the stage timings of the JSON report.

Checked: the two engines' JSON reports are identical apart from ``timings_s`` and
``input.decode`` (which says which engine decoded): same flagged set, findings, per-image
members and scores, detector statistics.

``s3 FOLDER --n 5000``: the first ``n`` files of FOLDER plus every file named in
``--include`` (the planted bridge) are uploaded to a moto S3 server started here (its own
process), then ``audit scan s3://pools/pool`` and ``audit scan`` of the same files on disk are
run in turn and compared the same way (``root`` aside).

    python benchmarks/bench_scale_out.py engines /work/data/scaleout/fm-poison/unlabeled --repeat 3
    python benchmarks/bench_scale_out.py engines /work/data/scaleout/synth1000000.npy --repeat 1
    python benchmarks/bench_scale_out.py s3 /work/data/scaleout/fm-poison/unlabeled --n 5000 \\
        --include /work/data/scaleout/fm-poison/manifest.json --repeat 3

Generate the 1M pool first with ``benchmarks/bench_scan_scale.py gen --n 1000000 --work
/work/data/scaleout`` (3 GB, never in the repository). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scan_scale import audit_exe, run_child  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RAY_DAEMONS = (b"raylet", b"gcs_server", b"dashboard", b"log_monitor", b"monitor.py", b"runtime_env")


def ray_exe() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else "ray"


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def _shm_used() -> int:
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class ClusterMonitor:
    """CPU seconds of the Ray processes while running, each worker's peak RSS and private memory
    (MiB), and the peak use of /dev/shm (module docstring)."""

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.rss: dict[int, float] = {}
        self.private: dict[int, float] = {}
        self.first: dict[int, int] = {}  # CPU ticks when first seen (0 for a process born during the run)
        self.last: dict[int, int] = {}
        self.kind: dict[int, str] = {}
        self.shm_peak = 0  # tmpfs pages in use: the object store's file keeps the pages it has touched
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ClusterMonitor":
        self._sample(baseline=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self._sample()

    def cpu(self, kind: str) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last if self.kind[p] == kind) / TICK

    def workers(self) -> list[tuple[float, float]]:
        """(peak RSS, peak private) MiB of every worker that used memory, largest first."""
        return sorted(((self.rss[p], self.private.get(p, 0.0)) for p in self.rss), reverse=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self, baseline: bool = False) -> None:
        self.shm_peak = max(self.shm_peak, _shm_used())
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            p = int(pid)
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if cmd.startswith(b"ray::") or b"default_worker.py" in cmd:  # before and after setproctitle
                    kind = "worker"
                elif any(d in cmd for d in RAY_DAEMONS) and b"ray" in cmd:
                    kind = "daemon"
                else:
                    continue
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks = int(stat[11]) + int(stat[12])  # utime + stime
                if kind == "worker":
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
                    priv = sum(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                               if ln.startswith("Private_")) / 1024
            except (OSError, ValueError, IndexError):
                continue
            if p not in self.first:
                self.first[p] = ticks if baseline else 0
            self.kind[p] = kind
            self.last[p] = ticks
            if kind == "worker":
                self.rss[p] = max(self.rss.get(p, 0.0), rss)
                self.private[p] = max(self.private.get(p, 0.0), priv)


def comparable(path: Path, drop_root: bool = False) -> dict:
    """The JSON report without what legitimately differs between engines or sources."""
    doc = json.loads(path.read_text())
    doc.pop("timings_s", None)
    doc.get("input", {}).pop("decode", None)
    if drop_root:
        doc.pop("root", None)
    return doc


def same_reports(docs: dict[str, list[dict]], reference: str, ignored: str) -> dict:
    """Print whether every run's comparable report equals the first run of ``reference``; return it."""
    ref = docs[reference][0]
    runs = [d for ds in docs.values() for d in ds]
    print(f"identical reports (all but {ignored}) in all {len(runs)} runs: {all(d == ref for d in runs)}; "
          f"flagged {len(flagged(ref))} images in {len(ref['findings'])} findings")
    return ref


def flagged(doc: dict) -> set[str]:
    return {m["id"] for f in doc["findings"] for m in f["members"]}


def scan(args: list[str], out: Path, ray: bool = False, env: dict | None = None) -> dict:
    load = loadavg()
    if ray:
        with ClusterMonitor() as mon:
            r = run_child(args)
        r["cluster_cpu_s"], r["daemon_cpu_s"] = mon.cpu("worker"), mon.cpu("daemon")
        r["workers_mib"], r["shm_mib"] = mon.workers(), mon.shm_peak / 2**20
    elif env is not None:
        old = dict(os.environ)
        os.environ.update(env)
        try:
            r = run_child(args)
        finally:
            os.environ.clear()
            os.environ.update(old)
    else:
        r = run_child(args)
    r["loadavg"] = load
    r["timings"] = json.loads(out.read_text()).get("timings_s", {})
    return r


def line(name: str, i: int, r: dict) -> str:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
    extra = ""
    if "workers_mib" in r:
        busy = [w for w in r["workers_mib"] if w[1] > 50][:4]  # workers that ran tasks (idle ones: ~40 MiB)
        extra = (f"; workers CPU {r['cluster_cpu_s']:.1f} s, Ray daemons CPU {r['daemon_cpu_s']:.1f} s; worker peak "
                 f"RSS/private {', '.join(f'{a:.0f}/{b:.0f}' for a, b in busy)} MiB; object store peak "
                 f"{r['shm_mib']:.0f} MiB")
    return (f"{name} run {i}: loadavg [{r['loadavg']}]; wall {r['wall_s']:.1f} s, driver CPU {r['cpu_s']:.1f} s, "
            f"driver max RSS {r['maxrss_mib']:.0f} MiB{extra}; stages [{stages}] s")


def med(rs: list[dict], key: str) -> float:
    return float(np.median([r[key] for r in rs]))


def cmd_engines(a) -> None:
    a.work.mkdir(parents=True, exist_ok=True)
    name = a.pool.stem if a.pool.suffix else a.pool.name
    runs: dict[str, list[dict]] = {"local": [], "ray": []}
    t0 = time.perf_counter()
    subprocess.run([ray_exe(), "start", "--head", "--num-cpus", "2", "--include-dashboard", "false",
                    "--disable-usage-stats"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"ray start --head --num-cpus 2: {time.perf_counter() - t0:.1f} s; loadavg [{loadavg()}]", flush=True)
    docs: dict[str, list[dict]] = {"local": [], "ray": []}
    try:
        for i in range(a.repeat):
            for e in ("local", "ray"):  # interleaved: both engines see the same shifts of the load
                out = a.work / f"{name}.{e}.json"
                args = [audit_exe(), "scan", str(a.pool), "--json", str(out), "--quiet", "--fail-on", "never"]
                if e == "ray":
                    args += ["--engine", "ray", "--address", "auto"]
                r = scan(args, out, ray=e == "ray")
                runs[e].append(r)
                docs[e].append(comparable(out))
                print(line(e, i, r), flush=True)
    finally:
        subprocess.run([ray_exe(), "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for e, rs in runs.items():
        extra = ""
        if e == "ray":
            extra = (f", workers CPU {med(rs, 'cluster_cpu_s'):.1f} s + daemons {med(rs, 'daemon_cpu_s'):.1f} s, "
                     f"worker peak RSS max {max(r['workers_mib'][0][0] for r in rs):.0f} MiB, private max "
                     f"{max(max(w[1] for w in r['workers_mib']) for r in rs):.0f} MiB, object store peak max "
                     f"{max(r['shm_mib'] for r in rs):.0f} MiB")
        print(f"{e}: median of {len(rs)}: wall {med(rs, 'wall_s'):.1f} s, driver CPU {med(rs, 'cpu_s'):.1f} s, driver "
              f"max RSS {max(r['maxrss_mib'] for r in rs):.0f} MiB{extra}")
    same_reports(docs, "local", "timings_s, input.decode")
    lw, rw = med(runs["local"], "wall_s"), med(runs["ray"], "wall_s")
    lc = med(runs["local"], "cpu_s")
    rc = float(np.median([r["cpu_s"] + r["cluster_cpu_s"] + r["daemon_cpu_s"] for r in runs["ray"]]))
    print(f"ray/local: wall {rw / lw:.2f}x, CPU (driver + cluster) {rc / lc:.2f}x")


# --- S3 ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"moto server on port {port} did not start")


def cmd_s3(a) -> None:
    import boto3

    files = sorted(p for p in a.folder.iterdir() if p.is_file())
    pick = files[: a.n]
    if a.include is not None:  # a redteam manifest: its poisoned files, so there is something to find
        extra = {a.folder / f for f in json.loads(a.include.read_text())["poisoned"]}
        pick = sorted(set(pick) | extra)
    disk = a.work / "s3pool"
    if disk.exists():
        shutil.rmtree(disk)
    disk.mkdir(parents=True)
    for f in pick:
        shutil.copyfile(f, disk / f.name)
    port = _free_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket="pools")
        t0 = time.perf_counter()
        for f in sorted(disk.iterdir()):
            client.put_object(Bucket="pools", Key=f"pool/{f.name}", Body=f.read_bytes())
        size = sum(f.stat().st_size for f in disk.iterdir())
        print(f"uploaded {len(pick)} files ({size / 2**20:.1f} MiB) to moto in {time.perf_counter() - t0:.1f} s",
              flush=True)
        runs: dict[str, list[dict]] = {"disk": [], "s3": []}
        docs: dict[str, list[dict]] = {"disk": [], "s3": []}
        for i in range(a.repeat):
            for where, src in (("disk", str(disk)), ("s3", "s3://pools/pool")):
                out = a.work / f"s3pool.{where}.json"
                args = [audit_exe(), "scan", src, "--json", str(out), "--quiet", "--fail-on", "never"]
                r = scan(args, out, env=env if where == "s3" else None)
                runs[where].append(r)
                docs[where].append(comparable(out, drop_root=True))
                print(line(where, i, r), flush=True)
    finally:
        server.terminate()
        server.wait()
    for where, rs in runs.items():
        print(f"{where}: median of {len(rs)}: wall {med(rs, 'wall_s'):.1f} s, CPU {med(rs, 'cpu_s'):.1f} s, max RSS "
              f"{max(r['maxrss_mib'] for r in rs):.0f} MiB")
    same_reports(docs, "disk", "timings_s, input.decode, root")
    print(f"s3/disk: wall {med(runs['s3'], 'wall_s') / med(runs['disk'], 'wall_s'):.2f}x")


# --- per-shard costs (the sizing in docs/scale-out.md) ----------------------------------------


def _cpu(fn, *args):
    """(result, CPU seconds of this process) of one call."""
    c0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - c0


def cmd_shards(a) -> None:
    """CPU seconds of each sharded stage's task on one shard, single-threaded, in this process:
    the unit costs the sizing multiplies (docs/scale-out.md). Not wall: the machine is shared."""
    import faiss

    from audit.data.readers._common import ReadOptions
    from audit.data.readers.decode import decode_chunk
    from audit.data.readers.folder import working_size
    from audit.engines.sharded import invariant_task, merge_lists, project_task, threads
    from audit.engines.sources import decode_task
    from audit.features import fit_projection_on, sample_rows
    from audit.neighbors import ivf_lists, ivf_training_rows, train_ivf

    print(f"loadavg [{loadavg()}]", flush=True)
    for name, folder, n in (("Fashion-MNIST PNG", a.png, 8192), ("photo (JPEG)", a.photos, 1024)):
        paths = sorted(str(p) for p in folder.rglob("*") if p.is_file())[:n]
        size, _ = working_size(paths, [False] * len(paths), ReadOptions())
        (rows, _), t = _cpu(decode_task, decode_chunk, (paths, [False] * len(paths)), size, 40_000_000)
        print(f"decode+thumbnail, {name}: {len(paths)} files at {size[0]}x{size[1]}: {t:.2f} CPU-s, "
              f"{1e3 * t / len(paths):.3f} ms/image, {rows.nbytes / len(paths):.0f} B/image kept", flush=True)
    pool = np.load(a.npy, mmap_mode="r")
    n, shape = len(pool), pool.shape[1:]
    d_in = int(np.prod(shape))
    th = threads()
    take = sample_rows(n, 10_000, 0)
    proj, t = _cpu(fit_projection_on, np.asarray(pool[take]).reshape(len(take), -1).astype(np.float64), 64, 0)
    print(f"projection fit (10k-row sample, driver): {t:.2f} CPU-s", flush=True)
    rows = np.ascontiguousarray(pool[: a.rows]).reshape(a.rows, -1)
    layout = [(0, a.rows, shape[2])]
    (x, _), t = _cpu(project_task, th, proj, 0, a.rows, shape[2], layout, rows)
    print(f"projection apply: {a.rows} rows of {d_in}: {t:.2f} CPU-s, {1e6 * t / a.rows:.1f} us/row", flush=True)
    from audit.invariance import invariant_rows
    from audit.scan.detectors.base import INVARIANT_DIM, INVARIANT_PAD

    m = min(16_384, a.rows)
    inv = invariant_rows(np.asarray(pool[take]).reshape(len(take), -1), shape, INVARIANT_PAD)
    ip = fit_projection_on(inv.astype(np.float64), min(64, INVARIANT_DIM), 0)
    _, t = _cpu(invariant_task, th, ip, shape, 0, m, layout, rows)
    print(f"invariant view apply: {m} rows: {t:.2f} CPU-s, {1e6 * t / m:.1f} us/row", flush=True)
    # the kNN at n: the quantizer trained on faiss's own sample, one database shard of n/2 rows
    proj_all = np.empty((n, 64), np.float32)
    for s in range(0, n, 65_536):
        proj_all[s : s + 65_536] = proj.transform(np.ascontiguousarray(pool[s : s + 65_536]).reshape(-1, d_in))
    nlist = ivf_lists(n, 20_000)
    sample = proj_all[ivf_training_rows(n, nlist, 0)]
    trained, t = _cpu(train_ivf, sample, nlist)
    print(f"IVF train: nlist {nlist} on {len(sample)} rows: {t:.2f} CPU-s", flush=True)
    q = proj_all[: a.queries]
    half = n // 2  # one of 2 database shards (2 workers)
    idx = faiss.deserialize_index(faiss.serialize_index(trained))
    _, t = _cpu(idx.add_with_ids, np.ascontiguousarray(proj_all[:half]), np.arange(half, dtype=np.int64))
    print(f"IVF add of {half} rows (one shard of 2): {t:.2f} CPU-s, {1e6 * t / half:.2f} us/row", flush=True)
    (dist, ids), t = _cpu(idx.search, q, 17)
    print(f"IVF search of {len(q)} queries (nprobe 16, k 17) in that shard: {t:.2f} CPU-s, "
          f"{1e6 * t / len(q):.1f} us/query", flush=True)
    _, t = _cpu(trained.quantizer.search, q, 16)
    print(f"  of which the coarse quantizer ({nlist} centroids; every shard repeats it): {t:.2f} CPU-s, "
          f"{1e6 * t / len(q):.1f} us/query", flush=True)
    _, t = _cpu(merge_lists, [(dist, ids), (dist, ids)], 17)
    print(f"merge of 2 shard lists for {len(q)} queries (driver): {t:.3f} CPU-s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("engines", help="local engine vs a 2-worker local Ray cluster")
    e.add_argument("pool", type=Path)
    e.add_argument("--repeat", type=int, default=3)
    e.add_argument("--work", type=Path, default=Path("/work/data/scaleout"))
    s = sub.add_parser("s3", help="a pool in a local moto S3 server vs the same files on disk")
    s.add_argument("folder", type=Path)
    s.add_argument("--n", type=int, default=5000)
    s.add_argument("--include", type=Path, help="a redteam manifest.json: also upload its poisoned files")
    s.add_argument("--repeat", type=int, default=3)
    s.add_argument("--work", type=Path, default=Path("/tmp/helperC"))
    c = sub.add_parser("shards", help="CPU per shard of each stage (the sizing's unit costs)")
    c.add_argument("--png", type=Path, default=Path("/work/data/fmnist60k"))
    c.add_argument("--photos", type=Path, default=Path("/work/data/photos100k"))
    c.add_argument("--npy", type=Path, default=Path("/work/data/scaleout/synth1000000.npy"))
    c.add_argument("--rows", type=int, default=65_536)
    c.add_argument("--queries", type=int, default=65_536)
    a = p.parse_args()
    {"engines": cmd_engines, "s3": cmd_s3, "shards": cmd_shards}[a.what](a)


if __name__ == "__main__":
    main()
