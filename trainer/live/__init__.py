"""The live training page (DIGITS' model view): loss, accuracy and learning rate against epoch
while a run goes on, the job's facts, its snapshots with an ONNX download.

    trainer run solver.prototxt --serve [PORT]    the page beside a training
    trainer watch JOB_DIR [--port PORT]           a run in progress elsewhere, or finished

job.py reads the job's files (LiveJob), export.py makes the ONNX downloads, app.py is the HTTP
app (create_app), runner.py runs it (LiveServer, watch); page.html draws the chart on a canvas
(no outside assets). Nothing here is imported until a page is served: the web stack stays out
of plain training runs.
"""
DEFAULT_PORT = 5000  # DIGITS served its pages on 5000
