"""Phases whose check commands are hostile."""
import os
import time

from e2e_helpers import (Standin, drain_until_exit, import_plan, init_db, needs_namespaces,
                         phase_spec, rows)

KEY = "sk-ant-hostile-phase-0123456789abcdef"

MANY_DIRS = ("/usr/bin/python3 -c 'import os\n"
             "for i in range(%d):\n os.makedirs(\"t/%%d/%%d\" %% (i // 1000, i))'")


def test_a_check_that_leaves_a_huge_tree_fails_no_worker(tmp):
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [
        phase_spec("p1", ("out/a.py",), check=MANY_DIRS % 200000),
        phase_spec("p2", ("out/b.py",), check="true")])])
    t0 = time.time()
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               "--heartbeat-timeout-seconds", 2,
                               env={"ANTHROPIC_API_KEY": KEY})
    attempts = rows(url, "SELECT phase_id, outcome, failure_reason, message FROM attempts")
    print(time.time() - t0, attempts, sup.stderr()[-3000:])
    assert [a["outcome"] for a in attempts] == ["success", "success"], attempts
