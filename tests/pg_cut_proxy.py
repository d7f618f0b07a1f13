"""A TCP proxy between a supervisor and the suite's PostgreSQL server that loses the
answer of one COMMIT: the K-th COMMIT of a transaction that opened attempts (a dispatch
round's claim; with `writes`, of one that wrote events and opened none; with `ran`, a list
of statements' first words, of one that ran each of them, prepared or unnamed) is either sent to the server and
its answer dropped with the connection
(the transaction commits, the client learns nothing: `landed`), dropped with the
connection before the server sees it (the transaction is rolled back: `lost`), or held
while only the client's side is cut, as a cut network would, the server's session left
waiting inside the transaction (`held`): release() then sends it to the server, late,
and `late` says what became of it ("committed", or "ended": the session was gone).
Every other byte passes through untouched, and connections made after the cut pass
through too; with `gate`, only once open() was called (until then they wait to be
accepted, and nothing reaches the server). A client that connects while the server
cannot be reached is closed at once, as the server's absence would, and counted in
`refused`; the proxy goes on accepting."""
import re
import socket
import struct
import threading

# The end of a simple Query message whose last statement is COMMIT.
COMMIT_END = b"COMMIT\x00"
# The server's answer to it: CommandComplete.
COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"
BEGIN = b"Q\x00\x00\x00\x0aBEGIN\x00"
# The claim's Parse message: the statement's name, then its text.
CLAIM_PARSE = re.compile(rb"P[\s\S]{4}(autopack_\d+)\x00WITH w AS MATERIALIZED")
# The Parse message of the events' insert.
EVENTS_PARSE = re.compile(rb"P[\s\S]{4}(autopack_\d+)\x00INSERT INTO events ")


def commit_query(data):
    """Where in `data` the simple Query message whose last statement is COMMIT begins (a
    COMMIT alone, or a group's last statement and its COMMIT in one message), or -1."""
    end = data.find(COMMIT_END)
    while end >= 0:
        end += len(COMMIT_END)
        at = data.rfind(b"Q", 0, end)
        while at >= 0 and b"\x00" not in data[at + 5:end - 1]:
            text = data[at + 5:end - 1]
            if (at + 5 <= end - 1 and struct.unpack(">I", data[at + 1:at + 5])[0] == end - at - 1
                    and (text == b"COMMIT" or text.endswith(b"; COMMIT"))):
                return at
            at = data.rfind(b"Q", 0, at)
        end = data.find(COMMIT_END, end)
    return -1


