"""IPython configuration for the kernel: profile, config files, extensions, startup code.

What ipykernel's kernel application applies, cokernel applies too when it owns its process
(``cokernel start``; ``KernelOptions.profile``, ``--profile=NAME``, default ``default``):

- the profile directory ``$IPYTHONDIR/profile_NAME`` (made if missing);
- config files, later ones winning: ``ipython_config.py`` then ``ipython_kernel_config.py``
  (and their ``.json`` twins), each looked up in the profile directory,
  ``sys.prefix/etc/ipython`` and the system directories IPython uses (``/usr/local/etc/ipython``,
  ``/etc/ipython``), the profile's copy winning. The shell is configured from them
  (``c.InteractiveShell...``), and so are ``c.InteractiveShellApp`` / ``c.IPKernelApp``'s
  ``extensions``, ``exec_lines``, ``exec_files``, ``code_to_run``, ``file_to_run``,
  ``module_to_run``, ``matplotlib``, ``gui`` and ``pylab``;
- the default extensions (``storemagic``, so ``%store`` works) and the configured ones;
- ``PYTHONSTARTUP``, then the profile's ``startup/*.py`` and ``*.ipy`` files in name order, then
  ``exec_lines`` and ``exec_files``.

A file that fails to load is logged and skipped: a broken config never stops the kernel. An
in-process kernel (the callback interface) reads no config and runs no startup files unless
its host names a profile; it still loads the default extensions.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from IPython.core.application import ENV_CONFIG_DIRS, SYSTEM_CONFIG_DIRS
from IPython.core.profiledir import ProfileDir, ProfileDirError
from IPython.core.shellapp import InteractiveShellApp
from IPython.paths import get_ipython_dir
from traitlets.config import Config
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

log = logging.getLogger("cokernel.profile")

#: What ipykernel's shell puts in the environment: cells' commands (``!ls``, ``%clear``, git)
#: see a colour terminal, and never start a pager (no one could page through it).
KERNEL_ENVIRONMENT = {
    "TERM": "xterm-color",
    "CLICOLOR": "1",
    "FORCE_COLOR": "1",
    "CLICOLOR_FORCE": "1",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
}


def set_environment() -> None:
    """Set :data:`KERNEL_ENVIRONMENT` in ``os.environ`` (where the kernel owns its process)."""
    os.environ.update(KERNEL_ENVIRONMENT)


CONFIG_FILES = ("ipython_config", "ipython_kernel_config")


def profile_dir(name: str, ipython_dir: str | None = None) -> ProfileDir:
    """The directory of profile ``name`` in ``ipython_dir`` (``$IPYTHONDIR``), made if missing."""
    ipython_dir = ipython_dir or get_ipython_dir()
    try:
        found: ProfileDir = ProfileDir.find_profile_dir_by_name(ipython_dir, name)
        return found
    except ProfileDirError:
        if name != "default":
            log.warning("IPython profile %r did not exist in %s: created", name, ipython_dir)
        made: ProfileDir = ProfileDir.create_profile_dir_by_name(ipython_dir, name)
        return made


def load_config(profile: ProfileDir) -> Config:
    """The merged configuration of ``profile``'s config files (see the module docstring)."""
    config = Config()
    # Lowest priority first: the profile's own files are merged last and win.
    directories = [*SYSTEM_CONFIG_DIRS[::-1], *ENV_CONFIG_DIRS[::-1], profile.location]
    for base in CONFIG_FILES:
        for directory in directories:
            for suffix, loader_class in (
                (".json", JSONFileConfigLoader),
                (".py", PyFileConfigLoader),
            ):
                filename = base + suffix
                if not os.path.isfile(os.path.join(directory, filename)):
                    continue
                try:
                    loader: Any = loader_class(filename, path=directory, log=log)
                    config.merge(loader.load_config())
                except Exception:
                    log.exception(
                        "IPython config file %s failed: skipped", os.path.join(directory, filename)
                    )
    return config


class IPKernelApp(InteractiveShellApp):  # type: ignore[misc]
    """Runs what IPython's kernel application runs at start-up, on a kernel's shell.

    Named like ipykernel's application so that ``c.IPKernelApp.exec_lines`` and the rest apply
    as they do there (as well as ``c.InteractiveShellApp...``).
    """

    def __init__(self, shell: Any, profile: ProfileDir, config: Config) -> None:
        super().__init__(config=config, shell=shell)
        self.log = log
        self.profile_dir = profile
        self.ipython_dir = shell.ipython_dir
        self.extra_args: list[str] = []

    def start(self, *, run_code: bool) -> None:
        """Load the extensions; with ``run_code``, enable the configured GUI/matplotlib and run
        the startup files and configured code."""
        self.init_extensions()
        if run_code:
            self.init_gui_pylab()
            self.init_code()


def apply(shell: Any, profile: ProfileDir | None, config: Config | None) -> None:
    """Apply ``profile``'s configuration to ``shell`` (no profile: only default extensions)."""
    app = IPKernelApp(shell, profile or shell.profile_dir, config or Config())
    try:
        app.start(run_code=profile is not None)
    except Exception:  # IPython logs per item; this is for anything else
        log.exception("applying the IPython configuration failed")
