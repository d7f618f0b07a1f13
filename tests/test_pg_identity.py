"""The identity of a PostgreSQL database (docs/postgresql.md, "Identity"): meta's uuid,
the server's system identifier and the database's name. A dump restored into another
database of the suite's own server is refused by every command until `db reidentify`;
the original keeps working."""
import json
import os
import socket
import struct
import subprocess
import threading

from conftest import ctl, run
from pg_cluster import PG_BIN
from supervisor_helpers import Supervisor, make_plan, sql


def new_pg_db(tmp, url):
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    plan = make_plan(os.path.join(str(tmp), "plan.json"), runs=2, tiers=1, phases=2)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r
    return url


def restore_copy(cluster, url):
    """pg_dump the database at url and restore it into a new database; its URL."""
    name = cluster.new_database("copy")
    copy = cluster.url(name)
    dump = subprocess.run([os.path.join(PG_BIN, "pg_dump"), "--no-owner", url],
                          capture_output=True, text=True, check=True).stdout
    subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", copy],
                   input=dump, capture_output=True, text=True, check=True)
    return copy


def server_id(url):
    return sql(url, "SELECT CAST(system_identifier AS TEXT) || '/' || current_database()"
               " FROM pg_control_system()")[0][0]


def meta(url):
    return sql(url, "SELECT db_uuid, server_id FROM meta")[0]


def test_a_restored_dump_is_refused_until_reidentified_and_the_original_still_opens(
        tmp, pg_cluster, pg_url):
    orig = new_pg_db(tmp, pg_url)
    uuid, recorded = meta(orig)
    assert recorded == server_id(orig)
    copy = restore_copy(pg_cluster, orig)
    try:
        assert meta(copy) == (uuid, recorded)
        live = server_id(copy)
        assert live != recorded
        # Every command and the supervisor refuse it, naming both identities and the fix.
        for args in (["db", "check"], ["status"], ["run", "import",
                                                   os.path.join(str(tmp), "plan.json")]):
            r = ctl("--db", copy, *args)
            assert r.rc == 2, (args, r)
            assert "was made as system identifier/database %s, but this connection reaches " \
                "%s" % (recorded, live) in r.err, (args, r)
            assert "db reidentify" in r.err, r
        r = ctl("--db", copy, "db", "check", "--json")
        assert json.loads(r.out)["error"] == "EIDENT", r
        r = run("autopack-supervisor", "--db", copy, "--workers", 0)
        assert r.rc == 1 and "but this connection reaches %s" % live in r.err, r
        assert meta(copy) == (uuid, recorded)
        assert sql(copy, "SELECT count(*) FROM supervisors") == [(0,)]
        # The original opens as before.
        assert ctl("--db", orig, "db", "check").rc == 0
        # reidentify: a fresh uuid and the new server identity, the old ones recorded.
        r = ctl("--db", copy, "db", "reidentify", "--json")
        assert r.rc == 0, r
        j = json.loads(r.out)
        assert j["previous_uuid"] == uuid and j["uuid"] != uuid
        assert meta(copy) == (j["uuid"], live)
        logged = sql(copy, "SELECT command, args, ok, result FROM control_log")
        assert [row[:3] for row in logged] == [("db reidentify", uuid, 1)]
        assert "system identifier/database %s replaced %s" % (live, recorded) in logged[0][3]
        assert ctl("--db", copy, "db", "check").rc == 0
        sup = Supervisor(tmp, copy, "--workers", 1, "--dry-run", "--exit-when-drained",
                         name="copy")
        assert sup.wait(timeout=120) == 0, sup.stderr()
        assert sql(copy, "SELECT count(*) FROM attempts") == [(4,)]
        # The original is untouched and still opens.
        assert meta(orig) == (uuid, recorded)
        assert ctl("--db", orig, "db", "check").rc == 0
        sup = Supervisor(tmp, orig, "--workers", 1, "--dry-run", "--exit-when-drained",
                         name="orig")
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        pg_cluster.drop_database(copy.rsplit("/", 1)[1])


