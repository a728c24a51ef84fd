"""Slipstream's Cache (RocksDB through rocksdict) on the operations of
benches/store.rs: batched puts, gets, as-of probes, plus one put per
write as Slipstream's sink does it.

    python3 -m venv venv && venv/bin/pip install slipstream-async rocksdict
    venv/bin/python benches/store_slipstream.py

Prints operations per second, best of five runs of each.
"""

import shutil
import tempfile
import time

from rocksdict import WriteBatch
from slipstream import Cache

ENTRIES = 100_000
BATCH = 1_000
OPS = 100_000
VALUE = 'x' * 100


def best_rate(run, ops, repeat=5):
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return ops / best


def xorshift(state):
    state ^= (state << 13) & 0xFFFFFFFFFFFFFFFF
    state ^= state >> 7
    state ^= (state << 17) & 0xFFFFFFFFFFFFFFFF
    return state


def main():
    path = tempfile.mkdtemp(prefix='slipstream-bench-')
    try:
        cache = Cache(path + '/db')
        next_key = [0]

        def put_batched():
            for _ in range(100):
                batch = WriteBatch()
                for _ in range(BATCH):
                    next_key[0] += 1
                    batch.put(next_key[0], VALUE)
                cache.write(batch)

        def put_each():
            for _ in range(10_000):
                next_key[0] += 1
                cache[next_key[0]] = VALUE

        print(f'put_batched  {best_rate(put_batched, 100 * BATCH):>12,.0f} puts/s')
        print(f'put_each     {best_rate(put_each, 10_000):>12,.0f} puts/s')
        cache.db.close()

        shutil.rmtree(path + '/db')
        cache = Cache(path + '/db')
        for chunk in range(0, ENTRIES, BATCH):
            batch = WriteBatch()
            for i in range(chunk, chunk + BATCH):
                batch.put(2 * i, VALUE)
            cache.write(batch)

        def get():
            s = 0x9E3779B97F4A7C15
            for _ in range(OPS):
                s = xorshift(s)
                assert cache[2 * (s % ENTRIES)] is not None

        def at_or_before():
            s = 0x2545F4914F6CDD1D
            for _ in range(OPS):
                s = xorshift(s)
                k = 2 * (s % ENTRIES) + 1
                next(iter(cache.values(backwards=True, from_key=k)))

        print(f'get          {best_rate(get, OPS):>12,.0f} gets/s')
        print(f'at_or_before {best_rate(at_or_before, OPS):>12,.0f} probes/s')
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == '__main__':
    main()
