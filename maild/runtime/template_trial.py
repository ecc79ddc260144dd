"""What a start's trial of the templates found last time, so that a start after one that
found nothing failing, with the same templates, configuration and maild, need not try
them again.

The trial (`checks.failing_templates`) renders every template in every sample situation:
about a tenth of a second of every start, for an answer that changes only with what it
reads. Its fingerprint is made of that: the text of every template file in use, the
configuration (secrets are no part of its dump), Jinja's version and maild's own code (the
path, size and modification time of each of its files). A trial that finds a template
failing is never remembered: the warning is given at every start until it is mended.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import jinja2

import maild
from maild.config import Config
from maild.outbound.templates import SHIPPED_TEMPLATES

log = logging.getLogger(__name__)

_CODE = Path(maild.__file__).parent


def fingerprint(config: Config) -> str:
    digest = hashlib.sha256()
    digest.update(config.model_dump_json().encode())
    digest.update(jinja2.__version__.encode())
    for directory in (config.templates.dir, SHIPPED_TEMPLATES):
        if directory is None:
            continue
        digest.update(str(directory).encode() + b"\0")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            names = []
        for name in names:
            if not name.endswith(".j2"):
                continue
            try:
                text = (directory / name).read_bytes()
            except OSError:
                continue  # a subdirectory, or gone: not a template in use
            digest.update(f"{name}\0{len(text)}\0".encode() + text)
    for root, directories, files in os.walk(_CODE):
        directories.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                found = os.stat(os.path.join(root, name))
                digest.update(f"{root}/{name}\0{found.st_size}\0{found.st_mtime_ns}\0"
                              .encode())
    return digest.hexdigest()


class TemplateTrials:
    """The fingerprint of the last trial that found every template rendering, in a
    file of the storage directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def passed(self, fingerprint: str) -> bool:
        try:
            return self.path.read_text() == fingerprint
        except OSError:
            return False

    def remember_passed(self, fingerprint: str) -> None:
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(fingerprint)
            partial.replace(self.path)
        except OSError as exc:
            log.debug("the templates' trial not remembered in %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
