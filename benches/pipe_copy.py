"""The pipe's own ceiling for benches/speed.sh: FILE copied to stdout as `narfs decode`
writes a NAR into a pipe (src/io.rs `widen_pipe`: the pipe grown to
/proc/sys/fs/pipe-max-size, at most 2 MiB; writes of 1 MiB), without decoding anything.
Each piece is read from the page cache into one reused buffer and written from it:
what a decoder that reads a block, verifies it and writes it pays besides verifying.

Usage: python3 benches/pipe_copy.py FILE | cat >/dev/null
"""
import fcntl
import os
import stat
import sys

PIECE = 1 << 20


def main():
    out = sys.stdout.fileno()
    if stat.S_ISFIFO(os.fstat(out).st_mode):
        with open("/proc/sys/fs/pipe-max-size") as f:
            size = min(2 << 20, int(f.read()))
        fcntl.fcntl(out, fcntl.F_SETPIPE_SZ, size)
    buf = bytearray(PIECE)
    view = memoryview(buf)
    with open(sys.argv[1], "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            done = 0
            while done < n:
                done += os.write(out, view[done:n])


main()
