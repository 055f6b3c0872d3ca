"""`l2d-obs bench`: what the streaming engine costs, measured fairly (issue 6).

    config.py        BenchConfig: what one run measures
    models.py        tiny / small / full model builds (random weights) and the no-motion 2D UNet
    setup.py         the engine under test, its frames, the GPU options
    engine_bench.py  cached (pipelined, sequential) vs clip recompute vs no temporal, per frame
    daemon_bench.py  engine alone vs inside the daemon (pattern source -> null sink)
    soak.py          resident memory over thousands of frames
    runner.py        runs the parts, gathers one JSON-able report; table.py formats it
"""
