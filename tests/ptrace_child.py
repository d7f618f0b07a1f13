"""A process traced by a child of its own (PTRACE_SEIZE), as a process of its user that
attached to it would be: for the tests of a worker traced from its first instants (the
rogue worker's `traced` mode, and a wrapper that execs the real worker once traced)."""
import ctypes
import os


def traced_by_a_child():
    """Have a child of this process trace it from now on, continuing it at every stop.
    Returns whether the child could attach."""
    r, w = os.pipe()
    me = os.getpid()
    if os.fork() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        arg = ctypes.c_long
        ok = libc.ptrace(arg(0x4206), arg(me), arg(0), arg(0)) == 0  # PTRACE_SEIZE
        os.write(w, b"1" if ok else b"0")
        while ok:
            try:
                _, status = os.waitpid(me, 0x40000000)  # __WALL
            except ChildProcessError:
                break
            if not os.WIFSTOPPED(status):
                break
            sig = os.WSTOPSIG(status) if status >> 16 == 0 else 0
            libc.ptrace(arg(7), arg(me), arg(0), arg(sig))  # PTRACE_CONT
        os._exit(0)
    os.close(w)
    ok = os.read(r, 1) == b"1"
    os.close(r)
    return ok
