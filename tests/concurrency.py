"""Run the same call from many threads at once, for race tests on a real database."""

import threading
from collections.abc import Callable

from django.db import connections

from apps.core.exceptions import DomainError


def race(attempts: int, call: Callable[[int], object]) -> list[str]:
    """Start `call(n)` in `attempts` threads released together; return each outcome:
    "ok", the DomainError's code, or "<Exception>: <message>" for anything unexpected."""
    start = threading.Barrier(attempts)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        try:
            start.wait()
            call(n)
            result = "ok"
        except DomainError as exc:
            result = exc.code
        except Exception as exc:  # a bug: the caller's assertion on the outcomes shows it
            result = f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()  # this thread's connection
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
