"""Browser demo for a vlmtune / InternVL model folder (`python demo/app.py MODEL`)."""
