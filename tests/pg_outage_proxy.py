"""A TCP proxy between one supervisor and the suite's PostgreSQL server whose network
can be taken down and brought back: down() cuts every connection through it and refuses
(closes at once) the new ones until up(), or, down(silent=True), leaves them unanswered
as a host the network drops packets to would (the proxy's queue of connections waiting
to be accepted is kept full, so the kernel drops their SYNs); every byte passes through
untouched otherwise."""
import socket
import threading


class OutageProxy:
    def __init__(self, port):
        self.upstream = port
        self.is_down = False
        self.lock = threading.Lock()
        self.conns = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.silent = False
        self.resume = threading.Event()
        self.resume.set()
        self.parked = threading.Event()
        self.fillers = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname, user="autopack"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (user, self.port, dbname)

    def close(self):
        self.closed = True
        self.sock.close()
        self.down()
        for f in self.fillers:
            f.close()
        self.resume.set()

    def down(self, silent=False):
        """Cut every connection and refuse new ones, or (`silent`) leave them
        unanswered."""
        with self.lock:
            self.is_down = True
            self.silent = silent
            conns, self.conns = self.conns, []
            if silent:
                self.resume.clear()
        for c in conns:
            self._shut(c)
        if silent:
            self._fill()

    def _fill(self):
        """Stop accepting and fill the queue of connections waiting to be accepted: a
        connection made then gets no answer to its SYN."""
        self.sock.listen(0)
        # Wakes the accept() under way, which then waits for up().
        self.fillers.append(socket.create_connection(("127.0.0.1", self.port)))
        assert self.parked.wait(timeout=30)
        while True:
            f = socket.socket()
            f.settimeout(0.5)
            try:
                f.connect(("127.0.0.1", self.port))
            except OSError:
                f.close()
                return
            self.fillers.append(f)

    def up(self):
        with self.lock:
            self.is_down = False
            self.silent = False
        for f in self.fillers:
            f.close()
        self.fillers = []
        self.sock.listen(64)
        self.resume.set()

    @staticmethod
    def _shut(pair):
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self):
        while not self.closed:
            if not self.resume.is_set():
                self.parked.set()
                self.resume.wait()
                self.parked.clear()
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.is_down:
                    client.close()
                    continue
                try:
                    server = socket.create_connection(("127.0.0.1", self.upstream))
                except OSError:
                    client.close()
                    continue
                pair = (client, server)
                self.conns.append(pair)
            threading.Thread(target=self._pipe, args=(pair, client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(pair, server, client), daemon=True).start()

    def _pipe(self, pair, src, dst):
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except OSError:
                break
        self._shut(pair)
