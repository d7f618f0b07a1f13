"""A TCP proxy between one supervisor and the suite's PostgreSQL server whose network
can be taken down and brought back: down() cuts every connection through it and refuses
(closes at once) the new ones until up(); every byte passes through untouched
otherwise."""
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
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname, user="autopack"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (user, self.port, dbname)

    def close(self):
        self.closed = True
        self.sock.close()
        self.down()

    def down(self):
        """Cut every connection and refuse new ones."""
        with self.lock:
            self.is_down = True
            conns, self.conns = self.conns, []
        for c in conns:
            self._shut(c)

    def up(self):
        with self.lock:
            self.is_down = False

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
