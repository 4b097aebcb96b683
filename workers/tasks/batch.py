"""Batch jobs: one task runs a job from Queued to Completed, Failed or Canceled on this
machine's worker pool. Every mini-batch's outcome is committed to the job's ledger as it
comes, so a job whose worker dies is re-driven by the reconciler and scores only the
mini-batches not committed; its output is merged in index order, so it is the same however
often it was resumed."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from controlplane.batch import files, states
from controlplane.batch.jobs import lease_deadline
from controlplane.batch.models import BatchJob, JobStatus, MiniBatch, MiniBatchStatus
from controlplane.blobstore import storage
from controlplane.blobstore.backends import blob_backend, read_chunks
from controlplane.blobstore.models import Blob
from controlplane.core import references
from controlplane.core.durations import parse_seconds
from workers import replica_plan
from workers.batch_pool import InitFailed, Pool, PoolSettings, Work
from workers.builds import environment
from workers.decorators import provisioning_task
from workers.errors import PermanentError
from workers.tasks.reconcile import MAX_ATTEMPTS

log = logging.getLogger(__name__)

S = JobStatus
POLL = 0.25
LOG_UPLOAD = 2.0
# Written beside the outputs when files failed (Weir's own; Azure leaves it to the logs).
FAILED_ITEMS = "failed_items.csv"
# What a scoring process inherits from the worker (not the worker's settings or secrets).
INHERITED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
WEIR_ROOT = Path(__file__).resolve().parents[2]


class JobCanceled(Exception):
    pass


class Superseded(Exception):
    """Another run claimed the job (this one's lease lapsed): this run stops, touching
    nothing more."""


class Heartbeat(threading.Thread):
    """Keeps the job's lease while its run works, whether or not it has anything to say (an
    environment build can be silent for minutes), and notices when another run took it."""

    def __init__(self, job: BatchJob):
        super().__init__(name=f"heartbeat-{job.name}", daemon=True)
        self.job = job
        self.stopped = threading.Event()
        self.lost = False
        self.interval = max(0.5, settings.WEIR_OPERATION_LEASE_SECONDS / 3)

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                if not self.beat():
                    return
        finally:
            connection.close()

    def beat(self) -> bool:
        """Extend the lease if this run still owns the job; False (and ``lost``) if not."""
        held = BatchJob.objects.filter(pk=self.job.pk, runner=self.job.runner).update(
            lease_expires_at=lease_deadline()
        )
        self.lost = held != 1
        return not self.lost

    def stop(self) -> None:
        self.stopped.set()
        self.join()


@provisioning_task("weir.run_batch_job")
def run_batch_job(self, *, job_id: str) -> None:
    job = claim(job_id)
    if job is None:
        return
    heartbeat = Heartbeat(job)
    heartbeat.start()
    progress = Progress(job, heartbeat)

    def end(target: str, error: dict | None = None) -> None:
        """The logs are stored whole before the status says the job ended (a client that
        sees Completed reads them all); a cancel asked for before a failure wins."""
        progress.upload_logs()
        asked = BatchJob.objects.filter(pk=job.pk, status=S.CANCEL_REQUESTED).exists()
        if target == S.FAILED and asked:
            target, error = S.CANCELED, None
        states.transition(job.pk, target, error=error)

    try:
        if job.status == S.CANCEL_REQUESTED:
            raise JobCanceled
        if job.status == S.QUEUED:
            states.transition(job.pk, S.PREPARING)
        progress.say(f"job {job.name}: attempt {job.attempts}, status {job.status}")
        if job.status in (S.QUEUED, S.PREPARING, S.RUNNING):
            run_mini_batches(job, progress)
        if finalize(job, progress):
            end(S.COMPLETED)
    except Superseded:
        log.warning("batch job %s: another run took it over; this run stops", job.name)
        heartbeat.stop()
        return
    except JobCanceled:
        progress.say("canceled")
        end(S.CANCELED)
    except PermanentError as exc:
        progress.say(f"failed: {exc.code}: {exc.message}")
        end(S.FAILED, {"code": exc.code, "message": exc.message})
    except Exception as exc:
        log.exception("batch job %s failed", job.name)
        progress.say(f"failed: {type(exc).__name__}: {exc}")
        end(S.FAILED, {"code": "InternalError", "message": f"{type(exc).__name__}: {exc}"})
    finally:
        heartbeat.stop()
    if BatchJob.objects.filter(pk=job.pk, status__in=states.TERMINAL).exists():
        shutil.rmtree(job_dir(job), ignore_errors=True)


def claim(job_id: str) -> BatchJob | None:
    """Take the job if it has not finished, extending its lease; fail it after
    MAX_ATTEMPTS deliveries."""
    rows = (
        BatchJob.objects.filter(pk=job_id)
        .exclude(status__in=states.TERMINAL)
        .update(lease_expires_at=lease_deadline(), attempts=F("attempts") + 1, runner=uuid.uuid4())
    )
    if rows != 1:
        return None
    job = BatchJob.objects.select_related("workspace").get(pk=job_id)
    if job.attempts > MAX_ATTEMPTS:
        states.transition(
            job.pk,
            S.FAILED,
            error={
                "code": "JobTimedOut",
                "message": f"The job did not finish after {job.attempts - 1} attempts.",
            },
        )
        return None
    return job


def job_dir(job: BatchJob) -> Path:
    return Path(settings.WEIR_BATCH_DIR) / str(job.id)


class Progress:
    """The job's progress log: lines in logs/job_progress_overview.txt, mirrored to the
    blob Azure's SDK streams; saying something also checks the run still owns the job."""

    def __init__(self, job: BatchJob, heartbeat: Heartbeat):
        self.job, self.heartbeat = job, heartbeat
        self.path = job_dir(job) / "logs" / "job_progress_overview.txt"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.uploaded = 0.0

    def say(self, line: str) -> None:
        stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as out:
            out.write(f"{stamp} {line}\n")
        log.info("batch job %s: %s", self.job.name, line)
        self.tick()

    def tick(self) -> None:
        if self.heartbeat.lost:
            raise Superseded(self.job.name)
        if time.monotonic() - self.uploaded > LOG_UPLOAD:
            self.upload()

    def upload(self) -> None:
        if not self.path.exists():
            return
        account = storage.account_for(self.job.workspace)
        content = self.path.read_bytes()
        storage.write_blob(
            account,
            account.default_container,
            files.log_blob_name(self.job),
            [content],
            "text/plain; charset=utf-8",
        )
        self.uploaded = time.monotonic()

    def upload_logs(self) -> None:
        """The progress log, and every scoring process's stdout and stderr, kept with the
        job once its directory goes."""
        self.upload()
        account = storage.account_for(self.job.workspace)
        logs = job_dir(self.job) / "logs"
        for path in sorted((logs / "user").rglob("*")) if (logs / "user").exists() else []:
            if path.is_file():
                with path.open("rb") as source:
                    storage.write_blob(
                        account,
                        account.default_container,
                        files.logs_prefix(self.job) + str(path.relative_to(logs)),
                        iter(lambda source=source: source.read(1 << 20), b""),
                        "text/plain; charset=utf-8",
                    )

    def check_canceled(self) -> None:
        if BatchJob.objects.filter(pk=self.job.pk, status=S.CANCEL_REQUESTED).exists():
            raise JobCanceled


