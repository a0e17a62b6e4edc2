"""A network that lets another process's file appear at an output path while it works: for tests of outputs that
must never replace what the tool did not write."""

from __future__ import annotations

from pathlib import Path


class Meanwhile:
    """A model or segmenter, and another process's file put at ``path`` while it works (by its first call)."""

    def __init__(self, network, path: Path, folder: bool = False):
        self.network, self.path, self.folder = network, path, folder

    def __getattr__(self, name):
        return getattr(self.network, name)

    def _put(self):
        if not self.path.exists():
            if self.folder:
                self.path.mkdir()
                (self.path / "notes.txt").write_text("a lab's file")
            else:
                self.path.write_text("a lab's file")

    def __call__(self, batch):
        self._put()
        return self.network(batch)

    def volume_and_kept(self, *args):
        self._put()
        return self.network.volume_and_kept(*args)
