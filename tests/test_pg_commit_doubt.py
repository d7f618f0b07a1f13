"""An `autopack-ctl` write on PostgreSQL whose COMMIT's answer is lost with its connection
(a server restarted, a network cut, its session ended as it committed): the command
connects again, ends the old session if it still holds the transaction, and reads the
transaction's status: committed (exit 0, said on stderr), not committed (exit 2, nothing
written, the command can be given again), or, when that cannot be known, says so
(docs/postgresql.md, "A command's COMMIT left unanswered")."""
import os
import re
import subprocess

import pytest

from conftest import binpath, ctl, preload
from pg_cut_proxy import CutProxy
from supervisor_helpers import make_plan, sql, wait_for

COMMITTED = (r"autopack: committing the import: the connection was lost with the COMMIT on"
             r" its way; connected again, transaction \d+ committed: it is written, nothing"
             r" more to do")
NOT_COMMITTED = (r"committing the import: .*; the connection was lost with the COMMIT on its"
                 r" way; connected again, transaction \d+ did not commit%s: nothing of it was"
                 r" written, and the command can be given again")


@pytest.mark.parametrize("mode, runs", [("landed", 2), ("lost", 0), ("held", 0)])
def test_an_import_whose_commit_answer_is_lost_is_settled(tmp, pg_cluster, mode, runs):
    """`run import` through a proxy that drops the connection with its COMMIT, after the
    server committed it (`landed`), before it saw it (`lost`), or holding it while it cuts
    only the command's side, the server's session left inside the transaction (`held`):
    the command connects again and says whether it committed, exit 0, or not, exit 2
    (the held session is ended first: the COMMIT the proxy sends it late finds no session
    to commit in). Before, it said only that the server may have committed it or not,
    and to look."""
    name = pg_cluster.new_database()
    url = pg_cluster.url(name)
    assert ctl("--db", url, "db", "init").rc == 0
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 2, 1, 2)
    proxy = CutProxy(pg_cluster.port, mode, 1, ran=[b"INSERT INTO runs"])
    try:
        r = ctl("--db", proxy.url(name), "run", "import", plan)
        if mode == "held":
            proxy.release()
            assert proxy.late_done.wait(30)
            assert proxy.late == "ended"
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    if runs:
        assert r.rc == 0 and re.search(COMMITTED, r.err), r
    else:
        assert r.rc == 2 and re.search(NOT_COMMITTED % "", r.err), r
    assert sql(url, "SELECT count(*) FROM runs") == [(runs,)]


def import_held_at_commit(url, plan, gate):
    """`run import` of `plan` held as it is about to send its COMMIT (pq-shim.so's gate at
    `gate`), running."""
    env = dict(os.environ, **preload("pq-shim.so", AUTOPACK_PQ_SHIM_GATE=gate,
                                     AUTOPACK_PQ_SHIM_GATE_MATCH="COMMIT"))
    return subprocess.Popen([binpath("autopack-ctl"), "--db", url, "run", "import", plan],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_an_import_whose_session_is_ended_at_its_commit_did_not_commit(tmp, pg_url):
    """The server process of `run import` ended (pg_terminate_backend) as it is about to
    send its COMMIT (held there by pq-shim.so's gate): the COMMIT finds no session, the
    command connects again and says the import did not commit, and it can be given
    again."""
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 2, 1, 2)
    assert ctl("--db", pg_url, "db", "init").rc == 0
    gate = os.path.join(str(tmp), "gate")
    proc = import_held_at_commit(pg_url, plan, gate)
    try:
        wait_for(lambda: os.path.exists(gate + ".held"), 60, what="the COMMIT held")
        assert sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                           " AND datname = current_database() AND backend_xid IS NOT NULL"
                           " AND pg_terminate_backend(pid)") == [(1,)]
        open(gate, "w").close()
        out, err = proc.communicate(timeout=60)
    finally:
        open(gate, "w").close()
        proc.kill()
    assert proc.returncode == 2 and re.search(NOT_COMMITTED % "", err), err
    assert sql(pg_url, "SELECT count(*) FROM runs") == [(0,)]
    r = ctl("--db", pg_url, "run", "import", plan)
    assert r.rc == 0, r
    assert sql(pg_url, "SELECT count(*) FROM runs") == [(2,)]


@pytest.fixture
def own_cluster():
    """A PostgreSQL server of this test alone (it is restarted under the command)."""
    from pg_cluster import Cluster
    c = Cluster()
    yield c
    c.close()


def test_an_import_whose_server_restarts_at_its_commit_did_not_commit(tmp, own_cluster):
    """The server stopped at once (as in a crash) and started again while `run import` is
    about to send its COMMIT: the command connects to the restarted server, which never
    committed the transaction, and says so (whether the server knows its id as rolled
    back, or as past every id it knows: never written to its log)."""
    url = own_cluster.url(own_cluster.new_database())
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 2, 1, 2)
    assert ctl("--db", url, "db", "init").rc == 0
    gate = os.path.join(str(tmp), "gate")
    proc = import_held_at_commit(url, plan, gate)
    try:
        wait_for(lambda: os.path.exists(gate + ".held"), 60, what="the COMMIT held")
        own_cluster.restart()
        open(gate, "w").close()
        out, err = proc.communicate(timeout=90)
    finally:
        open(gate, "w").close()
        proc.kill()
    assert proc.returncode == 2 and re.search(
        NOT_COMMITTED % r" \(the server restarted meanwhile[^)]*\)", err), err
    assert sql(url, "SELECT count(*) FROM runs") == [(0,)]


def test_an_import_connected_again_to_another_server_of_the_same_name_says_it_cannot_know(
        tmp, pg_cluster, own_cluster):
    """The COMMIT's answer lost (the server committed it), and the address then reaching
    another server that holds a database of the same name: the command cannot know what
    became of its transaction there, says so naming both servers, exit 2, and writes
    nothing to the other server (a status of the id read there would be another
    transaction's)."""
    name = pg_cluster.new_database()
    url = pg_cluster.url(name)
    assert ctl("--db", url, "db", "init").rc == 0
    own_cluster.psql('CREATE DATABASE "%s"' % name)
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 2, 1, 2)
    proxy = CutProxy(pg_cluster.port, "landed", 1, ran=[b"INSERT INTO runs"], gate=True)
    try:
        proc = subprocess.Popen([binpath("autopack-ctl"), "--db", proxy.url(name), "run",
                                 "import", plan], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proxy.cut.wait(60)
        proxy.upstream = own_cluster.port
        proxy.open()
        out, err = proc.communicate(timeout=90)
    finally:
        proxy.close()
    assert proc.returncode == 2 and re.search(
        r"committing the import: .*, so the server may have committed it or not \(connected"
        r" again, the address reaches another server \(system identifier \d+, not \d+\),"
        r" which knows nothing of transaction \d+\): look at the database", err), err
    assert sql(url, "SELECT count(*) FROM runs") == [(2,)]
    assert sql(own_cluster.url(name), "SELECT count(*) FROM pg_tables"
                                      " WHERE schemaname = 'public'") == [(0,)]
