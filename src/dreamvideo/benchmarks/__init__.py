"""Benchmarks, one home: `suite` is `dreamvideo bench` (the default path against a naive sampler
and diffusers' pipeline, start-up, memory, FLOPs, scaling: docs/performance.md); `guidance` and
`frechet` are micro-benchmarks, run as `python -m dreamvideo.benchmarks.guidance` and
`python -m dreamvideo.benchmarks.frechet`. Each prints ratios, not absolute timings to assert on."""
