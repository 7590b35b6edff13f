"""Throughput and footprint of a running broker with librdkafka (confluent-kafka).

Usage: python tests/clients/measure.py BOOTSTRAP BROKER_PID RECORDS

Produces RECORDS 100-byte records to a new one-partition topic `perf` (acks=1, linger.ms=5),
then consumes them with assign(); prints records/s, MB/s, the broker's CPU seconds (from /proc)
and its RSS. The Python client loop bounds the consume rate; `cargo xtask bench` (issue 4) is the
real load test. Not a pytest test.
"""
import sys, time, os, subprocess
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"): return int(line.split()[1]) // 1024
def cpu():
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
admin = AdminClient({"bootstrap.servers": bootstrap}); admin.create_topics([NewTopic("perf", 1, 1)])["perf"].result()
print("idle rss MB", rss())
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1000000, "acks": "1", "queue.buffering.max.messages": 2000000})
value = b"x" * 100
c0 = cpu(); t0 = time.time()
for i in range(n):
    while True:
        try:
            p.produce("perf", value); break
        except BufferError:
            p.poll(0.01)
p.flush()
dt = time.time() - t0; c1 = cpu()
print(f"produce: {n/dt:,.0f} rec/s, {n*100/dt/1e6:.1f} MB/s, broker cpu {c1-c0:.2f}s, rss MB {rss()}")
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, "fetch.wait.max.ms": 10})
c.assign([TopicPartition("perf", 0, 0)])
got = 0; t0 = time.time(); c0 = cpu()
while got < n:
    msgs = c.consume(10000, 1.0)
    got += sum(1 for m in msgs if not m.error())
dt = time.time() - t0; c1 = cpu()
print(f"consume: {got/dt:,.0f} rec/s, {got*100/dt/1e6:.1f} MB/s, broker cpu {c1-c0:.2f}s, rss MB {rss()}")