# ---- Preparing -----------------------------------------------------------------------------
def prepare(job: BatchJob, progress: Progress) -> tuple[Path, Path, Path, replica_plan.Assets]:
    """Environment, model and code files, and the input files: (python, model, code)."""
    run = job.settings
    workspace = job.workspace
    try:
        model = references.resolve(workspace, run["model"], "models")
    except ValueError as exc:
        raise PermanentError("AssetNotFound", str(exc)) from None
    assets = replica_plan.Assets.named(
        workspace, model, run["environment"], run["code"], run["scoringScript"]
    )
    progress.say(f"model {model.arm_id}; {assets}")
    spec = replica_plan.environment_spec(assets, progress.say)
    env_dir = environment.ensure(spec, progress.say)
    progress.check_canceled()
    model_dir, code_dir = replica_plan.place(assets, job_dir(job) / "assets", progress.say)
    return env_dir / "bin" / "python", model_dir, code_dir, assets


def input_files(job: BatchJob, progress: Progress) -> list[str]:
    """The job's input files, fetched once into its directory: a folder's files (not its
    sub-folders, as Azure reads them), sorted so every run splits them alike."""
    target = job_dir(job) / "inputs"
    marker = job_dir(job) / ".inputs-fetched"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        ((name, spec),) = job.inputs.items()
        count = replica_plan.download(job.workspace, spec["uri"], target, keep_name=False)
        progress.say(f"input {name}: fetched {count} file(s) from {spec['uri']}")
        marker.write_text("")
    return sorted(p.name for p in target.iterdir() if p.is_file())