def test_a_database_made_without_a_server_identity_records_it_at_its_first_write_open(
        tmp, pg_cluster, pg_url):
    url = pg_url
    assert ctl("--db", url, "db", "init").rc == 0
    sql(url, "ALTER TABLE meta DROP COLUMN server_id")
    # Read-only opens have nothing to compare and change nothing.
    r = ctl("--db", url, "db", "check", "--allow-empty-db")
    assert r.rc == 0, r
    assert sql(url, "SELECT count(*) FROM information_schema.columns WHERE"
               " table_name = 'meta' AND column_name = 'server_id'") == [(0,)]
    # The first write open adds the column and records the server's identity.
    r = ctl("--db", url, "run", "import", make_plan(os.path.join(str(tmp), "plan.json"),
                                                    runs=1, phases=1))
    assert r.rc == 0, r
    assert meta(url)[1] == server_id(url)
    # From then on a restored dump of it is refused.
    copy = restore_copy(pg_cluster, url)
    try:
        r = ctl("--db", copy, "db", "check")
        assert r.rc == 2 and "db reidentify" in r.err, r
    finally:
        pg_cluster.drop_database(copy.rsplit("/", 1)[1])


class VersionProxy:
    """A TCP proxy to the suite's server that reports `version` as the server's
    server_version (its ParameterStatus at the start of each session; None: unchanged).
    Everything else passes through."""

    def __init__(self, port, version):
        self.upstream, self.version = port, version
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname):
        return "postgresql://autopack@127.0.0.1:%d/%s" % (self.port, dbname)

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, server, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True),
                             daemon=True).start()

    def _startup(self, buf):
        """The whole messages at the start of buf, server_version rewritten; the rest;
        whether the session's start is over (ReadyForQuery)."""
        out = b""
        while len(buf) >= 5:
            n = struct.unpack("!I", buf[1:5])[0]
            if len(buf) < 1 + n:
                break
            msg, buf = buf[:1 + n], buf[1 + n:]
            if msg[:1] == b"S" and msg[5:].startswith(b"server_version\x00"):
                body = b"server_version\x00" + self.version.encode() + b"\x00"
                msg = b"S" + struct.pack("!I", len(body) + 4) + body
            out += msg
            if msg[:1] == b"Z":
                return out + buf, b"", True
        return out, buf, False

    def _pipe(self, src, dst, rewrite):
        held, first = b"", True
        rewrite = rewrite and self.version is not None
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if rewrite and first and data == b"N":  # the answer to SSLRequest
                    dst.sendall(data)
                    first = False
                    continue
                first = False
                if rewrite:
                    data, held, done = self._startup(held + data)
                    rewrite = not done
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_a_server_older_than_postgresql_12_is_refused_by_every_program(
        tmp, pg_cluster, pg_url):
    dbname = pg_url.rsplit("/", 1)[1]
    same = VersionProxy(pg_cluster.port, None)
    old = VersionProxy(pg_cluster.port, "11.22 (Debian 11.22-0+deb10u1)")
    try:
        new_pg_db(tmp, same.url(dbname))
        want = ("%s: the server runs PostgreSQL 11.22 (Debian 11.22-0+deb10u1); autopack"
                " needs PostgreSQL 12 or later" % old.url(dbname))
        for args in (["db", "check"], ["db", "init"], ["status"], ["session", "list"]):
            r = ctl("--db", old.url(dbname), *args)
            assert r.rc == 2 and want in r.err, (args, r)
        sup = Supervisor(tmp, old.url(dbname), "--workers", 1, "--dry-run",
                         "--exit-when-drained")
        assert sup.wait(timeout=60) == 1, sup.stderr()
        assert want in sup.stderr()
        r = ctl("--db", same.url(dbname), "db", "check")
        assert r.rc == 0, r
    finally:
        same.close()
        old.close()
