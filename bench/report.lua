-- wrk's done() for every scenario script: one RESULT line that bench/run.py reads.
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d req/s=%.0f p50=%.2fms p99=%.2fms non2xx=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