class CutProxy:
    def __init__(self, port, mode, nth, writes=False, ran=None, gate=False):
        assert mode in ("landed", "lost", "held")
        self.upstream = port
        self.mode = mode
        self.writes = writes
        # The Parse messages of the statements a counted transaction runs, each: prepared
        # (a supervisor's) or unnamed (autopack-ctl's one-off statements).
        self.ran = [re.compile(rb"P[\s\S]{4}(autopack_\d+|)\x00" + re.escape(sql))
                    for sql in (ran or [])]
        self.nth = nth
        self.claims = 0
        self.cut = threading.Event()
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.gate = threading.Event()
        if not gate:
            self.gate.set()
        self.held = None  # (conn, the COMMIT's bytes) while held
        self.late = None
        self.late_done = threading.Event()
        self.refused = 0  # clients closed at once: the server could not be reached
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname, user="autopack"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (user, self.port, dbname)

    def close(self):
        self.closed = True
        self.sock.close()

    def open(self):
        """Let the connections made after the cut through."""
        self.gate.set()

    def release(self):
        """Send the held COMMIT to the server; late_done is set once the server answered
        it or ended the session."""
        conn, data = self.held
        try:
            conn["server"].sendall(data)
        except OSError:
            self._late(conn, "ended")

    def _late(self, conn, what):
        """Record what became of the held COMMIT and close the server's side."""
        if self.late is None:
            self.late = what
        try:
            conn["server"].close()
        except OSError:
            pass
        self.late_done.set()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.cut.is_set():
                self.gate.wait()
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                # The server is down: refuse this client (it sees its connection closed,
                # as with no server at all) and go on accepting.
                self.refused += 1
                self._close_quietly(client)
                continue
            conn = {"client": client, "server": server, "stream": b"", "txn": 0,
                    "names": set(), "events": set(), "drop": False, "held": False,
                    "ran": [set() for _ in self.ran]}
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()
            threading.Thread(target=self._down, args=(conn,), daemon=True).start()

    @staticmethod
    def _close_quietly(sock):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    @staticmethod
    def _shut(conn):
        for k in ("client", "server"):
            try:
                conn[k].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn[k].close()

    @staticmethod
    def _bound_in_txn(conn, names):
        """Whether the transaction open on conn ran one of the prepared statements
        `names`."""
        txn = conn["stream"][conn["txn"]:]
        for name in names:
            n = re.escape(name.encode())
            if re.search(rb"B[\s\S]{4}\x00" + n + rb"\x00", txn):
                return True
        return False

    def _to_cut(self, conn):
        """Whether the transaction open on conn is of the kind whose COMMIT is counted:
        it ran the claim or, with `writes`, inserted events and ran no claim, or, with
        `ran`, each of those statements."""
        if self.ran:
            return all(self._bound_in_txn(conn, names) for names in conn["ran"])
        claimed = self._bound_in_txn(conn, conn["names"])
        if not self.writes:
            return claimed
        return not claimed and self._bound_in_txn(conn, conn["events"])

    def _up(self, conn):
        """Client to server: watch for the COMMIT to cut."""
        while True:
            try:
                data = conn["client"].recv(65536)
            except OSError:
                data = b""
            if not data:
                self._shut(conn)
                return
            conn["stream"] += data
            for m in CLAIM_PARSE.finditer(conn["stream"]):
                conn["names"].add(m.group(1).decode())
            for m in EVENTS_PARSE.finditer(conn["stream"]):
                conn["events"].add(m.group(1).decode())
            for parse, names in zip(self.ran, conn["ran"]):
                for m in parse.finditer(conn["stream"]):
                    names.add(m.group(1).decode())
            if BEGIN in data:
                conn["txn"] = len(conn["stream"]) - len(data) + data.rindex(BEGIN)
            if commit_query(data) >= 0 and not self.cut.is_set() and self._to_cut(conn):
                with self.lock:
                    self.claims += 1
                    fire = self.claims == self.nth
                if fire:
                    if self.mode == "held":
                        self._hold(conn, data)
                        return
                    self.cut.set()
                    if self.mode == "lost":
                        self._shut(conn)
                        return
                    conn["drop"] = True
            try:
                conn["server"].sendall(data)
            except OSError:
                self._shut(conn)
                return

    def _hold(self, conn, data):
        """Send what came before the COMMIT, keep the COMMIT, and cut the client's side
        only: the server's session stays, inside the transaction."""
        at = commit_query(data)
        conn["held"] = True
        try:
            conn["server"].sendall(data[:at])
        except OSError:
            pass
        self.held = (conn, data[at:])
        # Set before the client can see its connection end: the connection it makes
        # again is then accepted only after the cut, and waits for open() with `gate`.
        self.cut.set()
        try:
            conn["client"].shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn["client"].close()

    def _down(self, conn):
        """Server to client: once the COMMIT was cut, its answer is dropped with both
        connections; a held COMMIT's late answer is recorded."""
        while True:
            try:
                data = conn["server"].recv(65536)
            except OSError:
                data = b""
            if conn["held"]:
                if not data:
                    self._late(conn, "ended")
                    return
                if COMMIT_DONE in data:
                    self._late(conn, "committed")
                    return
                continue
            if not data or (conn["drop"] and COMMIT_DONE in data):
                self._shut(conn)
                return
            if conn["drop"]:
                continue
            try:
                conn["client"].sendall(data)
            except OSError:
                self._shut(conn)
                return
