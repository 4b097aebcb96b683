"""Building a deployment's environment with pip and with uv, cold and warm, in one run.

    python bench/envbuild.py [--runs 1] [--no-readme]

The environment is examples/online/model-1's (its conda file: scikit-learn, numpy, joblib,
inference-schema; and the inference server's two packages), built as the worker builds it
(``ensure`` in workers/builds/environment.py) with WEIR_ENVIRONMENT_INSTALLER=pip and =uv.
Cold: empty caches (a new PIP_CACHE_DIR, a new uv cache directory) and no environment; warm:
the caches the cold build filled, the environment removed, so it is built again. Both read
this machine's pip configuration (its indexes and find-links). Reports the seconds of each
build, wall clock and CPU (the median of --runs; CPU counts every process of the build, so it
moves less than the wall clock when other work shares the machine), the ratios uv/pip, and
the disk the environments take.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's workers, not an installed one

import loadgen  # noqa: E402

CONDA_FILE = ROOT / "examples" / "online" / "model-1" / "environment" / "conda.yaml"
INSTALLERS = ("pip", "uv")


def setup_django(data_dir: Path) -> None:
    """The worker's settings, with a data directory of the benchmark's own."""
    os.environ["WEIR_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    import django

    django.setup()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(installer: str, spec, root: Path, caches: Path) -> tuple[float, float]:
    """Seconds to build ``spec`` from nothing but the caches under ``caches``: wall clock,
    and CPU (this process and every process the build ran)."""
    from django.test import override_settings

    from workers.builds import environment

    shutil.rmtree(root / "envs", ignore_errors=True)
    os.environ["PIP_CACHE_DIR"] = str(caches / "pip")
    with override_settings(
        WEIR_ENVIRONMENT_DIR=root / "envs",
        WEIR_ENVIRONMENT_INSTALLER=installer,
        WEIR_UV_CACHE_DIR=caches / "uv",
    ):
        started, cpu = time.monotonic(), children_cpu() + time.process_time()
        environment.ensure(spec, lambda line: None)
        return time.monotonic() - started, children_cpu() + time.process_time() - cpu


def disk(directory: Path) -> tuple[int, int]:
    """(bytes of the files under ``directory``, bytes of those not linked from elsewhere)."""
    total = own = 0
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            total += stat.st_size
            own += stat.st_size if stat.st_nlink == 1 else 0
    return total, own


def measure(spec, runs: int, root: Path) -> dict:
    """pip and uv alternate within each run, so a change in the machine's load over the run
    falls on both."""
    builds = {(installer, state): [] for installer in INSTALLERS for state in ("cold", "warm")}
    sizes = {}
    for run in range(runs):
        for installer in INSTALLERS:
            caches = root / f"caches-{installer}-{run}"  # empty: cold
            for state in ("cold", "warm"):
                builds[installer, state].append(build(installer, spec, root, caches))
            sizes[installer] = disk(root / "envs" / spec.content_hash())
            shutil.rmtree(caches, ignore_errors=True)
            cold, warm = builds[installer, "cold"][-1], builds[installer, "warm"][-1]
            print(
                f"run {run + 1}: {installer} cold {cold[0]:.1f} s (CPU {cold[1]:.1f} s), "
                f"warm {warm[0]:.1f} s (CPU {warm[1]:.1f} s); load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    return {
        "wall": {key: statistics.median(b[0] for b in values) for key, values in builds.items()},
        "cpu": {key: statistics.median(b[1] for b in values) for key, values in builds.items()},
        "sizes": sizes,
    }


def render(result: dict, runs: int) -> str:
    wall, cpu, sizes = result["wall"], result["cpu"], result["sizes"]
    heading = "one run" if runs == 1 else f"median of {runs} runs"
    lines = [
        f"| model-1's environment ({heading}) | pip | uv | uv/pip | CPU pip | CPU uv | uv/pip |",
        "|---|---|---|---|---|---|---|",
    ]
    for state, meaning in (("cold", "cold: empty caches"), ("warm", "warm: caches filled")):
        pip, uv = wall["pip", state], wall["uv", state]
        pip_cpu, uv_cpu = cpu["pip", state], cpu["uv", state]
        lines.append(
            f"| {meaning} | {pip:.1f} s | {uv:.1f} s | {uv / pip:.2f}× "
            f"| {pip_cpu:.1f} s | {uv_cpu:.1f} s | {uv_cpu / pip_cpu:.2f}× |"
        )
    megabytes = {name: (total / 2**20, own / 2**20) for name, (total, own) in sizes.items()}
    lines += [
        "",
        f"The built environment: pip {megabytes['pip'][0]:.0f} MB, all its own; uv "
        f"{megabytes['uv'][0]:.0f} MB, of which {megabytes['uv'][1]:.0f} MB its own "
        "(the rest hard links into uv's cache).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-readme", action="store_true", help="only print the table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weir-envbuild-") as tmp:
        root = Path(tmp)
        setup_django(root / "data")
        from workers.builds.environment import EnvironmentSpec, parse_conda

        python, packages = parse_conda(CONDA_FILE.read_text(), "3.11")
        spec = EnvironmentSpec(python=python, image="bench", packages=tuple(packages))
        result = measure(spec, args.runs, root)
    table = render(result, args.runs)
    print(table)
    if not args.no_readme:
        loadgen.write_readme("envbuild", table)


if __name__ == "__main__":
    main()
