"""A check command reads none of the files libpq takes a password or a client key from:
the password file (PGPASSFILE, ?passfile=, ~/.pgpass), the service file (PGSERVICEFILE,
~/.pg_service.conf, which may hold a password) and the client key (PGSSLKEY, ?sslkey=,
~/.postgresql/postgresql.key). $HOME is empty to a check, but a PGPASSFILE outside it
was there for it to read (`cat $PGPASSFILE`: the path is in the supervisor's environment,
and a ?passfile= in every command line the check reads), and with it the database's
password. In the check's mount namespace /dev/null is bound over each, as over the
database's own files: it cannot be opened."""
import os
import uuid

import pytest

from e2e_helpers import (Standin, dir_outside_temp_dirs, drain_until_exit, import_plan,
                         init_db, needs_namespaces, phase_spec, rows)

KEY = "sk-ant-pgsecrets-test-key"


@pytest.fixture
def outside():
    """A directory outside the temporary directories and $HOME's hiding, as an operator's
    /etc/autopack is."""
    for top in dir_outside_temp_dirs("pgsecrets"):
        yield top


def read_drain(tmp, paths, env, url=None, args=()):
    """Drain one phase whose check tries to read each of `paths`, the supervisor given
    `env` (and `args`); return what it read of each ("" when refused) and its errors."""
    ws = os.path.join(str(tmp), "ws")
    url = url or init_db(tmp)
    url = init_db(tmp, url=url) if url.startswith("postgresql") else url
    check = "; ".join("cat %s > read-%d.txt 2>> errors.txt" % (p, i)
                      for i, p in enumerate(paths)) + "; true"
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               *args, env=dict(env, ANTHROPIC_API_KEY=KEY))
    assert rc == 0, sup.stderr()
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], sup.stderr()
    got = []
    for i in range(len(paths)):
        with open(os.path.join(ws, "read-%d.txt" % i)) as f:
            got.append(f.read())
    with open(os.path.join(ws, "errors.txt")) as f:
        return got, f.read()


def secret_file(top, name):
    path = os.path.join(top, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("*:*:*:autopack:pw-%s-SECRET\n" % uuid.uuid4().hex)
    os.chmod(path, 0o600)
    return path


def test_a_check_cannot_read_the_files_the_environment_names_for_libpq(tmp, outside):
    needs_namespaces()
    files = {var: secret_file(outside, var.lower()) for var in
             ("PGPASSFILE", "PGSERVICEFILE", "PGSSLKEY")}
    # A file the environment names nothing of stays readable: the check reads what it may.
    plain = secret_file(outside, "plain.txt")
    got, errors = read_drain(tmp, list(files.values()) + [plain], files)
    assert got[:3] == ["", "", ""], (got, errors)
    assert errors.count("Permission denied") == 3, errors
    assert got[3] == open(plain).read()
    for path in files.values():
        assert "SECRET" in open(path).read()


def test_a_check_cannot_read_the_defaults_under_a_home_it_is_shown(tmp, outside):
    """--check-home read-only shows the check $HOME: its ~/.pgpass, ~/.pg_service.conf and
    ~/.postgresql/postgresql.key stay out of reach."""
    needs_namespaces()
    names = (".pgpass", ".pg_service.conf", ".postgresql/postgresql.key")
    paths = [secret_file(outside, n) for n in names]
    plain = secret_file(outside, "notes.txt")
    got, errors = read_drain(tmp, paths + [plain], {"HOME": outside},
                             args=("--check-home", "read-only"))
    assert got[:3] == ["", "", ""], (got, errors)
    assert got[3] == open(plain).read(), (got, errors)


def test_a_check_cannot_read_the_passfile_the_database_url_names(tmp, outside, pg_url):
    needs_namespaces()
    passfile = secret_file(outside, "pgpass")
    sep = "&" if "?" in pg_url else "?"
    url = pg_url + sep + "passfile=" + passfile
    got, errors = read_drain(tmp, [passfile], {}, url=url)
    assert got == [""], (got, errors)
    assert "Permission denied" in errors, errors


def test_a_pgpassfile_that_is_dev_null_or_a_directory_is_left_as_it_is(tmp, outside):
    """PGPASSFILE=/dev/null (the password file turned off), or a directory: /dev/null bound
    over /dev/null would have opened for no check, and over a directory for none at all."""
    needs_namespaces()
    got, errors = read_drain(tmp, ["/dev/null", outside], {"PGPASSFILE": "/dev/null",
                                                           "PGSERVICEFILE": outside})
    assert got == ["", ""], (got, errors)
    assert "Is a directory" in errors and "Permission denied" not in errors, errors
