"""Settings of the role or the database set against autopack (ALTER DATABASE … SET, ALTER
ROLE … SET): every connection makes its own where autopack's statements rely on them, and
names what is wrong where it cannot (docs/postgresql.md, "Settings of the role and the
database")."""
import pytest

from pg_cluster import connect
from supervisor_helpers import Supervisor, sql, wait_for
from test_fleet import SESSION_LOCK_KEY, attempts, new_pg_db


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_supervisors_drain_together_whatever_the_default_isolation(tmp, pg_cluster, level):
    """The database's default isolation made REPEATABLE READ or SERIALIZABLE; three
    supervisors, held at the session-choosing lock until all three wait for it, then drain
    200 phases together. Each must exit 0 in one shared session, every phase visited
    once, and no statement fail for serialization. Before, under SERIALIZABLE the session's
    choice failed (`could not serialize access`, exit 1); under REPEATABLE READ each chose
    from a snapshot taken before it waited for the lock, saw no other's session, started
    its own, and the dry run visited every phase three times (600 attempts)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=20, tiers=1, phases=10)
    pg_cluster.psql("ALTER DATABASE \"%s\" SET default_transaction_isolation = '%s'"
                    % (name, level))
    holder = connect(url)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SESSION_LOCK_KEY,))
    sups = []
    try:
        sups = [Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained",
                           "--lease-timeout", 5, name="sup%d" % i) for i in range(3)]
        for s in sups:
            wait_for(lambda: "the session-choosing lock is held by" in s.stderr(),
                     timeout=60, what="each supervisor waiting for the lock")
        holder.rollback()
        for s in sups:
            assert s.wait(timeout=300) == 0, s.stderr()
    finally:
        holder.close()
        for s in sups:
            s.kill()
    for s in sups:
        assert "could not serialize" not in s.stderr(), s.stderr()
    rows = attempts(url)
    assert len(rows) == 200
    assert len({(r[1], r[2]) for r in rows}) == 200, "a phase was visited twice"
    assert sql(url, "SELECT count(*), min(stop_reason) FROM drain_sessions") == [(1, "drained")]
