"""Runs each C unit test (tests/unit/*.c) in its own process and temporary directory."""
import os
import subprocess

import pytest

from conftest import binpath


def unit_names():
    out = subprocess.run([binpath("unit-tests"), "--list"], capture_output=True,
                         text=True, check=True).stdout
    return sorted(out.split())


@pytest.mark.parametrize("name", unit_names())
def test_unit(name, tmp):
    proc = subprocess.run([binpath("unit-tests"), name], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, TMPDIR=str(tmp)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
