# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Rate-distortion evaluation: run models and classical codecs on a split, then report.

``runner.evaluate`` writes per-sample records (``results.json`` + ``samples.csv``);
``report.write_report`` turns one or more result folders into a Markdown report with R-D plots,
a BD-rate table and a visual gallery; ``compare`` trains and evaluates a whole plan.
"""
