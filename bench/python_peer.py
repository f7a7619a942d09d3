"""The peer stack: the same series served by Python's prometheus_client, as today's exporters do.

Reads an exposition file (the exporter's /metrics), recreates every kraken_* gauge with its labels and
value, and serves them with prometheus_client's start_http_server on the given port until killed.
"""
import re
import sys
import time

from prometheus_client import Gauge, start_http_server
from prometheus_client.core import REGISTRY

SAMPLE = re.compile(r'^(kraken_balance[a-z_]*)\{(.*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def main(path: str, port: int) -> None:
    for collector in list(REGISTRY._collector_to_names):  # serve only the kraken series, like for like
        REGISTRY.unregister(collector)
    gauges = {}
    with open(path) as body:
        for line in body:
            match = SAMPLE.match(line.strip())
            if not match:
                continue
            name, labels, value = match.groups()
            labels = dict(LABEL.findall(labels))
            if name not in gauges:
                gauges[name] = Gauge(name, name, sorted(labels))
            gauges[name].labels(**labels).set(float(value))
    start_http_server(port, addr="127.0.0.1")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
