"""Running a cohort's scans as Dask futures: a local cluster of worker processes by default, or an existing
cluster (``scheduler``); one task per scan, retried once if its worker dies; results recorded as they finish."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from heart_sr_tf.cohort.jobs import Job
from heart_sr_tf.cohort.status import StatusFile
from heart_sr_tf.cohort.task import LEFT_OUT, upscale_task
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.progress import progress_bar

CONNECT_TIMEOUT = 30.0  # seconds to reach an existing cluster's scheduler
TRACKER_QUIET = "ignore::UserWarning:multiprocessing.resource_tracker"  # a -W option (see local_cluster)
WORKER_WAIT = 60.0  # seconds for an existing cluster to have a worker, before any scan is given to it


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    changed: int = 0  # of those done, how many were done before and their input has changed since
    failed: list[str] = field(default_factory=list)  # each failed scan's one-line error
    left_out: list[str] = field(default_factory=list)  # no scans to upscale (this tool's own results, localisers)
    warnings: list[str] = field(default_factory=list)  # the done scans' warning lines
    seconds: float = 0.0

    def line(self) -> str:
        rate = 60.0 * self.done / self.seconds if self.seconds > 0 and self.done else 0.0
        left = f"{len(self.left_out)} left out (no scan to upscale: each named below), " if self.left_out else ""
        again = f" ({self.changed} again: changed since done)" if self.changed else ""
        return (
            f"{self.done} done{again}, {self.skipped} skipped (already done), {len(self.failed)} failed, {left}"
            f"{rate:.1f} scans/min over {self.seconds:.0f} s"
        )


def local_cluster(workers: int):
    """Worker processes on this machine, one scan at a time each (the model's own threads use the cores);
    quiet (no dashboard, no log lines)."""
    from distributed import LocalCluster

    # Stopped while they work (SIGTERM, SIGHUP), the worker processes leave a queue's semaphore that
    # multiprocessing's resource tracker removes at exit, with a UserWarning on stderr after our "terminated" line:
    # library noise, nothing is left behind. The tracker is a process of its own started with this interpreter's
    # -W options, so the filter goes there before the cluster starts it.
    if TRACKER_QUIET not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_QUIET)
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,  # a worker's heartbeat to a scheduler already stopped (Ctrl-C) is logged as an
    )  # error with its traceback, after our "interrupted" line; a scan's own failure comes back through its future


def run_cohort(
    jobs: list[Job], options: dict, out_dir: Path, scheduler: str | None = None, workers: int = 1,
    quiet: bool = False,
) -> Summary:  # fmt: skip
    """Upscale every job not already done with the same options; a KeyboardInterrupt cancels what is left and
    leaves the status file ready to resume."""
    from distributed import Client, as_completed

    key = options_key(options)
    status = StatusFile(out_dir)
    todo = [job for job in jobs if not status.is_done(job, key)]
    changed = {job.key for job in todo if status.changed(job, key)}
    summary = Summary(skipped=len(jobs) - len(todo))
    if not todo:
        return summary
    start = time.perf_counter()
    cluster = None if scheduler else local_cluster(workers)
    client = Client(cluster) if cluster is not None else connect(scheduler)
    try:
        if scheduler:
            paths = [*(str(job.input) for job in todo), str(out_dir)]
            paths += [str(options[k]) for k in ("model", "through_plane_model", "segmenter") if options.get(k)]
            check_workers(client, scheduler, paths, str(out_dir))
        env = {k: v for k, v in os.environ.items() if k.startswith(("HEART_SR_", "TF_CPP"))}
        client.run(os.environ.update, env)  # the workers find the same models and stay as quiet
        futures = {
            client.submit(
                upscale_task, job.source, job.target, options, job.body, job.thickness, pure=False, retries=1
            ): job
            for job in todo
        }
        with progress_bar(len(todo), "cohort", "scan", disable=quiet) as bar:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # the task's worker died more often than the scheduler allows
                    result = {"status": "failed", "seconds": 0.0, "error": f"worker lost: {str(exc)[:200]}"}
                used = result.get("model") or options["model_name"]  # (the through-plane model is the scan's own)
                status.append(job, result["status"], result["seconds"], used, key,
                              result.get("error", ""))  # fmt: skip
                if result["status"] == "done":
                    summary.done += 1
                    summary.changed += job.key in changed
                    summary.warnings += result.get("warnings", [])
                elif result["status"] == LEFT_OUT:
                    summary.left_out.append(result["error"])
                else:
                    summary.failed.append(result["error"])
                bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
            from heart_sr_tf.volumes.upscale import remove_stale_parts

            for job in todo:  # a worker killed while writing (SIGKILL, out of memory) left a part file; its retry
                remove_stale_parts(Path(job.output))  # may have run before the dead one was reaped
        summary.seconds = time.perf_counter() - start
    return summary


def connect(scheduler: str):
    """A client of the existing cluster at ``scheduler``; one line saying why where it cannot be reached."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise HeartSRError(f"--scheduler {scheduler}: cannot connect ({str(exc).splitlines()[0][:200]})") from None


def check_workers(client, scheduler: str, paths: list[str], out_dir: str) -> None:
    """Before any scan is given out: the cluster has a worker (within ``WORKER_WAIT`` seconds), and every worker
    sees each of ``paths`` (the scans, the models, the output folder, which it can write) where this machine does:
    the tasks name them by path, so the workers need the same file system. One line naming the first worker and
    path that fail."""
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except (TimeoutError, OSError):
        raise HeartSRError(
            f"--scheduler {scheduler}: no worker joined the cluster within {WORKER_WAIT:.0f} s; start one on each node "
            f"with `dask worker {scheduler}`"
        ) from None
    from heart_sr_tf import __version__

    try:
        versions = client.run(tool_version)
        unseen = client.run(unseen_paths, paths, out_dir)
    except Exception as exc:  # (raised on a worker: its environment lacks this package, or another's)
        raise HeartSRError(
            f"--scheduler {scheduler}: a worker cannot run this tool's code ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); install heart-sr-tf {__version__} on every worker"
        ) from None
    for worker, version in sorted(versions.items()):
        if version != __version__:
            raise HeartSRError(
                f"--scheduler {scheduler}: worker {worker} runs heart-sr-tf {version}, this machine {__version__}; "
                "install the same version on every worker"
            )
    for worker, missing in sorted(unseen.items()):
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise HeartSRError(
                f"--scheduler {scheduler}: worker {worker} cannot {missing[0]}{more}; every worker needs the scans, "
                "the models and --out-dir at the same paths as this machine (a shared file system)"
            )


def tool_version() -> str:
    """This package's version where it runs (on a worker)."""
    from heart_sr_tf import __version__

    return __version__


def unseen_paths(paths: list[str], out_dir: str) -> list[str]:
    """What a worker cannot do among reading ``paths`` and writing in ``out_dir``, as phrases (``see /data/P01``);
    runs on the worker."""
    missing = [f"see {path}" for path in paths if not os.path.exists(path)]
    if os.path.isdir(out_dir) and not os.access(out_dir, os.W_OK):
        missing.append(f"write in {out_dir}")
    return missing


def options_key(options: dict) -> str:
    """What makes two outputs of a scan the same: the model and every option that changes the result."""
    parts = ("model", "in_plane", "through_plane", "through_plane_model", "backend", "precision", "batch_size")
    key = ";".join(f"{name}={options[name]}" for name in parts)
    return key + (f";measure={options['segmenter']}" if options.get("measure") else "")  # (older keys unchanged)
