"""Unix users created by a test (``useradd``), and running the project's code as them.

The venv's interpreter lives under /root (mode 0700 here), which other users cannot reach; a
test user runs the system ``python3.11`` (same ABI) with the worktree and the venv's
site-packages on ``PYTHONPATH``, and the venv's ``lib`` (mpich) on ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
USER_PYTHON = "/usr/bin/python3.11"  # not a pyenv shim under /root


def can_create_users() -> bool:
    """Root with useradd available."""
    return os.geteuid() == 0 and shutil.which("useradd") is not None


def create_user(prefix: str = "qs", groups: tuple[str, ...] = ()) -> str:
    """A new unix user with a home directory; delete it with `delete_user`."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    args = ["useradd", "-m", "-s", "/bin/sh"]
    if groups:
        args += ["-G", ",".join(groups)]
    subprocess.run([*args, name], check=True, capture_output=True, timeout=60)
    return name


def create_group(prefix: str = "qg") -> str:
    """A new unix group; delete it with `delete_group`."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    subprocess.run(["groupadd", name], check=True, capture_output=True, timeout=60)
    return name


def delete_user(name: str) -> None:
    """Remove the user and its home directory."""
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True, timeout=60, check=False)


def delete_group(name: str) -> None:
    """Remove the group."""
    subprocess.run(["groupdel", name], capture_output=True, timeout=60, check=False)


def user_env(user: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for running qsched code as `user`."""
    site = sysconfig.get_paths()["purelib"]
    home = pwd.getpwnam(user).pw_dir
    env = {
        "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "PYTHONPATH": f"{ROOT}:{site}",
        "LD_LIBRARY_PATH": str(VENV / "lib"),
        "MPLCONFIGDIR": f"{home}/.mpl",
    }
    return env | (extra or {})


def run_as(
    user: str, argv: list[str], env: dict[str, str], timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run `argv` as `user` (setuid in the child) with exactly `env`."""
    record = pwd.getpwnam(user)
    return subprocess.run(
        argv,
        env=env,
        user=record.pw_uid,
        group=record.pw_gid,
        extra_groups=os.getgrouplist(user, record.pw_gid),
        cwd=record.pw_dir,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
