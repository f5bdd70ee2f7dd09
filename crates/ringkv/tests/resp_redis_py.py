"""redis-py against a ringkv node's Redis protocol port (`--resp`).

Run by crates/ringkv/tests/resp.rs when python3 and redis-py are
installed: `python3 resp_redis_py.py HOST PORT`. Exits non-zero (with a
traceback) when something is not as redis-py users would expect. Standalone
use: start a node with --resp and pass its host and port.
"""

import sys

try:
    import redis
except ImportError:
    print("SKIPPED: redis-py is not installed (pip install redis)")
    sys.exit(0)


def main(host, port):
    for protocol in (2, 3):
        r = redis.Redis(host=host, port=port, protocol=protocol, socket_timeout=15)
        assert r.ping() is True
        # Keys of their own per protocol: bucket `default` keeps siblings, and
        # a SET carries no context, so a second SET of a key is concurrent.
        r.execute_command("BUCKET", f"py{protocol}")
        assert r.set(b"py-k", b"v") is True
        got = r.get(b"py-k")
        assert got == b"v", (protocol, got)
        assert r.get(b"py-missing") is None
        assert r.mset({b"py-a": b"1", b"py-b": b"2"}) is True
        assert r.mget([b"py-a", b"py-b", b"py-missing"]) == [b"1", b"2", None]
        assert r.exists(b"py-a", b"py-b", b"py-missing") == 2
        assert r.delete(b"py-a", b"py-b", b"py-missing") == 2
        assert r.exists(b"py-a") == 0
        # Pipelined, as redis-py sends a pipeline: one write, answers in order.
        p = r.pipeline(transaction=False)
        for i in range(20):
            p.set(f"py-p{i}", i)
        for i in range(20):
            p.get(f"py-p{i}")
        out = p.execute()
        assert out[:20] == [True] * 20, out
        assert out[20:] == [str(i).encode() for i in range(20)], out
        r.set(b"py-k", b"w")
        try:
            r.get(b"py-k")
            raise AssertionError("GET of a key with siblings answered")
        except redis.ResponseError as e:
            assert str(e).startswith("SIBLINGS 2"), e
        try:
            r.set(b"py-k", b"v", ex=10)
            raise AssertionError("SET EX was accepted")
        except redis.ResponseError as e:
            assert "not supported" in str(e), e
        info = r.info()
        assert info["ringkv_node"] == "n1", info
        r.close()
    print("redis-py: all checks passed (RESP2 and RESP3)")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
