"""A PostgreSQL server for the tests, started by the suite itself: initdb into a private
directory under /tmp as an unprivileged user (nobody, when the suite runs as root), a Unix
socket in that directory and a loopback port kept for it while it lives (no other server
is given the port while it is stopped), fsync off; stopped and removed at the end. Never a system cluster. Each pytest-xdist worker starts its own (initdb takes about a
second), and each test gets a database of its own in it."""
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
USER = "autopack"


def _reserved_port():
    """A socket bound to a free loopback port with SO_REUSEADDR, not listening: while it
    is open no bind to port 0 is given that port (another test's server, here or in
    another process, took it while the cluster was stopped, and the cluster could not
    start again), and the server, which binds it with SO_REUSEADDR, still may."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


class Cluster:
    """One running server: `port`, `dir` (also its socket directory), and databases made
    on demand; `options`, more of the server's settings ("-c name=value ...")."""

    def __init__(self, options=""):
        self.options = options
        self.dir = tempfile.mkdtemp(prefix="autopack-pg-", dir="/tmp")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self._names = itertools.count(1)
        self._port_held = _reserved_port()
        self.port = self._port_held.getsockname()[1]
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", USER, "-A", "trust",
                   "--no-sync", "-E", "UTF8"])
        self.start()

    def _run(self, argv, check=True):
        if self.as_root:
            argv = ["runuser", "-u", "nobody", "--"] + argv
        proc = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and proc.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (argv, proc.returncode, proc.stdout,
                                                          proc.stderr))
        return proc

    def start(self):
        """Start the server (on the same port again after a stop)."""
        for _ in range(5):
            proc = self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log,
                              "-o", "-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off"
                              " -c max_connections=200 %s" % (self.dir, self.port,
                                                              self.options),
                              "-w", "start"],
                             check=False)
            if proc.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not start:\n" + open(self.log).read()[-3000:])

    def stop(self, mode="fast"):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"],
                  check=False)

    def restart(self):
        """Stop the server (every connection drops) and start it again on its port."""
        self.stop("immediate")
        self.start()

    def url(self, dbname, socket_dir=False):
        if socket_dir:
            return "postgresql://%s@/%s?host=%s&port=%d" % (USER, dbname, self.dir, self.port)
        return "postgresql://%s@127.0.0.1:%d/%s" % (USER, self.port, dbname)

    def psql(self, sql, dbname="postgres"):
        proc = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
                               self.url(dbname)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("psql %r: %s" % (sql, proc.stderr))
        return proc.stdout

    def new_database(self, prefix="t"):
        """Create an empty database; return its name."""
        name = "%s_%d_%d" % (prefix, os.getpid(), next(self._names))
        self.psql('CREATE DATABASE "%s"' % name)
        return name

    def drop_database(self, name):
        self.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def close(self):
        self.stop("immediate")
        self._port_held.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def connect(url):
    """A psycopg2 connection to a test database (autocommit), JSON read as text."""
    import psycopg2
    import psycopg2.extras
    con = psycopg2.connect(url)
    con.autocommit = True
    # JSON columns as the text stored, as SQLite gives them.
    psycopg2.extras.register_default_json(con, loads=lambda x: x)
    psycopg2.extras.register_default_jsonb(con, loads=lambda x: x)
    return con


def _plain(v):
    """A value as SQLite's Python module gives it: booleans as 0/1, times as the store's
    text, numerics as int or float."""
    import datetime
    import decimal
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, decimal.Decimal):
        return int(v) if v == int(v) else float(v)
    return v


def query(url, sql, *args):
    """Rows of `sql` (with ? placeholders) on the database at `url`, as tuples of plain
    values."""
    con = connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), args)
            rows = cur.fetchall() if cur.description else []
            return [tuple(_plain(v) for v in r) for r in rows]
    finally:
        con.close()


def query_dicts(url, sql, *args):
    """Rows of `sql` as dicts of plain values."""
    con = connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, (_plain(v) for v in r))) for r in cur.fetchall()]
    finally:
        con.close()
