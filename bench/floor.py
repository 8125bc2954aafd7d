"""The floor of our sending stack: messages already built, sent by ``SmtpSender`` alone.

What ``digest run`` could reach if matching, recording, composing, marking sent and the
feeds cost nothing: the same count of messages of the same size, from 1 and from 2
processes (``smtp.concurrency`` connections in all, split as ``run.workers`` splits them),
into Postfix's ``smtp-sink``, beside ``smtp-source`` on the same sink. It bounds the
issue's "50% of smtp-source" target from above for this design: what is left of the
2 cores after this floor is the budget for everything else.

    python bench/floor.py                       # 4,861 messages of 108 KB (the 5,000 case)
    python bench/floor.py --messages 9717 --size 110000

Prints messages/s, CPU seconds per process and CPU milliseconds per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import Sink, smtp_source
from digest.deliver.base import Outcome, Outgoing
from digest.deliver.smtp import SmtpSender


def body(size: int, seed: int) -> bytes:
    """A message of ``size`` bytes: headers, then quoted-printable-like lines of 76
    characters, CRLF-ended, no line starting with "." (what the run's messages are)."""
    head = (
        f"From: Digest <digest@example.org>\r\nTo: reader{seed}@example.org\r\n"
        f"Subject: Your papers for today ({seed})\r\nMessage-ID: <{seed}.floor@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode()
    line = (b"Sample-efficient policy optimisation with learned world models =E2=80=94 " * 2)[
        :74
    ] + b"=\r\n"
    lines = (size - len(head)) // len(line) + 1
    return head + line * lines


async def send(port: int, count: int, size: int, concurrency: int, first: int) -> int:
    data = body(size, first)
    sender = SmtpSender(
        "127.0.0.1", port, security="none", username=None, password=None, concurrency=concurrency
    )
    items = (
        Outgoing(i, "bounces@example.org", (f"r{i}@example.org",), data, f"<{i}@x>", clean=True)
        for i in range(first, first + count)
    )
    sent = 0

    async def outcome(o: Outcome) -> None:
        nonlocal sent
        sent += o.ok

    await sender.deliver(items, outcome)
    return sent


def share(args: tuple[int, int, int, int, int], go: Any, out: Any) -> None:
    """One process's share, sent once ``go`` is set: (messages sent, its CPU seconds)."""
    port, count, size, concurrency, first = args
    go.wait()
    before = time.process_time()
    sent = asyncio.run(send(port, count, size, concurrency, first))
    out.put((sent, time.process_time() - before))


def measure(port: int, messages: int, size: int, processes: int, concurrency: int) -> str:
    per = [messages // processes + (i < messages % processes) for i in range(processes)]
    firsts = [sum(per[:i]) for i in range(processes)]
    spawn = multiprocessing.get_context("spawn")
    go, out = spawn.Event(), spawn.Queue()
    procs = [
        spawn.Process(target=share, args=((port, n, size, concurrency // processes, f), go, out))
        for n, f in zip(per, firsts, strict=True)
    ]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # started and imported before the clock
    start = time.perf_counter()
    go.set()
    done = [out.get() for _ in procs]
    wall = time.perf_counter() - start
    for proc in procs:
        proc.join()
    sent = sum(n for n, _ in done)
    cpu = [c for _, c in done]
    return json.dumps(
        {
            "processes": processes,
            "sent": sent,
            "seconds": round(wall, 2),
            "per_s": round(sent / wall),
            "cpu_s": [round(c, 2) for c in cpu],
            "cpu_ms_per_message": round(1000 * sum(cpu) / max(sent, 1), 3),
        }
    )


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4861)
    parser.add_argument("--size", type=int, default=108_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sink = Sink()
    try:
        print(f"load average: {os.getloadavg()[0]:.1f}")
        for _ in range(args.repeat):
            before = cpu_of(sink.proc.pid)
            source = smtp_source(sink.port, args.messages, args.size)
            used = cpu_of(sink.proc.pid) - before
            print(
                f"smtp-source: {source.messages / source.seconds:,.0f}/s"
                f" (smtp-sink's CPU: {used:.2f} s)"
            )
            for processes in (1, 2):
                before = cpu_of(sink.proc.pid)
                line = measure(sink.port, args.messages, args.size, processes, args.concurrency)
                used = cpu_of(sink.proc.pid) - before
                print(f"SmtpSender: {line} (smtp-sink's CPU: {used:.2f} s)")
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
