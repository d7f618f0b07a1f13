"""An `autopack-ctl` write on PostgreSQL whose COMMIT's answer is lost with its connection
(a server restarted, a network cut, its session ended as it committed): the command cannot
know whether the server committed it, and says so (docs/postgresql.md, "Waiting for the
database")."""
import os

import pytest

from conftest import ctl
from pg_cut_proxy import CutProxy
from supervisor_helpers import make_plan, sql


@pytest.mark.parametrize("mode, runs", [("landed", 2), ("lost", 0)])
def test_an_import_whose_commit_answer_is_lost_says_it_may_have_committed(
        tmp, pg_cluster, mode, runs):
    """`run import` through a proxy that drops the connection with its COMMIT, after the
    server committed it (`landed`) or before it saw it (`lost`): the command fails (exit 2)
    saying that the server may have committed it or not and to look before importing
    again; the runs are there or not as the server decided. Before, it said only
    `committing the import: server closed the connection unexpectedly`, which an operator
    took for an import that did not happen."""
    name = pg_cluster.new_database()
    url = pg_cluster.url(name)
    assert ctl("--db", url, "db", "init").rc == 0
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 2, 1, 2)
    proxy = CutProxy(pg_cluster.port, mode, 1, ran=[b"INSERT INTO runs"])
    try:
        r = ctl("--db", proxy.url(name), "run", "import", plan)
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert r.rc == 2 and ("committing the import: " in r.err and "; the connection was lost"
                          " with the COMMIT on its way, so the server may have committed it"
                          " or not: look at the database (autopack-ctl db check) before"
                          " giving the command again") in r.err, r
    assert sql(url, "SELECT count(*) FROM runs") == [(runs,)]
