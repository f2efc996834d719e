"""What a redis-py application does first, against a halka node: expiry, the default
transactional pipeline (MULTI/EXEC), counters, a lock with SET NX PX, scan_iter, GETDEL.
Exits non-zero (an AssertionError) on the first difference."""
import sys

import redis

r = redis.Redis(port=int(sys.argv[1]), decode_responses=True)
assert r.ping()
assert r.set("session", "token", ex=100) is True
assert 0 < r.ttl("session") <= 100, r.ttl("session")
# redis-py's default pipeline is a transaction: MULTI ... EXEC.
with r.pipeline() as p:
    p.set("a", 1)
    p.incr("a")
    p.get("a")
    result = p.execute()
assert result == [True, 2, "2"], result
assert r.incr("visits") == 1
assert r.incrby("visits", 9) == 10
assert r.incrbyfloat("total", 10.5) == 10.5
assert r.incrbyfloat("total", 0.1) == 10.6
assert r.set("lock", "me", nx=True, px=5000) is True
assert r.set("lock", "you", nx=True, px=5000) is None
assert r.get("lock") == "me"
assert sorted(r.scan_iter(match="a*")) == ["a"]
assert r.getdel("a") == "2"
assert r.get("a") is None
assert r.expire("session", 50) is True
assert r.persist("session") is True
assert r.ttl("session") == -1
print("ok")
