"""Pipeline overhead: how long a no-op `snakemake` and a no-op `dvc repro` take on a finished
workflow, against interpreter and Snakemake start-up measured in the same run.

Times, each --repeats times (median reported), in the workflow folder:

  reference   `python -c pass` (the project's interpreter) and `snakemake --version` (start-up only)
  snakemake   `snakemake --cores 2 --configfile config/demo.yaml`  (must print "Nothing to be done")
  dvc repro   `PATH=.venv/bin:$PATH dvc repro`                      (must run no stage)

Target: each no-op median under 5 s. Prints a table; writes results/benchmarks/pipeline_overhead.json
(in this checkout, whatever the workflow folder).

The workflow must be finished first. By default it is this checkout with config/demo.yaml (the
demo: `.venv/bin/snakemake --cores 2 --configfile config/demo.yaml`, ~10 min); a dry run checks
it and the script stops if jobs are pending, unless --run-demo runs them first (untimed).
--workdir points at another finished checkout. --smoke DIR instead builds, in DIR, a scratch copy
of this checkout's tracked files with a seconds-scale overlay as config/demo.yaml, runs it
(untimed, ~1-3 min) and measures there: the same commands on a smaller DAG.

If `dvc repro` has stages to run (no dvc.lock yet, or a dependency changed since the last
repro), it is run once untimed first and said so: that run is not a no-op. It writes dvc.lock and
fills the DVC cache, as any first `dvc repro` does.

    .venv/bin/python benchmarks/pipeline_overhead.py [--repeats 5] [--workdir DIR | --smoke DIR] [--run-demo]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import write_report  # benchmarks/common.py

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "results" / "benchmarks"
TARGET_S = 5.0
NOT_FINISHED = 3  # exit status when the workflow has pending jobs (benchmarks/run_all reports it as not run)


def env_with_venv(workdir: Path) -> dict:
    """PATH with the project's .venv/bin first (the workdir's, else this checkout's)."""
    venv = workdir / ".venv" / "bin"
    if not venv.is_dir():
        venv = Path(sys.executable).parent
    return {**os.environ, "PATH": f"{venv}:{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "uvac-bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
            "GIT_COMMITTER_NAME": "uvac-bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> tuple[float, str, int]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` failed in {cwd} (exit {proc.returncode}):\n{out[-4000:]}")
    return seconds, out, proc.returncode


def pending_jobs(workdir: Path, configfile: str, env: dict) -> int:
    """Jobs a dry run of the default target would run (0 = finished)."""
    _, out, _ = run(["snakemake", "-n", "--cores", "2", "--configfile", configfile], workdir, env)
    if "Nothing to be done" in out:
        return 0
    m = re.search(r"^total\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else -1


def make_smoke(dest: Path, env: dict) -> None:
    """DIR: this checkout's tracked files (working-tree versions) with config/smoke.yaml as
    config/demo.yaml, in a fresh git repo, with this checkout's .venv linked in."""
    if dest.exists():
        raise SystemExit(f"--smoke {dest}: already exists; give a new folder (or --workdir {dest} to reuse it)")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        src = REPO / name
        if name.startswith("tests/") or not (src.exists() or src.is_symlink()):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    (dest / ".venv").symlink_to(REPO / ".venv")
    shutil.copy(dest / "config" / "smoke.yaml", dest / "config" / "demo.yaml")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "smoke workflow"]):
        run(cmd, dest, env)


def timed(label: str, cmd: list[str], cwd: Path, env: dict, repeats: int, expect=None) -> dict:
    times, noop = [], True
    for _ in range(repeats):
        seconds, out, rc = run(cmd, cwd, env, check=False)
        if rc != 0:
            raise SystemExit(f"`{' '.join(cmd)}` failed in {cwd} (exit {rc}):\n{out[-4000:]}")
        if expect is not None and not expect(out):
            noop = False
            print(f"  warning: `{' '.join(cmd)}` did work (not a no-op):\n{out[-1500:]}")
        times.append(seconds)
    row = {"step": label, "command": " ".join(cmd), "repeats": repeats, "median_s": round(statistics.median(times), 3),
           "min_s": round(min(times), 3), "max_s": round(max(times), 3), "times_s": [round(t, 3) for t in times]}
    if expect is not None:
        row["no_op"] = noop
    print(f"  {label:<26} median {row['median_s']:6.2f} s  (min {row['min_s']:.2f}, max {row['max_s']:.2f}, n {repeats})")
    return row


