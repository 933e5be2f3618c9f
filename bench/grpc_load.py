"""Native gRPC load: several client processes (grpc.aio), each with a share of the concurrency.

Every loop stops at a request count or a deadline, whichever comes first. The client's own
CPU use is measured and returned, so a run can show that the load generator was not the limit.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import random
import resource
import time
from dataclasses import dataclass
from typing import Any

import grpc

from meetings.v1 import meetings_pb2, meetings_pb2_grpc


@dataclass(frozen=True)
class Workload:
    """What the requests carry: the caller's token, meeting ids to get/update, a list window."""

    token: str
    meeting_ids: tuple[str, ...]
    list_gte: int
    list_lt: int
    attendee_ids: tuple[int, ...] = (2, 3)


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    client_cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def client_cpu_percent(self) -> float:
        """Of one core, over the run."""
        return 100 * self.client_cpu_seconds / self.seconds if self.seconds > 0 else 0.0


def _call(stub: Any, op: str, work: Workload, n: int, rand: random.Random) -> Any:
    metadata = (("cb-token", work.token),)
    if op == "create":
        start = 1_830_297_600 + n * 60  # 2028, away from the listed window
        meeting = meetings_pb2.MeetingInput(
            name=f"Bench meeting {n}",
            start_date=start,
            end_date=start + 1800,
            attendees=[meetings_pb2.Attendee(id=i) for i in work.attendee_ids],
        )
        return stub.CreateMeeting(
            meetings_pb2.CreateMeetingRequest(meeting=meeting), metadata=metadata
        )
    if op == "get":
        get = meetings_pb2.GetMeetingRequest()
        get.id = rand.choice(work.meeting_ids)
        return stub.GetMeeting(get, metadata=metadata)
    if op == "update":
        update = meetings_pb2.UpdateMeetingRequest(
            meeting=meetings_pb2.MeetingInput(name=f"Renamed {n} {rand.random()}")
        )
        update.id = rand.choice(work.meeting_ids)
        return stub.UpdateMeeting(update, metadata=metadata)
    if op == "list":
        request = meetings_pb2.ListMeetingsRequest()
        request.start_date.gte = work.list_gte
        request.start_date.lt = work.list_lt
        return stub.ListMeetings(request, metadata=metadata)
    raise ValueError(op)


async def _worker_async(
    target: str, op: str, work: Workload, concurrency: int, count: int, until: float, seed: int
) -> tuple[int, int, list[float]]:
    latencies: list[float] = []
    errors = 0
    numbers = itertools.count(seed * 10_000_000)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = meetings_pb2_grpc.MeetingServiceStub(channel)
        rand = random.Random(seed)  # noqa: S311 (load, not secrets)

        async def loop() -> None:
            nonlocal errors
            while len(latencies) + errors < count and time.time() < until:
                started = time.perf_counter()
                try:
                    await _finish(_call(stub, op, work, next(numbers), rand), op)
                except grpc.RpcError:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies), errors, latencies


async def _finish(call: Any, op: str) -> None:
    if op == "list":  # a server stream: drain it
        async for _ in call:
            pass
    else:
        await call


def _worker(args: tuple[Any, ...]) -> tuple[int, int, list[float], float, float, float]:
    target, op, work, concurrency, count, start_at, until, seed = args
    while time.time() < start_at:
        time.sleep(0.005)
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.time()
    done, errors, latencies = asyncio.run(
        _worker_async(target, op, work, concurrency, count, until, seed)
    )
    ended = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    return done, errors, latencies, began, ended, cpu


def run(
    target: str,
    op: str,
    work: Workload,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    processes: int = 2,
) -> LoadResult:
    """`op` against `target` at `concurrency` for at most `seconds` and `max_requests`."""
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        # Spawned interpreters take a while to import grpc: start together once all are up.
        pool.map(time.sleep, [0.0] * processes)
        start_at = time.time() + 0.3
        jobs = [
            (target, op, work, share, max_requests // processes, start_at, start_at + seconds, seed)
            for seed, share in enumerate(shares)
        ]
        results = pool.map(_worker, jobs)
    latencies = [value for result in results for value in result[2]]
    return LoadResult(
        requests=sum(r[0] for r in results),
        errors=sum(r[1] for r in results),
        seconds=max(r[4] for r in results) - min(r[3] for r in results),
        latencies_ms=latencies,
        client_cpu_seconds=sum(r[5] for r in results),
    )
