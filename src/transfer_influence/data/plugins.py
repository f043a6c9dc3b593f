"""User code named in a config by import path: ``"package.module:function"`` or ``"path/file.py:function"``.

A config names a user's dataset loader or source trainer this way, as MadryLab's datamodels name a
user's ``main``. The name is resolved when the config is read, so a path that does not import or
lacks its attribute is one clear error before a study directory exists or a model trains. Each
plugin's version enters the study's results key (``plugin_version``), so the results of two
plugins, or of two versions of one, are never mixed in one study.

This module imports only the standard library: resolving a name imports the user's module, whatever
that module itself imports.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from transfer_influence.errors import InputError

SEPARATOR = ":"


def is_import_path(name: str) -> bool:
    """Whether a config value names user code (``module:attribute``) rather than a built-in name."""
    return SEPARATOR in name


def _split(path: str, what: str) -> tuple[str, str]:
    module, sep, attribute = path.rpartition(SEPARATOR)
    if not sep or not module or not attribute.isidentifier():
        raise InputError(
            f"{what} {path!r} is not an import path: write 'package.module:function' (or 'path/file.py:function')"
        )
    return module, attribute


def _file_module(file: str, what: str, path: str) -> ModuleType:
    """A module loaded from a ``.py`` file (relative to the working directory), once per process."""
    location = Path(file).resolve()
    if not location.is_file():
        raise InputError(f"{what} {path!r}: there is no file {location}; give the path of an existing .py file")
    name = "transfer_influence_plugin_" + hashlib.sha256(str(location).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, location)
    if spec is None or spec.loader is None:
        raise InputError(f"{what} {path!r}: {location} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module failing to import is the user's error to fix
        del sys.modules[name]
        raise InputError(f"{what} {path!r}: importing {location} failed: {type(exc).__name__}: {exc}") from None
    return module


def _module(module: str, what: str, path: str) -> ModuleType:
    if module.endswith(".py"):
        return _file_module(module, what, path)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            f"{what} {path!r}: module {module!r} does not import ({exc}); install it or put its folder on PYTHONPATH"
        ) from None
    except Exception as exc:
        raise InputError(f"{what} {path!r}: importing {module!r} failed: {type(exc).__name__}: {exc}") from None


def resolve(path: str, what: str) -> Callable[..., Any]:
    """The callable ``path`` names; ``what`` ("dataset", "train.trainer") names the setting in errors."""
    module_name, attribute = _split(path, what)
    module = _module(module_name, what, path)
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise InputError(f"{what} {path!r}: module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(found):
        raise InputError(f"{what} {path!r}: {attribute!r} is a {type(found).__name__}, not a function")
    return found  # type: ignore[no-any-return]


def plugin_version(path: str) -> str:
    """The version of the code ``path`` names, for the results key: the module's (or its top-level
    package's) ``__version__``, else its distribution's version, else a hash of the module's source
    file, so that editing an unversioned plugin never resumes a study made with the old code."""
    module_name, _ = _split(path, "plugin")
    module = _module(module_name, "plugin", path)
    top = sys.modules.get(module_name.split(".")[0]) if not module_name.endswith(".py") else None
    for candidate in (module, top):
        version = getattr(candidate, "__version__", None)
        if isinstance(version, str):
            return version
    if top is not None:
        distributions = importlib.metadata.packages_distributions().get(top.__name__, [])
        if distributions:
            return f"{distributions[0]}=={importlib.metadata.version(distributions[0])}"
    source = getattr(module, "__file__", None)
    if source and Path(source).is_file():
        return "source-sha256:" + hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
    return "unversioned"
