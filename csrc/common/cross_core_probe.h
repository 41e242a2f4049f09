// How long a cache line takes to go from one CPU to another and back, measured now. On a shared
// VM the host may place our vCPUs on nearby cores (a round trip of ~55 ns here) or far apart
// (~320 ns), for seconds at a time; a run that hands work and data between threads (a 2-thread
// batch-1 MLP: ~10 dependent trips) then takes ~2x as long. Benches print it beside their figures.
#pragma once

namespace runnx {

// Median nanoseconds per round trip between CPUs a and b (two threads pinned there bounce one
// atomic `trips` times, in 16 batches). Throws if either CPU is outside this process's affinity
// mask or a == b.
double cross_core_round_trip_ns(int a, int b, int trips);

}  // namespace runnx
