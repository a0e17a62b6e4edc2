"""ordered_map: thread-parallel work that hands results back in order, bounded, errors in place."""

import threading
import time

import pytest

from heart_sr_tf.data.threads import ordered_map


def test_results_come_in_order_whatever_finishes_first():
    def slow_first(i):
        time.sleep(0.05 if i % 3 == 0 else 0.0)
        return i * i

    assert list(ordered_map(slow_first, range(20), workers=3)) == [i * i for i in range(20)]


def test_at_most_ahead_items_start_before_they_are_asked_for():
    started, lock = [], threading.Lock()

    def record(i):
        with lock:
            started.append(i)
        return i

    results = ordered_map(record, range(100), workers=2, ahead=4)
    assert next(results) == 0
    time.sleep(0.1)  # give the threads every chance to run further than allowed
    assert len(started) <= 5  # the first four, and the one that refilled the queue
    assert list(results) == list(range(1, 100)) and sorted(started) == list(range(100))


def test_an_error_is_raised_where_its_result_would_be():
    def fail_at_three(i):
        if i == 3:
            raise ValueError("item 3")
        return i

    seen = []
    with pytest.raises(ValueError, match="item 3"):
        for value in ordered_map(fail_at_three, range(10), workers=2):
            seen.append(value)
    assert seen == [0, 1, 2]