def dvc_noop(out: str) -> bool:
    return "Running stage" not in out and "is cached - skipping run" not in out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=str(REPO), help="a finished workflow checkout (default: this one)")
    ap.add_argument("--smoke", default=None, metavar="DIR", help="build a seconds-scale scratch workflow in DIR and measure it")
    ap.add_argument("--configfile", default="config/demo.yaml")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--run-demo", action="store_true", help="run the pending jobs first (untimed)")
    ap.add_argument("--no-dvc", action="store_true", help="skip the dvc repro measurement")
    ap.add_argument("--out", default=str(OUT_DIR / "pipeline_overhead.json"))
    args = ap.parse_args()

    workdir = Path(args.smoke or args.workdir).resolve()
    env = env_with_venv(REPO if args.smoke else workdir)
    if args.smoke:
        t = time.perf_counter()
        make_smoke(workdir, env)
        print(f"scratch workflow in {workdir}; running it (untimed) ...")
        run(["snakemake", "--cores", str(args.cores), "--configfile", args.configfile], workdir, env)
        print(f"  built in {time.perf_counter() - t:.0f} s")
    pending = pending_jobs(workdir, args.configfile, env)
    if pending:
        if not args.run_demo:
            print(f"{workdir}: the workflow is not finished ({pending} jobs pending in "
                  f"`snakemake -n --configfile {args.configfile}`). Run it first "
                  f"(`.venv/bin/snakemake --cores {args.cores} --configfile {args.configfile}`, ~10 min "
                  "for the demo), or pass --run-demo, --workdir FINISHED, or --smoke NEW_DIR.", file=sys.stderr)
            raise SystemExit(NOT_FINISHED)
        t = time.perf_counter()
        print(f"running the {pending} pending jobs first (untimed) ...")
        run(["snakemake", "--cores", str(args.cores), "--configfile", args.configfile], workdir, env)
        print(f"  done in {time.perf_counter() - t:.0f} s")

    before = [round(x, 2) for x in os.getloadavg()]
    print(f"\n{workdir} ({'smoke scratch workflow' if args.smoke else args.configfile}); load average {before}")
    rows = [timed("python -c pass", [str(Path(env['PATH'].split(':')[0]) / 'python'), "-c", "pass"], workdir, env, args.repeats),
            timed("snakemake --version", ["snakemake", "--version"], workdir, env, args.repeats),
            timed("no-op snakemake", ["snakemake", "--cores", str(args.cores), "--configfile", args.configfile],
                  workdir, env, args.repeats, expect=lambda out: "Nothing to be done" in out)]
    if not args.no_dvc:
        _, status, _ = run(["dvc", "status"], workdir, env, check=False)
        if "up to date" not in status:
            print("  dvc: stages changed since the last repro (or no dvc.lock yet): running `dvc repro` once, untimed ...")
            seconds, _, _ = run(["dvc", "repro"], workdir, env)
            print(f"    done in {seconds:.1f} s (not a no-op; not counted)")
        rows.append(timed("no-op dvc repro", ["dvc", "repro"], workdir, env, args.repeats, expect=dvc_noop))
    after = [round(x, 2) for x in os.getloadavg()]

    ref = {r["step"]: r["median_s"] for r in rows}
    targets = [r for r in rows if r["step"].startswith("no-op")]
    for r in targets:
        r["target_s"] = TARGET_S
        r["met"] = bool(r["median_s"] < TARGET_S and r.get("no_op", True))
        r["x_snakemake_startup"] = round(r["median_s"] / ref["snakemake --version"], 2)
        r["x_python_startup"] = round(r["median_s"] / ref["python -c pass"], 2)
    print()
    print(f"{'command':<22} {'median s':>9} {'x python':>9} {'x snakemake --version':>22}  target < {TARGET_S:g} s")
    for r in rows:
        extra = (f"{r['x_python_startup']:>9.1f} {r['x_snakemake_startup']:>22.1f}  {'met' if r['met'] else 'NOT met'}"
                 if "met" in r else "")
        print(f"{r['step']:<22} {r['median_s']:>9.2f} {extra}")
    result = {"benchmark": "pipeline_overhead", "workdir": str(workdir), "configfile": args.configfile,
              "workflow": "smoke scratch copy" if args.smoke else "as given", "cores": args.cores,
              "rows": rows, "met": all(r["met"] for r in targets),
              "load": {"before": before, "after": after}}
    result["targets"] = [{"target": f"{r['step']} < {TARGET_S:g} s ({'smoke workflow' if args.smoke else args.configfile})",
                          "figure": f"{r['median_s']:.2f} s median of {r['repeats']} ({r['x_snakemake_startup']:.1f}x "
                                    f"`snakemake --version` {ref['snakemake --version']:.2f} s)"
                                    + ("" if r.get("no_op", True) else "; NOT a no-op"),
                          "met": r["met"]} for r in targets]
    write_report(args.out, result)


if __name__ == "__main__":
    main()
