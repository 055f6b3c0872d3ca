"""`l2d-obs train`: Live2Diff's training recipe at any size, on data that exists offline.

data.py makes training clips (bundled photos and procedural scenes, moved by a virtual camera);
stylize.py draws the target style of each frame (classical filters, never used at inference).
"""
