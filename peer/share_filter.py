"""Which files of a share folder are left out: hidden ones unless asked for, and the operator's patterns.

Hidden files and folders (a name starting with a dot) hold what nobody means to publish: a home
folder's `.ssh` keys, `.env` secrets, a checkout's `.git`. Like Direct Connect clients, a share
leaves them out unless `--share-hidden`. `--exclude` patterns (shell wildcards, as rsync and
.gitignore take them; here `*` also matches across folders) leave out more: one without a slash
matches a file or folder name at any depth (`*.tmp`, `node_modules`), one with a slash the path
from the share's root (`photos/raw`, `/build`, `*/cache/*`); a folder left out takes everything
under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class ShareFilter:
    share_hidden: bool = False
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(cls, share_hidden: bool, patterns: Sequence[str]) -> ShareFilter:
        """A trailing slash is dropped (`cache/` is the folder cache); a leading one anchors the
        pattern at the share's root (`/build` is not `src/build`), as in .gitignore."""
        cleaned = (p.strip().rstrip("/") for p in patterns)
        return cls(share_hidden, tuple(p for p in cleaned if p.lstrip("/")))

    def why_left_out(self, name: str) -> str:
        """Why the file or folder at name (a path from the share's root, "/"-separated) is left
        out, or "" when it is shared as far as its own name goes (its folders are asked apart)."""
        base = name.rsplit("/", 1)[-1]
        if base.startswith(".") and not self.share_hidden:
            return "hidden"
        for pattern in self.exclude:
            if "/" in pattern:  # a path from the root, with or without its leading slash
                matched = fnmatchcase("/" + name, pattern if pattern.startswith("/") else "/" + pattern)
            else:
                matched = fnmatchcase(base, pattern)
            if matched:
                return f"excluded by {pattern!r}"
        return ""

    def why_path_left_out(self, name: str) -> str:
        """why_left_out for name and each folder above it."""
        parts = name.split("/")
        for depth in range(1, len(parts) + 1):
            if why := self.why_left_out("/".join(parts[:depth])):
                return why
        return ""

    def describe(self) -> str:
        """For a log line: what this filter leaves out."""
        parts = [] if self.share_hidden else ["hidden files and folders"]
        parts += [repr(p) for p in self.exclude]
        return ", ".join(parts) or "nothing"
