"""Find a ruleset to compare: a directory, or the ``rulesets/`` tree at a git revision.

``ketacds rules diff main HEAD`` compares the rules of two commits of the repository
the command runs in; ``v0.1.0:rulesets`` names a tree explicitly. A revision's tree is
extracted with ``git archive`` into a temporary folder, so the working tree and the
index are never touched.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from ketacds.errors import RulesetError

__all__ = ["DEFAULT_TREE", "ruleset_dir"]

#: The tree a bare revision stands for.
DEFAULT_TREE = "rulesets"


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)  # noqa: S603, S607


def ruleset_dir(spec: str, workdir: Path, *, repo: Path | None = None) -> Path:
    """The ruleset directory ``spec`` names.

    A directory is used as it is; ``REV`` or ``REV:TREE`` is extracted under ``workdir``.

    Raises:
        RulesetError: ``spec`` is neither a directory nor a revision holding the tree.
    """
    if Path(spec).is_dir():
        return Path(spec)
    where = repo if repo is not None else Path.cwd()
    revision, _, tree = spec.partition(":")
    tree = tree.strip("/") or DEFAULT_TREE
    try:
        found = _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], where)
    except OSError as error:
        raise RulesetError(f"not a directory, and git cannot run: {error.strerror}", file=spec) from None
    if found.returncode != 0:
        raise RulesetError("neither a ruleset directory nor a git revision of this repository", file=spec)
    commit = found.stdout.decode().strip()
    archive = _git(["archive", "--format=tar", commit, "--", tree], where)
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip().splitlines()
        raise RulesetError(
            f"no tree {tree!r} at {revision}: {message[-1] if message else 'git archive failed'}", file=spec
        )
    target = workdir / commit[:12]
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target / tree