def ledger(job: BatchJob, names: list[str]) -> list[MiniBatch]:
    """The job's mini-batches, made once (the first run) and read back by every re-run."""
    size = int(job.settings["miniBatchSize"])
    with transaction.atomic():
        locked = BatchJob.objects.select_for_update().get(pk=job.pk)
        if not MiniBatch.objects.filter(job=locked).exists():
            inputs = job_dir(job) / "inputs"
            MiniBatch.objects.bulk_create(
                MiniBatch(
                    job=locked,
                    index=index,
                    files=chunk,
                    input_hash=_digest(inputs, chunk),
                )
                for index, chunk in enumerate(
                    names[start : start + size] for start in range(0, len(names), size)
                )
            )
            total = MiniBatch.objects.filter(job=locked).count()
            BatchJob.objects.filter(pk=job.pk).update(mini_batches=total)
    return list(MiniBatch.objects.filter(job=job).order_by("index"))


def _digest(folder: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with (folder / name).open("rb") as source:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# ---- Running -------------------------------------------------------------------------------
def run_mini_batches(job: BatchJob, progress: Progress) -> None:
    python, model_dir, code_dir, assets = prepare(job, progress)
    names = input_files(job, progress)
    if not names:
        raise PermanentError("InputEmpty", "the job's input holds no files")
    batches = ledger(job, names)
    progress.check_canceled()
    states.transition(job.pk, S.RUNNING)
    parts = job_dir(job) / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    pending = [
        b
        for b in batches
        if b.status == MiniBatchStatus.PENDING
        or (b.status == MiniBatchStatus.SUCCEEDED and not _committed_part(job, b))
    ]
    if job.settings.get("incremental") and job.settings["outputAction"] == "AppendRow":
        pending = reuse(job, progress, pending)
    done = len(batches) - len(pending)
    progress.say(
        f"{len(names)} file(s) in {len(batches)} mini-batch(es) of up to "
        f"{job.settings['miniBatchSize']}; {done} already committed, {len(pending)} to score"
    )
    if pending:
        score(job, progress, pending, python, model_dir, code_dir, assets)


# ---- Incremental scoring --------------------------------------------------------------------
RESULTS_PREFIX = "azureml/batch-results"


def result_key(job: BatchJob, batch: MiniBatch) -> str:
    """What a mini-batch's result depends on: its files (names and contents), the model,
    code and environment versions, the script and the settings that change what it writes."""
    run = job.settings
    document = {
        "input": batch.input_hash,
        **{k: run.get(k) for k in ("model", "code", "environment", "scoringScript", "mlflow")},
        "variables": run.get("environmentVariables"),
        "action": run.get("outputAction"),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def reuse(job: BatchJob, progress: Progress, pending: list[MiniBatch]) -> list[MiniBatch]:
    """Take the committed results of earlier jobs for the pending mini-batches that have one;
    returns the mini-batches left to score."""
    account = storage.account_for(job.workspace)
    container = account.default_container
    keys = {batch.index: f"{RESULTS_PREFIX}/{result_key(job, batch)}.part" for batch in pending}
    stored = {
        blob.name: blob
        for blob in Blob.objects.filter(
            account=account, container=container, name__in=list(keys.values())
        )
    }
    left = []
    for batch in pending:
        blob = stored.get(keys[batch.index])
        if blob is None:
            left.append(batch)
            continue
        path = part_path(job, batch.index)
        with blob_backend().open(blob.digest) as source, path.open("wb") as out:
            for chunk in read_chunks(source):
                out.write(chunk)
        source_job = blob.metadata.get("job")
        MiniBatch.objects.filter(pk=batch.pk).update(
            status=MiniBatchStatus.SUCCEEDED,
            items=int(blob.metadata.get("items", 0)),
            reused_from=source_job,
            ended_at=timezone.now(),
        )
        count_done(job)
    if len(left) < len(pending):
        progress.say(
            f"incremental scoring: {len(pending) - len(left)} mini-batch(es) reuse the results "
            "earlier jobs committed for the same files, model, code and environment"
        )
    return left


def keep_result(job: BatchJob, batch: MiniBatch, items: int) -> None:
    """Store a committed mini-batch's part for later jobs to reuse (incremental scoring)."""
    account = storage.account_for(job.workspace)
    path = part_path(job, batch.index)
    with path.open("rb") as source:
        blob = storage.write_blob(
            account,
            account.default_container,
            f"{RESULTS_PREFIX}/{result_key(job, batch)}.part",
            iter(lambda: source.read(1 << 20), b""),
        )
    Blob.objects.filter(pk=blob.pk).update(metadata={"job": job.name, "items": str(items)})


def count_done(job: BatchJob) -> None:
    """The job's count of committed mini-batches, counted from the ledger: a mini-batch
    scored again (its part was lost with the machine that ran it) is not counted twice."""
    done = MiniBatch.objects.filter(job=job, status=MiniBatchStatus.SUCCEEDED).count()
    BatchJob.objects.filter(pk=job.pk).update(mini_batches_done=done)


def _committed_part(job: BatchJob, batch: MiniBatch) -> bool:
    if job.settings["outputAction"] != "AppendRow":
        return True
    return part_path(job, batch.index).exists()


def part_path(job: BatchJob, index: int) -> Path:
    return job_dir(job) / "parts" / f"{index:08d}.part"


def score(job, progress, pending, python, model_dir, code_dir, assets) -> None:
    run = job.settings
    inputs = job_dir(job) / "inputs"
    output_dir = job_dir(job) / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    retry = run["retrySettings"]
    max_retries = int(retry.get("maxRetries", 3))
    threshold = int(run["errorThreshold"])
    processes = int(run["instanceCount"]) * int(run["maxConcurrencyPerInstance"])
    env = {k: v for k, v in os.environ.items() if k in INHERITED_ENVIRONMENT}
    env.update(
        {
            **run["environmentVariables"],
            "AZUREML_MODEL_DIR": str(model_dir),
            "AZUREML_BI_OUTPUT_PATH": str(output_dir),
            "PYTHONPATH": str(WEIR_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    pool = Pool(
        PoolSettings(
            python=str(python),
            script=str(code_dir / assets.scoring_script) if assets.scoring_script else None,
            output_dir=output_dir,
            logs_dir=job_dir(job) / "logs",
            cwd=code_dir,
            env=env,
            processes=min(processes, len(pending)),
            timeout=parse_seconds(retry.get("timeout", "PT30S")),
            logging_level=run["loggingLevel"].lower(),
            output_action="append_row" if run["outputAction"] == "AppendRow" else "summary_only",
            append_row_file_name=run["outputFileName"],
            mini_batch_size=int(run["miniBatchSize"]),
            error_threshold=threshold,
            process_count_per_node=int(run["maxConcurrencyPerInstance"]),
            mlflow=assets.no_code,
            init_timeout=settings.WEIR_BATCH_INIT_TIMEOUT,
        )
    )
    queue = list(pending)
    by_index = {b.index: b for b in pending}
    attempts = {b.index: 0 for b in pending}
    outstanding = len(pending)

    def work_of(batch: MiniBatch) -> Work:
        return Work(
            batch.index,
            [str(inputs / name) for name in batch.files],
            str(part_path(job, batch.index)),
        )

    def on_done(work: Work, event: dict) -> None:
        nonlocal outstanding
        outstanding -= 1
        with transaction.atomic():
            MiniBatch.objects.filter(job=job, index=work.index).update(
                status=MiniBatchStatus.SUCCEEDED,
                attempts=attempts[work.index],
                items=int(event.get("items", 0)),
                seconds=event.get("seconds"),
                error=None,
                ended_at=timezone.now(),
            )
            count_done(job)
        if run.get("incremental") and run["outputAction"] == "AppendRow":
            keep_result(job, by_index[work.index], int(event.get("items", 0)))
        progress.say(
            f"mini-batch {work.index}: {len(work.files)} file(s) -> {event.get('items', 0)} "
            f"item(s) in {float(event.get('seconds') or 0):.2f} s (attempt {attempts[work.index]})"
        )

    def on_failed(work: Work, error: str) -> None:
        nonlocal outstanding
        tries = attempts[work.index]
        last_line = error.strip().splitlines()[-1] if error.strip() else error
        progress.say(f"mini-batch {work.index}: attempt {tries} failed: {last_line}")
        for line in error.strip().splitlines():
            progress.say(f"  | {line}")
        if tries <= max_retries:
            queue.append(by_index[work.index])
            return
        outstanding -= 1
        with transaction.atomic():
            MiniBatch.objects.filter(job=job, index=work.index).update(
                status=MiniBatchStatus.FAILED,
                attempts=tries,
                error=error[-4000:],
                ended_at=timezone.now(),
            )
            BatchJob.objects.filter(pk=job.pk).update(
                mini_batches_failed=F("mini_batches_failed") + 1,
                items_failed=F("items_failed") + len(work.files),
            )
        failed_files = BatchJob.objects.values_list("items_failed", flat=True).get(pk=job.pk)
        progress.say(
            f"mini-batch {work.index}: failed after {tries} attempt(s); "
            f"{failed_files} failed file(s) so far"
        )
        if threshold >= 0 and failed_files > threshold:
            raise PermanentError(
                "ErrorThresholdExceeded",
                f"{failed_files} file(s) failed, more than the error threshold ({threshold}); "
                f"last error: {last_line}",
            )

    pool.start()
    progress.say(f"started {len(pool.drivers)} scoring process(es)")
    try:
        while outstanding > 0:
            for driver in pool.idle():
                if not queue:
                    break
                batch = queue.pop(0)
                attempts[batch.index] += 1
                pool.hand(driver, work_of(batch))
            pool.poll(POLL, on_done, on_failed)
            progress.check_canceled()
            progress.tick()
    except InitFailed as exc:
        pool.kill()
        raise PermanentError(
            "UserInitFailed", f"User program failed in init(): {_last(exc)}"
        ) from None
    except BaseException:
        pool.kill()
        raise
    pool.stop()


def write_failed_items(path: Path, failed: list[MiniBatch]) -> None:
    """Each file of a failed mini-batch, with the mini-batch, its attempts and the last line
    of its last error: what failed, without reading the logs."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "mini_batch", "attempts", "error"])
        for batch in failed:
            error = _last(Exception(batch.error or ""))
            for name in batch.files:
                writer.writerow([name, batch.index, batch.attempts, error])


def _last(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else str(exc)


# ---- Finalizing ----------------------------------------------------------------------------
def finalize(job: BatchJob, progress: Progress) -> bool:
    """Merge the parts in index order and store the outputs; True once the job may be
    Completed (False when another writer moved it meanwhile: a cancel)."""
    first = states.transition(job.pk, S.FINALIZING)
    job.refresh_from_db()
    if job.status != S.FINALIZING:
        return False
    succeeded = MiniBatch.objects.filter(job=job, status=MiniBatchStatus.SUCCEEDED).count()
    if succeeded == 0:
        raise PermanentError(
            "NoSucceededMiniBatch", "No succeeded mini batch item returned from run()."
        )
    output_dir = job_dir(job) / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    location = files.output_location(job)
    account, container = location.account, location.container
    folder = (
        location.path if location.path.endswith("/") or not location.path else location.path + "/"
    )
    file_name = job.output["fileName"]
    if job.settings["outputAction"] == "AppendRow":
        merged = output_dir / file_name
        with merged.open("wb") as out:
            for batch in MiniBatch.objects.filter(
                job=job, status=MiniBatchStatus.SUCCEEDED
            ).order_by("index"):
                out.write(part_path(job, batch.index).read_bytes())
    failed = list(
        MiniBatch.objects.filter(job=job, status=MiniBatchStatus.FAILED).order_by("index")
    )
    if failed:
        write_failed_items(output_dir / FAILED_ITEMS, failed)
    produced = sorted(p for p in output_dir.rglob("*") if p.is_file())
    if first:
        # Azure does not overwrite an output file that is already there.
        names = [folder + str(p.relative_to(output_dir)) for p in produced]
        clash = Blob.objects.filter(account=account, container=container, name__in=names).first()
        if clash is not None:
            raise PermanentError(
                "OutputExists",
                f"the output folder already holds '{clash.name}'; choose another output "
                "location or remove it",
            )
    for path in produced:
        relative = str(path.relative_to(output_dir))
        with path.open("rb") as source:
            storage.write_blob(
                account,
                container,
                folder + relative,
                iter(lambda source=source: source.read(1 << 20), b""),
            )
    progress.say(
        f"{succeeded} mini-batch(es) succeeded, {job.mini_batches_failed} failed; "
        f"{len(produced)} output file(s) written to {job.output['uri']}"
    )
    progress.say("The activity completed successfully. Finalizing run...")
    return True
