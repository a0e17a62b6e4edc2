"""How a command speaks: a callable taking one line (``click.echo``, ``print``, or a test's list.append). Its own
module, so that a command which prepares no dataset does not import the dataset machinery to name it."""

from __future__ import annotations

from collections.abc import Callable

Echo = Callable[[str], None]
