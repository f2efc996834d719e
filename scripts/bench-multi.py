#!/usr/bin/env python3
"""Pipelined MULTI/EXEC, halka next to Redis: redis-py's default pipeline (a transaction)
of 10 SETs and an INCR, from 16 threads with a connection each, against two ports.
Prints transactions per second for each and the ratio. halka runs each queued command as
its own quorum operation (README: "Where halka differs"); Redis runs them atomically.

Usage: scripts/bench-multi.py HALKA_PORT REDIS_PORT [transactions per thread, default 500]
Needs redis-py (pip install redis)."""
import sys
import threading
import time

import redis

THREADS = 16


def run(port, per_thread):
    def worker(t):
        r = redis.Redis(port=port)
        for i in range(per_thread):
            with r.pipeline() as p:
                for j in range(10):
                    p.set(f"multi:{t}:{j}", i)
                p.incr(f"multi:count:{t}")
                p.execute()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return THREADS * per_thread / (time.perf_counter() - started)


def main():
    halka, plain = int(sys.argv[1]), int(sys.argv[2])
    per_thread = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    h = run(halka, per_thread)
    r = run(plain, per_thread)
    print(f"MULTI/EXEC (10 SET + INCR): halka {h:,.0f} tx/s, redis {r:,.0f} tx/s, ratio {h / r:.2f}")


if __name__ == "__main__":
    main()
