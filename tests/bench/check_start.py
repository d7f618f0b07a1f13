#!/usr/bin/python3
"""What starting a check command costs: a drain of 60 one-phase runs whose check is
`true`, with 2 workers and the LLM stand-in, the workspace outside /tmp (under TREE/build,
so that the check's /tmp is a tmpfs of its own). Prints the median of the workers'
`check command passed in N ms` lines and the user and system CPU of the supervisor and its
workers (/usr/bin/time). Compare trees in alternated runs: the figure follows the load.

usage: tests/bench/check_start.py [TREE [EXTRA SUPERVISOR ARGUMENTS...]]
       (TREE: the built tree whose binaries and tests to use, default this one)
"""
import os
import re
import shutil
import statistics
import sys
import tempfile
import uuid

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
EXTRA = sys.argv[2:]
os.environ["AUTOPACK_BIN"] = os.path.join(ROOT, "build", "rel", "bin")
sys.path.insert(0, os.path.join(ROOT, "tests"))
from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec  # noqa: E402
from supervisor_helpers import Supervisor  # noqa: E402

CHECKS = 60


def main():
    tmp = tempfile.mkdtemp(prefix="check-start-")
    ws = os.path.join(ROOT, "build", "check-start-%s" % uuid.uuid4().hex[:8])
    try:
        url = init_db(tmp)
        import_plan(tmp, url, [("r%d" % i, ws, [phase_spec("p", ("out/%d.py" % i,),
                                                           check="true")])
                               for i in range(CHECKS)])
        llm = Standin(tmp)
        sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm),
                         *EXTRA, env={"ANTHROPIC_API_KEY": "sk-ant-check-start"},
                         exe=os.path.join(os.environ["AUTOPACK_BIN"], "autopack-supervisor"),
                         prefix=("/usr/bin/time", "-f", "CPU %U %S"))
        try:
            rc = sup.wait(timeout=600)
        finally:
            sup.kill()
            llm.stop()
        err = sup.stderr()
        ms = [int(m) for m in re.findall(r"check command passed in (\d+) ms", err)]
        cpu = re.findall(r"CPU ([0-9.]+) ([0-9.]+)", err)
        if rc != 0 or len(ms) != CHECKS or not cpu:
            sys.exit("the drain failed (exit %s, %d checks passed):\n%s" % (rc, len(ms), err))
        print("%s %s: check command passed in %.1f ms (median of %d), CPU user %s s, "
              "system %s s, load %.1f" % (ROOT, " ".join(EXTRA), statistics.median(ms),
                                          CHECKS, cpu[-1][0], cpu[-1][1], os.getloadavg()[0]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
